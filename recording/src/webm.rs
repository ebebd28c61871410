//! VP8 frames into a WebM (Matroska) file: the EBML header, one Segment with
//! a SeekHead, Info and one video track, Clusters of SimpleBlocks (each Cluster
//! starting at a keyframe), and Cues at the end, one per keyframe Cluster, so a
//! player can seek (a browser will not seek in a WebM without Cues). The sizes
//! of the Segment and of each Cluster, the Duration in Info and the SeekHead
//! (which points at the Cues) are not known until the end: they are written as
//! placeholders and filled in by seeking back, which is why the writer needs
//! `Seek` (the store's partial file gives it).
//!
//! Written by hand (a dozen element types) rather than with `webm-iterable`:
//! that crate writes tags as a stream and would still leave the seeking back
//! for sizes and the duration to us, for a second EBML dependency.

use std::io::{self, Seek, SeekFrom, Write};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const FLAG_LACING: u32 = 0x9C;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;
const VOID: u32 = 0xEC;

/// Bytes kept at the Segment's start for the SeekHead written at the end (three
/// entries take at most 68; the rest stays a Void element).
const SEEK_HEAD_ROOM: usize = 96;

/// An 8-byte size to be filled in later.
const SIZE_PLACEHOLDER: [u8; 8] = [0x01, 0, 0, 0, 0, 0, 0, 0];
/// A Cluster is closed at the next keyframe this old, or before a block's
/// 16-bit relative timecode would overflow.
const CLUSTER_MILLIS: u64 = 5_000;
const MAX_BLOCK_OFFSET: u64 = 30_000;
/// The last frame counts this long at most (after a pause in the video).
const MAX_FRAME_MILLIS: u64 = 1_000;

