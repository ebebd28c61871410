//! VP8 picture ids and TL0PICIDX that run on across a leg's layer switches.
//!
//! Each simulcast layer is a VP8 stream of its own, with its own picture ids
//! and TL0PICIDX (RFC 7741 §4.2). Forwarded unchanged, a switch makes both jump,
//! and a receiver's VP8 reference finder (Chromium's) takes the ids in between
//! for frames not received yet: the frames after them wait, received but not
//! decoded, until those ids age out (some 200 frames) or a keyframe comes, and
//! frames of the old layer that the switch left incomplete are waited for the
//! same way. Moved on so that the new layer's keyframe follows the last frame
//! sent, as the sequence numbers and timestamps are (`simulcast.rs`), the ids
//! never jump.

use bytes::{Bytes, BytesMut};

/// Where a payload descriptor keeps the ids this rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    /// Offset of the picture id, and whether it has 15 bits (M set) or 7.
    picture: Option<(usize, bool)>,
    /// Offset of TL0PICIDX.
    tl0: Option<usize>,
}

fn fields(payload: &[u8]) -> Option<Fields> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(Fields { picture: None, tl0: None });
    }
    let bits = *payload.get(1)?;
    let mut at = 2;
    let mut picture = None;
    if bits & 0x80 != 0 {
        let long = payload.get(at)? & 0x80 != 0;
        picture = Some((at, long));
        at += if long { 2 } else { 1 };
    }
    let tl0 = (bits & 0x40 != 0).then_some(at);
    // The descriptor must hold what it says it has.
    let end = at + usize::from(tl0.is_some()) + usize::from(bits & 0x30 != 0);
    (payload.len() >= end).then_some(Fields { picture, tl0 })
}

fn picture_mask(long: bool) -> u16 {
    if long { 0x7fff } else { 0x7f }
}

fn read_picture(payload: &[u8], at: usize, long: bool) -> u16 {
    if long { u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]]) } else { u16::from(payload[at] & 0x7f) }
}

fn write_picture(payload: &mut [u8], at: usize, long: bool, id: u16) {
    if long {
        let [high, low] = id.to_be_bytes();
        payload[at] = 0x80 | (high & 0x7f);
        payload[at + 1] = low;
    } else {
        payload[at] = (payload[at] & 0x80) | (id as u8 & 0x7f);
    }
}

/// Whether `id` comes after `last` in a space of `mask + 1` values.
fn is_newer(id: u16, last: u16, mask: u16) -> bool {
    let ahead = id.wrapping_sub(last) & mask;
    ahead != 0 && ahead <= mask / 2
}

/// A leg's offsets, and the last ids it sent (as sent).
#[derive(Clone, Debug, Default)]
pub struct Vp8Ids {
    picture_offset: u16,
    tl0_offset: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Ids {
    /// The leg switches to a new layer at the keyframe `payload` starts: its
    /// ids follow the last ones sent.
    pub fn switch(&mut self, payload: &[u8]) {
        let Some(found) = fields(payload) else { return };
        if let (Some((at, long)), Some(last)) = (found.picture, self.last_picture) {
            self.picture_offset = last.wrapping_add(1).wrapping_sub(read_picture(payload, at, long));
        }
        if let (Some(at), Some(last)) = (found.tl0, self.last_tl0) {
            self.tl0_offset = last.wrapping_add(1).wrapping_sub(payload[at]);
        }
    }

    /// `payload` with its ids moved on, when that changes them; notes the ids sent.
    pub fn apply(&mut self, payload: &Bytes) -> Option<Bytes> {
        let found = fields(payload)?;
        let moved =
            (found.picture.is_some() && self.picture_offset != 0) || (found.tl0.is_some() && self.tl0_offset != 0);
        let mut out = moved.then(|| BytesMut::from(&payload[..]));
        if let Some((at, long)) = found.picture {
            let mask = picture_mask(long);
            let id = read_picture(payload, at, long).wrapping_add(self.picture_offset) & mask;
            if let Some(out) = out.as_mut() {
                write_picture(out, at, long, id);
            }
            if self.last_picture.is_none_or(|last| is_newer(id, last & mask, mask)) {
                self.last_picture = Some(id);
            }
        }
        if let Some(at) = found.tl0 {
            let tl0 = payload[at].wrapping_add(self.tl0_offset);
            if let Some(out) = out.as_mut() {
                out[at] = tl0;
            }
            if self.last_tl0.is_none_or(|last| is_newer(u16::from(tl0), u16::from(last), 0xff)) {
                self.last_tl0 = Some(tl0);
            }
        }
        out.map(BytesMut::freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload with a 15-bit picture id, TL0PICIDX and TID, then one byte of frame.
    fn payload(picture: u16, tl0: u8) -> Bytes {
        let [high, low] = picture.to_be_bytes();
        Bytes::from(vec![0x90, 0xe0, 0x80 | high, low, tl0, 0x20, 0xaa])
    }

    fn ids(payload: &[u8]) -> (u16, u8) {
        (read_picture(payload, 2, true), payload[4])
    }

    #[test]
    fn a_switch_continues_the_ids_of_the_layer_left() {
        let mut leg = Vp8Ids::default();
        // The first layer goes out as it is: nothing to copy.
        assert_eq!(leg.apply(&payload(500, 20)), None);
        assert_eq!(leg.apply(&payload(501, 21)), None);
        // Its successor's keyframe, far off in both, comes next...
        leg.switch(&payload(32_760, 250));
        let keyframe = leg.apply(&payload(32_760, 250)).expect("moved on");
        assert_eq!(ids(&keyframe), (502, 22));
        assert_eq!(&keyframe[5..], &[0x20, 0xaa], "the rest untouched");
        // ...and the ids wrap with it: 15 bits, 8 bits.
        assert_eq!(ids(&leg.apply(&payload(32_767, 255)).expect("moved on")), (509, 27));
        assert_eq!(ids(&leg.apply(&payload(0, 0)).expect("moved on")), (510, 28));
        // A late packet of an earlier frame keeps its place and does not move "the last".
        assert_eq!(ids(&leg.apply(&payload(32_766, 254)).expect("moved on")), (508, 26));
        leg.switch(&payload(10, 3));
        assert_eq!(ids(&leg.apply(&payload(10, 3)).expect("moved on")), (511, 29));
    }

    #[test]
    fn seven_bit_picture_ids_and_descriptors_without_ids() {
        let mut leg = Vp8Ids::default();
        let short = |id: u8| Bytes::from(vec![0x90, 0x80, id & 0x7f, 0xaa]);
        leg.apply(&short(126));
        leg.switch(&short(3));
        assert_eq!(leg.apply(&short(3)).expect("moved on")[2], 127);
        assert_eq!(leg.apply(&short(4)).expect("moved on")[2], 0, "7 bits wrap");
        // No extension: nothing to rewrite. A truncated descriptor: left alone.
        assert_eq!(leg.apply(&Bytes::from_static(&[0x10, 0xaa])), None);
        assert_eq!(leg.apply(&Bytes::from_static(&[0x90, 0xc0, 0x80])), None);
    }
}
