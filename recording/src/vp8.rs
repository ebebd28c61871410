//! VP8 frames out of RTP packets (RFC 7741), with `rtc-rtp`'s depacketizer for
//! the payload descriptor. A frame starts at a packet with S=1 and partition 0
//! and ends at the RTP marker; all its packets share one timestamp. A frame with
//! a packet missing is dropped whole: half a frame is not decodable.

use bytes::Bytes;
use rtc_rtp::codec::vp8::Vp8Packet;
use rtc_rtp::packetizer::Depacketizer;

#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// On the recording's timeline, in 90 kHz ticks.
    pub at: u64,
    pub keyframe: bool,
    /// Width and height, from a keyframe's header.
    pub size: Option<(u16, u16)>,
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Building {
    timestamp: u32,
    at: u64,
    data: Vec<u8>,
    broken: bool,
}

#[derive(Debug, Default)]
pub struct Vp8Frames {
    building: Option<Building>,
}

impl Vp8Frames {
    /// A packet was lost: the frame being built cannot be completed.
    pub fn lost(&mut self) {
        if let Some(building) = &mut self.building {
            building.broken = true;
        }
    }

    /// Adds the next packet (in sequence order) with its place on the timeline;
    /// returns a frame when this packet completed one. `Err` counts a frame
    /// given up on (a packet of it missing or unreadable).
    pub fn push(&mut self, payload: &Bytes, timestamp: u32, marker: bool, at: u64) -> Result<Option<Frame>, Dropped> {
        let mut descriptor = Vp8Packet::default();
        let mut dropped = false;
        let Ok(data) = descriptor.depacketize(payload) else {
            self.lost();
            return Err(Dropped);
        };
        if descriptor.s == 1 && descriptor.pid == 0 {
            // A new frame while the previous one never saw its marker.
            dropped = self.building.take().is_some();
            self.building = Some(Building { timestamp, at, data: Vec::with_capacity(data.len() * 4), broken: false });
        }
        let Some(building) = &mut self.building else { return Err(Dropped) };
        if building.timestamp != timestamp {
            building.broken = true;
        }
        building.data.extend_from_slice(&data);
        if !marker {
            return if dropped { Err(Dropped) } else { Ok(None) };
        }
        let Some(done) = self.building.take() else { return Ok(None) };
        if done.broken || done.data.is_empty() {
            return Err(Dropped);
        }
        let keyframe = done.data[0] & 0x01 == 0;
        let size = if keyframe { keyframe_size(&done.data) } else { None };
        Ok(Some(Frame { at: done.at, keyframe, size, data: done.data }))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Dropped;

/// The width and height in a keyframe's header (RFC 6386 §9.1), after the
/// 3-byte frame tag and the start code 9d 01 2a.
fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// Whether an RTP payload starts a VP8 keyframe (where a recording may start or
/// switch layers).
pub fn starts_keyframe(payload: &Bytes) -> bool {
    let mut descriptor = Vp8Packet::default();
    match descriptor.depacketize(payload) {
        Ok(data) => descriptor.s == 1 && descriptor.pid == 0 && data.first().is_some_and(|tag| tag & 0x01 == 0),
        Err(_) => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A keyframe's first bytes: frame tag (key), start code, 320x240.
    pub fn keyframe_start() -> Vec<u8> {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa, 0xbb]
    }

    /// An RTP payload: the one-byte descriptor (S set when `start`) and `data`.
    pub fn payload(start: bool, data: &[u8]) -> Bytes {
        let mut bytes = vec![if start { 0x10 } else { 0x00 }];
        bytes.extend_from_slice(data);
        Bytes::from(bytes)
    }

    #[test]
    fn a_frame_spans_packets_up_to_the_marker() {
        let mut frames = Vp8Frames::default();
        let key = keyframe_start();
        assert_eq!(frames.push(&payload(true, &key[..6]), 9, false, 0), Ok(None));
        let frame = frames.push(&payload(false, &key[6..]), 9, true, 0).expect("complete").expect("a frame");
        assert!(frame.keyframe);
        assert_eq!(frame.size, Some((320, 240)));
        assert_eq!(frame.data, key);
        assert!(starts_keyframe(&payload(true, &key)));
        assert!(!starts_keyframe(&payload(false, &key)));
        assert!(!starts_keyframe(&payload(true, &[0x01, 0, 0, 0])));
    }

    #[test]
    fn a_frame_with_a_lost_packet_is_dropped() {
        let mut frames = Vp8Frames::default();
        frames.push(&payload(true, &[0x01, 1, 2]), 9, false, 0).expect("start");
        frames.lost();
        assert_eq!(frames.push(&payload(false, &[3, 4, 5, 6]), 9, true, 0), Err(Dropped));
        let next = frames.push(&payload(true, &[0x01, 5, 6]), 18, true, 3000).expect("whole").expect("a frame");
        assert!(!next.keyframe);
        assert_eq!(next.at, 3000);
    }

    #[test]
    fn a_frame_whose_start_was_lost_is_not_made_up() {
        let mut frames = Vp8Frames::default();
        assert_eq!(frames.push(&payload(false, &[3, 4, 5, 6]), 9, true, 0), Err(Dropped));
    }
}
