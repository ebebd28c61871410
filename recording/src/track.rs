//! One publication of one track into one file: packets in (as the SFU got them,
//! decrypted), put in order by the jitter buffer, placed on one timeline across
//! SSRC changes, and written as Opus in Ogg or VP8 in WebM.
//!
//! Video after a lost packet is not decodable until the next keyframe: frames
//! are dropped until then and [`TrackRecorder::take_keyframe_request`] says a
//! keyframe should be asked of the publisher. Of a simulcast track the highest
//! layer received is recorded, switching layers only at a keyframe of the new one.

use std::io::{self, Seek, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapat_domain::room::RecordingCodec;
use rtc_rtp::Packet;

use crate::jitter::{JitterBuffer, Released};
use crate::ogg::OggOpusWriter;
use crate::timeline::Timeline;
use crate::vp8::{Vp8Frames, starts_keyframe};
use crate::webm::WebmWriter;

/// How long a missing packet is waited for, and how many packets may wait behind it.
const JITTER_WAIT: Duration = Duration::from_millis(200);
const JITTER_PACKETS: usize = 500;
/// A simulcast layer not heard from for this long no longer holds the recording:
/// a lower one may take over at its next keyframe.
const LAYER_SILENCE: Duration = Duration::from_secs(1);
/// While no stream can be taken up for want of a keyframe, one is asked for at
/// most this often. Browsers send keyframes only when asked, so a recording that
/// starts mid-stream, or a layer that falls silent, would otherwise wait for one
/// that a new subscriber happens to ask for.
const KEYFRAME_ASK_EVERY: Duration = Duration::from_millis(500);

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub duration_ms: u64,
    /// Nothing playable was written (no packet, or no video keyframe): the file
    /// is not worth keeping.
    pub empty: bool,
}

enum Media<W: Write + Seek> {
    Opus(OggOpusWriter<W>),
    Vp8 { frames: Vp8Frames, file: Vp8File<W>, waiting_for_keyframe: bool },
}

/// A WebM file needs the picture size from the first keyframe before its header.
enum Vp8File<W: Write + Seek> {
    NotStarted(W),
    Started(WebmWriter<W>),
    /// Only while the header is being written.
    Poisoned,
}

type Queued = (Arc<Packet>, Instant);

pub struct TrackRecorder<W: Write + Seek> {
    media: Media<W>,
    jitter: JitterBuffer<Queued>,
    timeline: Timeline,
    /// The stream recorded: its SSRC and simulcast layer.
    stream: Option<(u32, Option<u8>)>,
    stream_heard: Option<Instant>,
    keyframe_wanted: bool,
    /// When a keyframe was last asked for a stream not yet recorded, and of
    /// which layer.
    keyframe_asked: Option<(Instant, Option<u8>)>,
    /// The highest simulcast layer heard lately, and when: the one asked for.
    highest_heard: Option<(u8, Instant)>,
    /// Frames dropped as undecodable (lost packets), for the logs.
    pub frames_dropped: u64,
    /// Packets lost for good (not arrived within the jitter buffer's wait).
    pub packets_lost: u64,
}

impl<W: Write + Seek> TrackRecorder<W> {
    pub fn new(codec: RecordingCodec, writer: W) -> io::Result<Self> {
        let (media, clock_rate) = match codec {
            RecordingCodec::Opus => (Media::Opus(OggOpusWriter::new(writer)?), 48_000),
            RecordingCodec::Vp8 => (
                Media::Vp8 {
                    frames: Vp8Frames::default(),
                    file: Vp8File::NotStarted(writer),
                    waiting_for_keyframe: true,
                },
                90_000,
            ),
        };
        Ok(Self {
            media,
            jitter: JitterBuffer::new(JITTER_WAIT, JITTER_PACKETS),
            timeline: Timeline::new(clock_rate),
            stream: None,
            stream_heard: None,
            keyframe_wanted: false,
            keyframe_asked: None,
            highest_heard: None,
            frames_dropped: 0,
            packets_lost: 0,
        })
    }

    /// A packet of the track, arrived at `at`; `layer` is its simulcast layer.
    pub fn push(&mut self, packet: Arc<Packet>, layer: Option<u8>, at: Instant) -> io::Result<()> {
        let ssrc = packet.header.ssrc;
        if let Some(layer) = layer
            && self
                .highest_heard
                .is_none_or(|(highest, heard)| layer >= highest || at.saturating_duration_since(heard) >= LAYER_SILENCE)
        {
            self.highest_heard = Some((layer, at));
        }
        if self.stream.is_some_and(|(recorded, _)| recorded == ssrc) {
            self.stream_heard = Some(at);
        } else if let Some(layer) = layer
            && self
                .highest_heard
                .is_some_and(|(highest, heard)| highest > layer && at.saturating_duration_since(heard) < LAYER_SILENCE)
        {
            // A lower layer than one still arriving: never recorded.
            return Ok(());
        } else if self.switches_to(&packet, layer, at) {
            // Another stream: what the old one left is written first.
            self.drain()?;
            self.stream = Some((ssrc, layer));
            self.stream_heard = Some(at);
            if let Media::Vp8 { frames, .. } = &mut self.media {
                *frames = Vp8Frames::default();
            }
        } else {
            self.ask_keyframe_for_switch(layer, at);
            return Ok(());
        }
        self.jitter.push(packet.header.sequence_number, (packet, at), at);
        self.poll(at)
    }