pub struct WebmWriter<W: Write + Seek> {
    writer: W,
    /// Where the Segment's data starts (its size is patched at the end).
    segment_data: u64,
    /// Where the Duration's 8-byte float is.
    duration_at: u64,
    /// Where Info and Tracks start, relative to the Segment's data (for the SeekHead).
    info_position: u64,
    tracks_position: u64,
    /// (time in ms, Cluster position relative to the Segment's data) of each
    /// Cluster that starts with a keyframe.
    cues: Vec<(u64, u64)>,
    /// The open Cluster: where its data starts and its timecode (ms).
    cluster: Option<(u64, u64)>,
    first_ms: Option<u64>,
    last_ms: u64,
    /// Between the last two frames: how long the last frame is shown.
    last_interval_ms: u64,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Writes the header for a `width` x `height` VP8 track.
    pub fn new(mut writer: W, width: u16, height: u16) -> io::Result<Self> {
        let mut header = Vec::new();
        let mut ebml = Vec::new();
        uint_element(&mut ebml, 0x4286, 1); // EBMLVersion
        uint_element(&mut ebml, 0x42F7, 1); // EBMLReadVersion
        uint_element(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
        uint_element(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
        element(&mut ebml, 0x4282, b"webm"); // DocType
        uint_element(&mut ebml, 0x4287, 4); // DocTypeVersion
        uint_element(&mut ebml, 0x4285, 2); // DocTypeReadVersion
        element(&mut header, EBML, &ebml);
        write_id(&mut header, SEGMENT);
        header.extend_from_slice(&SIZE_PLACEHOLDER);
        let segment_data = header.len() as u64;
        void(&mut header, SEEK_HEAD_ROOM);
        let info_position = header.len() as u64 - segment_data;

        let mut info = Vec::new();
        uint_element(&mut info, TIMECODE_SCALE, 1_000_000); // timecodes in milliseconds
        element(&mut info, MUXING_APP, b"rapat");
        element(&mut info, WRITING_APP, b"rapat");
        write_id(&mut info, DURATION);
        write_size(&mut info, 8);
        let duration_in_info = info.len();
        info.extend_from_slice(&0f64.to_be_bytes());
        write_id(&mut header, INFO);
        write_size(&mut header, info.len() as u64);
        let duration_at = (header.len() + duration_in_info) as u64;
        header.extend_from_slice(&info);
        let tracks_position = header.len() as u64 - segment_data;

        let mut video = Vec::new();
        uint_element(&mut video, PIXEL_WIDTH, u64::from(width));
        uint_element(&mut video, PIXEL_HEIGHT, u64::from(height));
        let mut track = Vec::new();
        uint_element(&mut track, TRACK_NUMBER, 1);
        uint_element(&mut track, TRACK_UID, 1);
        uint_element(&mut track, TRACK_TYPE, 1); // video
        element(&mut track, CODEC_ID, b"V_VP8");
        uint_element(&mut track, FLAG_LACING, 0);
        element(&mut track, VIDEO, &video);
        let mut tracks = Vec::new();
        element(&mut tracks, TRACK_ENTRY, &track);
        element(&mut header, TRACKS, &tracks);

        let start = writer.stream_position()?;
        writer.write_all(&header)?;
        Ok(Self {
            writer,
            segment_data: start + segment_data,
            duration_at: start + duration_at,
            info_position,
            tracks_position,
            cues: Vec::new(),
            cluster: None,
            first_ms: None,
            last_ms: 0,
            last_interval_ms: 0,
        })
    }

    /// Adds a frame at `millis` on the recording's timeline (not before the previous one).
    pub fn write_frame(&mut self, millis: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let first = *self.first_ms.get_or_insert(millis);
        let time = millis.saturating_sub(first).max(self.last_ms);
        let new_cluster = match self.cluster {
            None => true,
            Some((_, cluster_ms)) => {
                (keyframe && time - cluster_ms >= CLUSTER_MILLIS) || time - cluster_ms > MAX_BLOCK_OFFSET
            }
        };
        if new_cluster {
            self.close_cluster()?;
            if keyframe {
                let position = self.writer.stream_position()? - self.segment_data;
                self.cues.push((time, position));
            }
            // A four-byte id.
            self.writer.write_all(&CLUSTER.to_be_bytes())?;
            self.writer.write_all(&SIZE_PLACEHOLDER)?;
            let data_at = self.writer.stream_position()?;
            let mut timecode = Vec::new();
            uint_element(&mut timecode, TIMECODE, time);
            self.writer.write_all(&timecode)?;
            self.cluster = Some((data_at, time));
        }
        let cluster_ms = self.cluster.map_or(time, |(_, cluster_ms)| cluster_ms);
        let mut block = Vec::with_capacity(data.len() + 16);
        write_id(&mut block, SIMPLE_BLOCK);
        write_size(&mut block, data.len() as u64 + 4);
        block.push(0x81); // track number 1
        block.extend_from_slice(&((time - cluster_ms) as i16).to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(data);
        self.writer.write_all(&block)?;
        if time > self.last_ms {
            self.last_interval_ms = (time - self.last_ms).min(MAX_FRAME_MILLIS);
        }
        self.last_ms = time;
        Ok(())
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        let Some((data_at, _)) = self.cluster.take() else { return Ok(()) };
        self.patch_size(data_at)
    }

    /// Fills in the 8-byte size in front of `data_at`, up to the current end.
    fn patch_size(&mut self, data_at: u64) -> io::Result<()> {
        let end = self.writer.stream_position()?;
        self.writer.seek(SeekFrom::Start(data_at - 8))?;
        self.writer.write_all(&sized_placeholder(end - data_at))?;
        self.writer.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// The duration so far in milliseconds: up to the last frame, which is shown
    /// as long as the one before it.
    pub fn duration_ms(&self) -> u64 {
        self.last_ms + self.last_interval_ms
    }

    /// Writes the Cues, fills in the sizes, the duration and the SeekHead;
    /// returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.close_cluster()?;
        let cues_position = self.writer.stream_position()? - self.segment_data;
        self.writer.write_all(&cues(&self.cues))?;
        self.patch_size(self.segment_data)?;
        let end = self.writer.stream_position()?;
        self.writer.seek(SeekFrom::Start(self.duration_at))?;
        self.writer.write_all(&(self.duration_ms() as f64).to_be_bytes())?;
        let positions = [(INFO, self.info_position), (TRACKS, self.tracks_position), (CUES, cues_position)];
        self.writer.seek(SeekFrom::Start(self.segment_data))?;
        self.writer.write_all(&seek_head(&positions))?;
        self.writer.seek(SeekFrom::Start(end))?;
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// One CuePoint per keyframe Cluster, on track 1.
fn cues(points: &[(u64, u64)]) -> Vec<u8> {
    let mut cues = Vec::new();
    for &(time, position) in points {
        let mut track_positions = Vec::new();
        uint_element(&mut track_positions, CUE_TRACK, 1);
        uint_element(&mut track_positions, CUE_CLUSTER_POSITION, position);
        let mut point = Vec::new();
        uint_element(&mut point, CUE_TIME, time);
        element(&mut point, CUE_TRACK_POSITIONS, &track_positions);
        element(&mut cues, CUE_POINT, &point);
    }
    let mut out = Vec::new();
    element(&mut out, CUES, &cues);
    out
}

/// The SeekHead for `positions` (element id, position in the Segment), padded
/// with a Void element to exactly [`SEEK_HEAD_ROOM`] bytes.
fn seek_head(positions: &[(u32, u64)]) -> Vec<u8> {
    let mut seeks = Vec::new();
    for &(id, position) in positions {
        let mut id_bytes = Vec::new();
        write_id(&mut id_bytes, id);
        let mut seek = Vec::new();
        element(&mut seek, SEEK_ID, &id_bytes);
        uint_element(&mut seek, SEEK_POSITION, position);
        element(&mut seeks, SEEK, &seek);
    }
    let mut out = Vec::new();
    element(&mut out, SEEK_HEAD, &seeks);
    let padding = SEEK_HEAD_ROOM - out.len();
    void(&mut out, padding);
    out
}

/// A Void element of `total` bytes (at least 9: its id and an 8-byte size).
fn void(out: &mut Vec<u8>, total: usize) {
    write_id(out, VOID);
    out.extend_from_slice(&sized_placeholder(total as u64 - 9));
    out.resize(out.len() + total - 9, 0);
}

fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().position(|&byte| byte != 0).unwrap_or(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-size integer of the fewest bytes.
fn write_size(out: &mut Vec<u8>, size: u64) {
    let length = (1..=8).find(|length| size < (1u64 << (7 * length)) - 1).unwrap_or(8);
    let marked = size | (1u64 << (7 * length));
    out.extend_from_slice(&marked.to_be_bytes()[8 - length as usize..]);
}

fn sized_placeholder(size: u64) -> [u8; 8] {
    (size | (1u64 << 56)).to_be_bytes()
}

fn element(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    write_id(out, id);
    write_size(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn uint_element(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().position(|&byte| byte != 0).unwrap_or(7);
    element(out, id, &bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// Reads one element at `at`: (id, data range).
    fn read_element(bytes: &[u8], at: usize) -> (u32, std::ops::Range<usize>) {
        let id_length = bytes[at].leading_zeros() as usize + 1;
        let id = bytes[at..at + id_length].iter().fold(0u32, |id, &byte| (id << 8) | u32::from(byte));
        let size_at = at + id_length;
        let size_length = bytes[size_at].leading_zeros() as usize + 1;
        let mut size = u64::from(bytes[size_at]) & ((1 << (8 - size_length)) - 1);
        for &byte in &bytes[size_at + 1..size_at + size_length] {
            size = (size << 8) | u64::from(byte);
        }
        let data = size_at + size_length;
        (id, data..data + size as usize)
    }

    fn children(bytes: &[u8], range: std::ops::Range<usize>) -> Vec<(u32, std::ops::Range<usize>)> {
        let mut at = range.start;
        let mut found = Vec::new();
        while at < range.end {
            let (id, data) = read_element(bytes, at);
            at = data.end;
            found.push((id, data));
        }
        assert_eq!(at, range.end, "children fill their parent exactly");
        found
    }

    #[test]
    fn sizes_and_duration_are_filled_in_and_clusters_start_at_keyframes() {
        let mut writer = WebmWriter::new(Cursor::new(Vec::new()), 320, 240).expect("header");
        for frame in 0..=180u64 {
            // 30 frames a second for 6 s, a keyframe every 3 s.
            let keyframe = frame % 90 == 0;
            writer.write_frame(1_000 + frame * 100 / 3, keyframe, &[frame as u8; 5]).expect("frame");
        }
        let bytes = writer.finish().expect("finish").into_inner();
        let top = children(&bytes, 0..bytes.len());
        assert_eq!(top.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [EBML, SEGMENT]);
        let segment = children(&bytes, top[1].1.clone());
        let ids: Vec<u32> = segment.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [SEEK_HEAD, VOID, INFO, TRACKS, CLUSTER, CLUSTER, CUES]);
        let segment_data = top[1].1.start;
        // Where an element starts, relative to the Segment's data.
        let position_of = |index: usize| (starts(&bytes, segment_data..top[1].1.end)[index] - segment_data) as u64;
        assert_eq!(position_of(2), SEEK_HEAD_ROOM as u64, "the SeekHead and its Void fill the room kept for them");
        let info = children(&bytes, segment[2].1.clone());
        let (_, duration) = info.iter().find(|(id, _)| *id == DURATION).expect("a duration").clone();
        let duration = f64::from_be_bytes(bytes[duration].try_into().expect("8 bytes"));
        assert_eq!(duration, 6_034.0);
        let first_cluster = children(&bytes, segment[4].1.clone());
        assert_eq!(first_cluster.len(), 1 + 180, "the timecode and the frames before the keyframe at 6 s");
        let (_, block) = first_cluster[1].clone();
        assert_eq!(&bytes[block.start..block.start + 4], &[0x81, 0, 0, 0x80]);

        let seeks: Vec<(u32, u64)> = children(&bytes, segment[0].1.clone())
            .into_iter()
            .map(|(_, seek)| {
                let fields = children(&bytes, seek);
                let id = bytes[fields[0].1.clone()].iter().fold(0u32, |id, &byte| (id << 8) | u32::from(byte));
                (id, uint(&bytes, fields[1].1.clone()))
            })
            .collect();
        assert_eq!(seeks, [(INFO, position_of(2)), (TRACKS, position_of(3)), (CUES, position_of(6))]);
        let cue_points: Vec<(u64, u64)> = children(&bytes, segment[6].1.clone())
            .into_iter()
            .map(|(_, point)| {
                let fields = children(&bytes, point);
                let positions = children(&bytes, fields[1].1.clone());
                assert_eq!(uint(&bytes, positions[0].1.clone()), 1, "track 1");
                (uint(&bytes, fields[0].1.clone()), uint(&bytes, positions[1].1.clone()))
            })
            .collect();
        assert_eq!(cue_points, [(0, position_of(4)), (6_000, position_of(5))], "a cue per keyframe Cluster");
    }

    /// Where each child element of `range` starts.
    fn starts(bytes: &[u8], range: std::ops::Range<usize>) -> Vec<usize> {
        let mut at = range.start;
        let mut found = Vec::new();
        while at < range.end {
            found.push(at);
            at = read_element(bytes, at).1.end;
        }
        found
    }

    fn uint(bytes: &[u8], range: std::ops::Range<usize>) -> u64 {
        bytes[range].iter().fold(0, |value, &byte| (value << 8) | u64::from(byte))
    }

    #[test]
    fn sizes_use_the_fewest_bytes() {
        let mut out = Vec::new();
        write_size(&mut out, 5);
        write_size(&mut out, 200);
        assert_eq!(out, [0x85, 0x40, 200]);
    }
}
