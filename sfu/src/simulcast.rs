//! Simulcast: a publisher sends its camera as up to three layers (`rid` q, h, f:
//! quarter, half and full size), each its own RTP stream with its own SSRC,
//! sequence numbers and keyframes. Each subscriber gets one of them, on one leg
//! under one SSRC, so the leg must look like a single stream to its decoder:
//! a switch happens only at a keyframe of the layer switched to, and sequence
//! numbers and timestamps are rewritten to run on across the switch.
//!
//! Pure, no I/O: [`LayerTag`] is what the publisher's worker learns of a packet
//! once (its layer, whether a keyframe starts there, the frame height), and
//! [`LayerForwarder`] is one subscriber leg's choice of layer and its rewriting.

use std::time::{Duration, Instant};

use crate::layer_fit::LayerFit;

/// Layers are numbered from the lowest (`q`) up.
pub const LAYERS: usize = 3;
/// Heights assumed for layers whose keyframes have not told theirs.
pub const DEFAULT_HEIGHTS: [u16; LAYERS] = [180, 360, 720];
/// A layer with no packet for this long is taken to be paused at the publisher.
const LIVE_FOR: Duration = Duration::from_millis(1_000);
/// For this long after a leg's first packet the wanted layer is taken to exist:
/// the layers' first packets come one by one, and falling back to whichever
/// came first would cost a keyframe of each.
const SETTLING: Duration = Duration::from_millis(300);
/// What one padding packet costs on the wire: an RTP header with the
/// transport-wide sequence number (20 bytes), 4 bytes of padding (webrtc-rs
/// pads no more), the SRTP tag, UDP and IP.
const PADDING_PACKET_BYTES: usize = 62;
/// Padding owed for longer than this (a pause between frames) is forgotten.
const PADDING_LONGEST_GAP: Duration = Duration::from_millis(100);

/// The layer number of a simulcast `rid`: q, h, f as browsers (and this project's
/// client) name them, or 0, 1, 2.
pub fn layer_of_rid(rid: &str) -> Option<u8> {
    match rid {
        "q" | "0" | "low" => Some(0),
        "h" | "1" | "mid" => Some(1),
        "f" | "2" | "high" => Some(2),
        _ => None,
    }
}

pub fn rid_of_layer(layer: u8) -> &'static str {
    match layer {
        0 => "q",
        1 => "h",
        _ => "f",
    }
}

/// What the publisher's side learns of one packet of a simulcast layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerTag {
    pub layer: u8,
    /// The packet starts a keyframe: a decoder can start (or switch) here.
    pub keyframe: bool,
    /// The frame height, when the packet starts a VP8 keyframe.
    pub height: Option<u16>,
}

/// The codecs whose keyframes the SFU can see in a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecFamily {
    Vp8,
    H264,
    /// Any other: every packet counts as a switching point (a keyframe asked for
    /// at the switch repairs the picture).
    Other,
}

impl CodecFamily {
    pub fn of_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/vp8") {
            Self::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            Self::H264
        } else {
            Self::Other
        }
    }
}

/// Whether `payload` starts a keyframe, and its height when the codec says.
pub fn keyframe_start(codec: CodecFamily, payload: &[u8]) -> Option<Option<u16>> {
    match codec {
        CodecFamily::Vp8 => vp8_keyframe_start(payload),
        CodecFamily::H264 => h264_keyframe_start(payload).then_some(None),
        CodecFamily::Other => Some(None),
    }
}