    /// A packet of a stream this recording would take up if it started a
    /// keyframe: ask for one (the caller asks on the packet's layer). A layer
    /// not asked yet is asked at once: at a recording's start the low layer's
    /// packet often comes first, and the top layer's keyframe should not wait
    /// out the pause after the low layer's ask.
    fn ask_keyframe_for_switch(&mut self, layer: Option<u8>, at: Instant) {
        let wanted = match self.stream {
            None => true,
            // Only when the recorded layer fell silent; a higher layer is taken up
            // at its own next keyframe, whatever asks for it.
            Some(_) => self.stream_heard.is_none_or(|heard| at.saturating_duration_since(heard) >= LAYER_SILENCE),
        };
        let paused = self.keyframe_asked.is_some_and(|(asked, asked_layer)| {
            asked_layer == layer && at.saturating_duration_since(asked) < KEYFRAME_ASK_EVERY
        });
        if wanted && !paused {
            self.keyframe_asked = Some((at, layer));
            self.keyframe_wanted = true;
        }
    }

    /// Whether a packet of another stream than the recorded one takes over: a new
    /// SSRC of a single-stream track does at once; another simulcast layer at its
    /// keyframe, when higher, or when the recorded layer fell silent.
    fn switches_to(&self, packet: &Packet, layer: Option<u8>, at: Instant) -> bool {
        let Some((_, recorded_layer)) = self.stream else {
            return layer.is_none() || starts_keyframe(&packet.payload);
        };
        match (layer, recorded_layer) {
            (Some(layer), Some(recorded)) => {
                let silent = self.stream_heard.is_none_or(|heard| at.saturating_duration_since(heard) >= LAYER_SILENCE);
                (layer > recorded || silent) && starts_keyframe(&packet.payload)
            }
            _ => true,
        }
    }

    /// Writes what the jitter buffer has released by `now`.
    pub fn poll(&mut self, now: Instant) -> io::Result<()> {
        while let Some(released) = self.jitter.pop(now) {
            self.write(released)?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        for released in self.jitter.drain() {
            self.write(released)?;
        }
        Ok(())
    }

    fn write(&mut self, released: Released<Queued>) -> io::Result<()> {
        let (packet, at) = match released {
            Released::Packet(queued) => queued,
            Released::Gap { missing } => {
                self.packets_lost += missing;
                if let Media::Vp8 { frames, waiting_for_keyframe, .. } = &mut self.media {
                    frames.lost();
                    if !*waiting_for_keyframe {
                        *waiting_for_keyframe = true;
                        self.keyframe_wanted = true;
                    }
                }
                return Ok(());
            }
        };
        let place = self.timeline.place(packet.header.ssrc, packet.header.timestamp, at);
        match &mut self.media {
            Media::Opus(ogg) => {
                // An Opus RTP payload is the Opus packet as it is (RFC 7587).
                ogg.write_packet(&packet.payload, place)
            }
            Media::Vp8 { frames, file, waiting_for_keyframe } => {
                let frame = match frames.push(&packet.payload, packet.header.timestamp, packet.header.marker, place) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Ok(()),
                    Err(_) => {
                        self.frames_dropped += 1;
                        if !*waiting_for_keyframe {
                            *waiting_for_keyframe = true;
                            self.keyframe_wanted = true;
                        }
                        return Ok(());
                    }
                };
                if *waiting_for_keyframe && !frame.keyframe {
                    self.frames_dropped += 1;
                    self.keyframe_wanted = true;
                    return Ok(());
                }
                *waiting_for_keyframe = false;
                if let Vp8File::NotStarted(_) = file {
                    let Some((width, height)) = frame.size else { return Ok(()) };
                    let Vp8File::NotStarted(writer) = std::mem::replace(file, Vp8File::Poisoned) else {
                        return Ok(());
                    };
                    *file = Vp8File::Started(WebmWriter::new(writer, width, height)?);
                }
                match file {
                    Vp8File::Started(webm) => webm.write_frame(frame.at / 90, frame.keyframe, &frame.data),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Whether a keyframe should be asked of the publisher (asked once per loss).
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// Writes everything still held and completes the file; returns the writer.
    pub fn finish(mut self) -> io::Result<(W, Written)> {
        self.drain()?;
        match self.media {
            Media::Opus(ogg) => {
                let samples = ogg.samples();
                let writer = ogg.finish()?;
                Ok((writer, Written { duration_ms: samples / 48, empty: samples == 0 }))
            }
            Media::Vp8 { file: Vp8File::Started(webm), .. } => {
                let duration_ms = webm.duration_ms();
                Ok((webm.finish()?, Written { duration_ms, empty: false }))
            }
            Media::Vp8 { file: Vp8File::NotStarted(writer), .. } => {
                Ok((writer, Written { duration_ms: 0, empty: true }))
            }
            Media::Vp8 { file: Vp8File::Poisoned, .. } => Err(io::Error::other("the WebM header could not be written")),
        }
    }
}

#[cfg(test)]
#[path = "track_tests.rs"]
mod tests;
