//! Real media for the loopback client: Opus packets and VP8 frames made by an
//! encoder (a test makes them with ffmpeg), sent in a loop at their own rate,
//! VP8 frames cut into packets with the RFC 7741 payload descriptor, so what
//! the SFU records from them is a file a player decodes. A clip may lose
//! packets on purpose (never sent, so no retransmission brings them back).

use std::time::Instant;

use bytes::Bytes;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpSender, RtpCodecKind};

use super::Outbound;

/// The largest VP8 payload in one packet, descriptor excluded.
const VP8_CHUNK: usize = 1_100;

#[derive(Clone, Debug, Default)]
pub struct MediaClip {
    /// 20 ms Opus packets.
    pub opus: Vec<Bytes>,
    /// VP8 frames, the first a keyframe.
    pub vp8: Vec<Bytes>,
    pub frames_per_second: u32,
    /// Lose every Nth packet of each track.
    pub lose_every: Option<u64>,
}

/// The next clip unit a track sends.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Position {
    next: u64,
    /// A receiver lost the picture: start the clip over at its first keyframe, as an encoder would send one.
    keyframe_asked: bool,
}

/// Marks the clip tracks a PLI names.
pub(super) fn keyframes_asked(senders: &mut [Outbound], packets: &[Box<dyn rtcp::Packet>]) {
    for packet in packets {
        let Some(pli) = packet.as_any().downcast_ref::<PictureLossIndication>() else { continue };
        for outbound in senders.iter_mut().filter(|outbound| outbound.ssrc == pli.media_ssrc) {
            outbound.clip.keyframe_asked = true;
        }
    }
}

/// Sends what is due `elapsed` seconds after the start; returns the packets sent.
pub(super) fn send(
    sender: &mut RTCRtpSender<'_>,
    outbound: &mut Outbound,
    clip: &MediaClip,
    payload_type: u8,
    elapsed: f64,
    now: Instant,
) -> u64 {
    let (units, rate, ticks) = match outbound.kind {
        RtpCodecKind::Video => (&clip.vp8, clip.frames_per_second.max(1), 90_000 / clip.frames_per_second.max(1)),
        _ => (&clip.opus, 50, 960),
    };
    if units.is_empty() {
        return 0;
    }
    let due = (elapsed * f64::from(rate)) as u64;
    let mut sent = 0;
    while outbound.sent < due {
        let index = outbound.sent;
        if std::mem::take(&mut outbound.clip.keyframe_asked) && outbound.kind == RtpCodecKind::Video {
            outbound.clip.next = 0;
        }
        let unit = &units[(outbound.clip.next % units.len() as u64) as usize];
        outbound.clip.next += 1;
        let timestamp = (index as u32).wrapping_mul(ticks);
        let payloads: Vec<(Bytes, bool)> = match outbound.kind {
            RtpCodecKind::Video => vp8_packets(unit),
            _ => vec![(unit.clone(), index == 0)],
        };
        for (payload, marker) in payloads {
            let sequence = outbound.sequence;
            outbound.sequence = outbound.sequence.wrapping_add(1);
            if clip.lose_every.is_some_and(|every| u64::from(sequence) % every == every - 1) {
                continue;
            }
            let header = rtp::header::Header {
                version: 2,
                marker,
                payload_type,
                sequence_number: sequence,
                timestamp,
                ssrc: outbound.ssrc,
                ..Default::default()
            };
            if sender.write_rtp(now, rtp::Packet { header, payload }).is_ok() {
                sent += 1;
            }
        }
        outbound.sent += 1;
    }
    sent
}

/// One frame's packets: a one-byte descriptor (S on the first) and the marker on the last.
fn vp8_packets(frame: &Bytes) -> Vec<(Bytes, bool)> {
    let chunks: Vec<&[u8]> = frame.chunks(VP8_CHUNK).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let mut payload = Vec::with_capacity(chunk.len() + 1);
            payload.push(if index == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            (Bytes::from(payload), index == last)
        })
        .collect()
}