/// RFC 7741: the payload descriptor, then (at a partition start) the VP8 frame
/// header, whose first bit is 0 on a keyframe; a keyframe's header goes on with
/// a start code and the frame's 14-bit width and height.
pub fn vp8_keyframe_start(payload: &[u8]) -> Option<Option<u16>> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    let mut at = 1;
    if extended {
        let bits = *payload.get(1)?;
        at = 2;
        if bits & 0x80 != 0 {
            // PictureID: 15 bits when its first bit (M) is set, else 7.
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if bits & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if bits & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    if !start || partition != 0 {
        return None;
    }
    let header = payload.get(at..)?;
    if header.len() < 3 || header[0] & 0x01 != 0 {
        return None;
    }
    let height = match header.get(3..10) {
        Some([0x9d, 0x01, 0x2a, _, _, low, high]) => Some(u16::from_le_bytes([*low, *high]) & 0x3fff),
        _ => None,
    };
    Some(height)
}

/// RFC 6184: an IDR slice or a sequence parameter set, alone, in a STAP-A, or
/// at the start of a fragmented unit.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    let is_key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    let Some(&first) = payload.first() else { return false };
    match first & 0x1f {
        24 => {
            let mut at = 1;
            while let Some(size) = payload.get(at..at + 2) {
                let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
                if payload.get(at + 2).is_some_and(|nal| is_key(*nal)) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|fu| fu & 0x80 != 0 && is_key(*fu)),
        _ => is_key(first),
    }
}

/// What to do with one packet on one subscriber leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Send it with this sequence number and timestamp; `None`: drop it.
    pub forward: Option<(u16, u32)>,
    /// The leg waits for a keyframe of this layer to switch to it.
    pub wants_keyframe: Option<u8>,
}

/// One subscriber leg's layer choice and sequence/timestamp rewriting.
#[derive(Clone, Debug)]
pub struct LayerForwarder {
    clock_rate: u32,
    /// The largest height the subscriber shows this video at, if it said.
    max_height: Option<u16>,
    heights: [Option<u16>; LAYERS],
    last_seen: [Option<Instant>; LAYERS],
    first_seen: Option<Instant>,
    current: Option<u8>,
    seq_offset: u16,
    ts_offset: u32,
    /// The first (publisher) sequence number of the current layer since the switch.
    switched_at: u16,
    /// The last packet sent: (sequence, timestamp, when), as rewritten.
    last_out: Option<(u16, u32, Instant)>,
    /// The rewritten sequence number of the current layer's keyframe: the
    /// subscriber decodes from there, so nothing before it is worth resending.
    keyframe_out: Option<u16>,
    /// The layers' bitrates against this leg's share of the downlink estimate.
    fit: LayerFit,
    /// Padding bytes a probe wants sent and not sent yet, and when that was counted.
    padding_owed: f64,
    padding_counted: Option<Instant>,
    /// Padding packets handed out so far (for the layer choice's debug log).
    padding_sent: u64,
}

/// A run of padding packets to send after a frame: `count` sequence numbers
/// from `first`, all with the frame's `timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    pub first: u16,
    pub count: u16,
    pub timestamp: u32,
}

