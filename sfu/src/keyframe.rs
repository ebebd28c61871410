//! Keyframe requests (PLI/FIR) from subscribers, on their way to the publisher.
//!
//! Inbound RTCP normally stops inside webrtc-rs's interceptor chain. The
//! interceptor here marks PLI and FIR for delivery to the application, where the
//! SFU maps them from the leg's SSRC to the published track and asks its
//! publisher. Requests are rate-limited per track: a burst of subscribers joining
//! must not make the publisher send a keyframe each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Packet, Slot, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use crate::read_filter::ReadFilter;
use crate::source::SourceId;

/// Nearest the application in the registry's order: the report, NACK and
/// congestion interceptors nearer the wire read PLI and FIR but pass them on,
/// and here they are marked for delivery.
pub fn slot() -> Slot {
    Slot::from(14_000)
}
const MIN_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct SurfaceKeyframeRequests {
    /// Also surface sender reports (the loopback client counts them).
    sender_reports: bool,
}

impl SurfaceKeyframeRequests {
    #[cfg(feature = "loopback-client")]
    pub fn with_sender_reports() -> Self {
        Self { sender_reports: true }
    }
}

fn is_keyframe_request(packet: &dyn rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl ReadFilter for SurfaceKeyframeRequests {
    fn keep(&mut self, message: &mut TaggedPacket) -> bool {
        if let Packet::Rtcp(packets) = &message.message.packet
            && packets.iter().any(|packet| {
                is_keyframe_request(packet.as_ref())
                    || (self.sender_reports && packet.as_any().is::<rtcp::sender_report::SenderReport>())
            })
        {
            message.message.add(Attribute::DeliverToApplication);
        }
        true
    }
}

/// Which forwarded tracks a subscriber asked keyframes for, and when last.
#[derive(Default)]
pub struct KeyframeRequests {
    last: HashMap<SourceId, Instant>,
    /// The same per simulcast layer of a track.
    last_layer: HashMap<(SourceId, u8), Instant>,
}

impl KeyframeRequests {
    /// The media SSRCs that PLI/FIR packets ask keyframes of.
    pub fn media_ssrcs(&self, packets: &[Box<dyn rtcp::Packet>]) -> Vec<u32> {
        let mut ssrcs = Vec::new();
        for packet in packets {
            let any = packet.as_any();
            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                ssrcs.push(pli.media_ssrc);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                ssrcs.extend(fir.fir.iter().map(|entry| entry.ssrc));
            }
        }
        ssrcs
    }

    /// Whether a request for one simulcast layer of `source` should go on now.
    pub fn allow_layer(&mut self, source: SourceId, layer: u8, now: Instant) -> bool {
        match self.last_layer.get(&(source, layer)) {
            Some(last) if now.duration_since(*last) < MIN_INTERVAL => false,
            _ => {
                self.last_layer.insert((source, layer), now);
                true
            }
        }
    }

    /// Whether a request for `source` should go on now.
    pub fn allow(&mut self, source: SourceId, now: Instant) -> bool {
        match self.last.get(&source) {
            Some(last) if now.duration_since(*last) < MIN_INTERVAL => false,
            _ => {
                self.last.insert(source, now);
                true
            }
        }
    }
}
