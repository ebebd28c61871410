//! The loopback client's simulcast publishing, as a browser does it: one track
//! in three layers (rid q, h, f), each its own SSRC and sequence numbers, every
//! packet marked with the mid and rid header extensions. Payloads are shaped
//! like VP8 (a payload descriptor, then a frame header that says keyframe or
//! not, with the frame's size on a keyframe) and end with a mark and the layer
//! number, so a receiver can tell which layer it was forwarded. A layer sends a
//! keyframe first and whenever a PLI asks for one on its SSRC.

use std::time::Instant;

use bytes::Bytes;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpSender};

use super::Outbound;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// Ends a simulcast payload, followed by the layer number.
const MARK: u8 = b'L';
const RIDS: [&str; 3] = ["q", "h", "f"];
const HEIGHTS: [u16; 3] = [180, 360, 720];

pub(super) struct Layer {
    rid: &'static str,
    ssrc: u32,
    sequence: u16,
    /// The next packet of this layer is a keyframe.
    keyframe: bool,
}

impl Layer {
    pub(super) fn coding(&self) -> RTCRtpCodingParameters {
        RTCRtpCodingParameters { rid: self.rid.to_string(), ssrc: Some(self.ssrc), ..Default::default() }
    }
}

pub(super) fn layers() -> Vec<Layer> {
    RIDS.into_iter().map(|rid| Layer { rid, ssrc: rand::random(), sequence: rand::random(), keyframe: true }).collect()
}

/// The layer a received payload says it is of, if it is a simulcast one.
pub(super) fn layer_of(payload: &[u8]) -> Option<u8> {
    match payload {
        [0x10, .., MARK, layer] if usize::from(*layer) < RIDS.len() => Some(*layer),
        _ => None,
    }
}

/// PLIs on a layer's SSRC make its next packet a keyframe.
pub(super) fn keyframes_asked(senders: &mut [Outbound], packets: &[Box<dyn rtcp::Packet>]) {
    for packet in packets {
        let Some(pli) = packet.as_any().downcast_ref::<PictureLossIndication>() else { continue };
        for layer in senders.iter_mut().flat_map(|outbound| outbound.layers.iter_mut()) {
            if layer.ssrc == pli.media_ssrc {
                layer.keyframe = true;
            }
        }
    }
}

/// What the packets due now share.
pub(super) struct Frame<'a> {
    pub payload_type: u8,
    /// The full layer's payload size; the others send a half and a quarter.
    pub size: usize,
    pub timestamp: u32,
    pub mid: &'a str,
    /// Microseconds since the client's epoch, for the receiver's delay figures.
    pub stamp: u64,
}

/// Where a simulcast payload carries its send time: after the VP8 headers.
pub(super) const STAMP_AT: usize = 11;

/// Sends one packet on every layer for each packet due; answers how many went.
pub(super) fn send(
    sender: &mut RTCRtpSender<'_>,
    outbound: &mut Outbound,
    due: u64,
    frame: &Frame<'_>,
    now: Instant,
) -> u64 {
    let ids = {
        let extensions = &sender.get_parameters().rtp_parameters.header_extensions;
        let id = |uri: &str| extensions.iter().find(|ext| ext.uri == uri).and_then(|ext| u8::try_from(ext.id).ok());
        id(MID_URI).zip(id(RID_URI))
    };
    let Some((mid_id, rid_id)) = ids else {
        // Not negotiated (yet): the SFU could not tell the layers apart.
        return 0;
    };
    let mut sent = 0;
    while outbound.sent < due {
        outbound.sent += 1;
        for (index, layer) in outbound.layers.iter_mut().enumerate() {
            let mut header = rtp::header::Header {
                version: 2,
                marker: true,
                payload_type: frame.payload_type,
                sequence_number: layer.sequence,
                timestamp: frame.timestamp,
                ssrc: layer.ssrc,
                ..Default::default()
            };
            let _ = header.set_extension(mid_id, Bytes::copy_from_slice(frame.mid.as_bytes()));
            let _ = header.set_extension(rid_id, Bytes::from_static(layer.rid.as_bytes()));
            let size = (frame.size >> (RIDS.len() - 1 - index)).max(STAMP_AT + 8 + 2);
            let payload = payload(index as u8, std::mem::take(&mut layer.keyframe), size, frame.stamp);
            layer.sequence = layer.sequence.wrapping_add(1);
            if sender.write_rtp(now, rtp::Packet { header, payload }).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// A VP8-shaped payload of `size` bytes for `layer`.
fn payload(layer: u8, keyframe: bool, size: usize, stamp: u64) -> Bytes {
    let mut payload = vec![0u8; size];
    payload[0] = 0x10; // the start of a partition, no extensions
    if keyframe {
        let height = HEIGHTS[usize::from(layer)];
        let [w0, w1] = (height / 9 * 16).to_le_bytes();
        let [h0, h1] = height.to_le_bytes();
        payload[1..11].copy_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]);
    } else {
        payload[1] = 0x01; // an interframe
    }
    payload[STAMP_AT..STAMP_AT + 8].copy_from_slice(&stamp.to_be_bytes());
    payload[size - 2] = MARK;
    payload[size - 1] = layer;
    Bytes::from(payload)
}