impl LayerForwarder {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            max_height: None,
            heights: [None; LAYERS],
            last_seen: [None; LAYERS],
            first_seen: None,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            switched_at: 0,
            last_out: None,
            keyframe_out: None,
            fit: LayerFit::default(),
            padding_owed: 0.0,
            padding_counted: None,
            padding_sent: 0,
        }
    }

    pub fn set_max_height(&mut self, max_height: Option<u16>) {
        self.max_height = max_height;
    }

    /// A packet of `layer` with `bytes` of payload, seen at `now`, while the leg's
    /// share of the subscriber's downlink estimate is `budget` (`None`: no
    /// estimate): measures the layers' bitrates and moves the bandwidth's ceiling.
    pub fn observe(&mut self, layer: u8, bytes: usize, budget: Option<u64>, now: Instant) {
        self.fit.record(layer, bytes, now);
        let probe_up_to = self.wanted_for_size();
        self.fit.update(budget, probe_up_to, now);
    }

    /// The padding a probe wants sent after the frame whose last packet, the
    /// publisher's `sequence`, was just forwarded: sequence numbers taken from
    /// the leg's run, so the packets after them move on by as many. A packet of
    /// the publisher's from before the padding that comes late (reordered) is
    /// dropped from then on, as after a switch: it has no number left. None
    /// after a last packet that came late (a retransmission): the next frame
    /// may be under way, and padding inside a frame leaves the receiver unable
    /// to put it together until a keyframe.
    pub fn padding(&mut self, sequence: u16, now: Instant) -> Option<Padding> {
        let layer = self.current?;
        let newest = self.last_out.is_some_and(|(last, _, _)| last == sequence.wrapping_add(self.seq_offset));
        if !newest {
            return None;
        }
        let bps = self.fit.padding_bps(layer, now);
        let counted = self.padding_counted.replace(now);
        if bps == 0 {
            self.padding_owed = 0.0;
            return None;
        }
        let elapsed = counted.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.padding_owed += bps as f64 / 8.0 * elapsed.min(PADDING_LONGEST_GAP).as_secs_f64();
        let count = (self.padding_owed / PADDING_PACKET_BYTES as f64) as u16;
        let (last, timestamp, sent) = self.last_out?;
        if count == 0 {
            return None;
        }
        self.padding_owed -= f64::from(count) * PADDING_PACKET_BYTES as f64;
        self.padding_sent += u64::from(count);
        self.seq_offset = self.seq_offset.wrapping_add(count);
        self.switched_at = sequence.wrapping_add(1);
        self.last_out = Some((last.wrapping_add(count), timestamp, sent));
        Some(Padding { first: last.wrapping_add(1), count, timestamp })
    }

    /// The first sequence number worth resending: the current layer's keyframe's.
    pub fn resend_from(&self) -> Option<u16> {
        self.keyframe_out
    }

    /// Whether a probe is padding now.
    pub fn probing(&self) -> bool {
        self.fit.probing()
    }

    /// Padding packets handed out so far.
    pub fn padding_sent(&self) -> u64 {
        self.padding_sent
    }

    /// How many times the subscriber's estimator has cut its estimate so far.
    pub fn set_estimate_cuts(&mut self, cuts: u64) {
        self.fit.set_estimate_cuts(cuts);
    }

    /// The layers' measured bitrates, lowest first (0: not measured yet).
    pub fn layer_rates(&self) -> [u64; LAYERS] {
        [0, 1, 2].map(|layer| self.fit.rate(layer).unwrap_or(0))
    }

    /// What this leg needs of the downlink: the layer the subscriber's size
    /// asks for at its measured rate, with the room a probe or a step up to it
    /// asks for; `None` until that rate is known.
    pub fn demand_bps(&self) -> Option<u64> {
        let bps = self.fit.rate(self.wanted_for_size())?;
        Some((bps as f64 * crate::layer_fit::PROBE_OVER) as u64)
    }

    /// The layer being forwarded now.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// The layer wanted for the size the subscriber shows the video at and for its
    /// downlink, ignoring which layers the publisher sends now.
    pub fn wanted(&self) -> u8 {
        self.wanted_for_size().min(self.fit.ceiling())
    }

    fn wanted_for_size(&self) -> u8 {
        // A layer not seen yet is taken to be half the next one up, when that one is known.
        let height = |layer: usize| {
            let known = (layer..LAYERS).find_map(|above| Some(self.heights[above]? >> (above - layer)));
            known.unwrap_or(DEFAULT_HEIGHTS[layer])
        };
        match self.max_height {
            None => (LAYERS - 1) as u8,
            Some(max) => (0..LAYERS).rev().find(|layer| height(*layer) <= max).unwrap_or(0) as u8,
        }
    }

    /// The layer to forward: the wanted one when it is live, else the nearest
    /// live one below it, else the nearest above.
    pub fn target(&self, now: Instant) -> u8 {
        let wanted = self.wanted();
        if self.first_seen.is_none_or(|first| now.saturating_duration_since(first) < SETTLING) {
            return wanted;
        }
        let live = |layer: u8| {
            self.last_seen[usize::from(layer)].is_some_and(|seen| now.saturating_duration_since(seen) < LIVE_FOR)
        };
        if live(wanted) {
            return wanted;
        }
        let below = (0..wanted).rev().find(|layer| live(*layer));
        let above = (wanted + 1..LAYERS as u8).find(|layer| live(*layer));
        below.or(above).unwrap_or(wanted)
    }

    /// The layers this leg needs the publisher to send: the wanted one and the
    /// one forwarded instead, or the top one while no layer arrives at all (so
    /// pausing cannot leave nothing to forward). `None` while the layers' first
    /// packets are still coming in.
    pub fn needed(&self, now: Instant) -> Option<(u8, u8)> {
        let first = self.first_seen?;
        if now.saturating_duration_since(first) < SETTLING {
            return None;
        }
        let any_live = self.last_seen.iter().flatten().any(|seen| now.saturating_duration_since(*seen) < LIVE_FOR);
        let forwarded = if any_live { self.target(now) } else { (LAYERS - 1) as u8 };
        Some((self.wanted(), forwarded))
    }

    /// Decides on one packet of layer `tag.layer` with the publisher's `sequence`
    /// and `timestamp`, arriving at `now`.
    pub fn handle(&mut self, tag: LayerTag, sequence: u16, timestamp: u32, now: Instant) -> Decision {
        let layer = usize::from(tag.layer);
        if layer >= LAYERS {
            return Decision { forward: None, wants_keyframe: None };
        }
        self.last_seen[layer] = Some(now);
        self.first_seen.get_or_insert(now);
        if let Some(height) = tag.height {
            self.heights[layer] = Some(height);
        }
        let target = self.target(now);
        let switching = self.current != Some(target);
        if switching && tag.layer == target && tag.keyframe {
            self.switch(sequence, timestamp, now);
            self.current = Some(target);
            let forward = self.rewrite(sequence, timestamp, now);
            self.keyframe_out = forward.map(|(sequence, _)| sequence);
            return Decision { forward, wants_keyframe: None };
        }
        let wants_keyframe = switching.then_some(target);
        let forward = if self.current == Some(tag.layer) && !self.holds_back(target, timestamp) {
            self.rewrite(sequence, timestamp, now)
        } else {
            None
        };
        Decision { forward, wants_keyframe }
    }

    /// Whether the current layer's packet with the publisher's `timestamp`
    /// waits out the switch down to `target`: when the current layer no longer
    /// fits the downlink, its frames after the one in flight are dropped. They
    /// would only add to the link's queue, and the keyframe of the layer
    /// switched to, coming into a full queue, was lost with them (in Chromium
    /// behind `tc tbf`, decoding then waited seconds for the next keyframe).
    fn holds_back(&self, target: u8, timestamp: u32) -> bool {
        let Some(current) = self.current else { return false };
        let too_big = target < current && self.fit.ceiling() < current;
        let next_frame = self.last_out.is_none_or(|(_, last, _)| last != timestamp.wrapping_add(self.ts_offset));
        too_big && next_frame
    }

    /// The offsets that make the new layer's packet at (`sequence`,
    /// `timestamp`) follow the last one sent: the next sequence number, and the
    /// timestamp moved on by the time since then.
    fn switch(&mut self, sequence: u16, timestamp: u32, now: Instant) {
        self.switched_at = sequence;
        let Some((last_sequence, last_timestamp, sent)) = self.last_out else {
            return;
        };
        let elapsed = now.saturating_duration_since(sent);
        let ticks = (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000).max(1);
        let next_timestamp = last_timestamp.wrapping_add(ticks.min(u128::from(u32::MAX / 2)) as u32);
        self.seq_offset = last_sequence.wrapping_add(1).wrapping_sub(sequence);
        self.ts_offset = next_timestamp.wrapping_sub(timestamp);
    }

    fn rewrite(&mut self, sequence: u16, timestamp: u32, now: Instant) -> Option<(u16, u32)> {
        // Older than the switch (reordered): it belongs before the keyframe.
        if (sequence.wrapping_sub(self.switched_at) as i16) < 0 {
            return None;
        }
        let out = (sequence.wrapping_add(self.seq_offset), timestamp.wrapping_add(self.ts_offset));
        let newer = self.last_out.is_none_or(|(last, _, _)| (out.0.wrapping_sub(last) as i16) > 0);
        if newer {
            self.last_out = Some((out.0, out.1, now));
        }
        Some(out)
    }
}

#[cfg(test)]
#[path = "simulcast_tests.rs"]
mod tests;
