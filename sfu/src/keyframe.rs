//! Keyframe requests (PLI/FIR) from subscribers, on their way to the publisher.
//!
//! Inbound RTCP normally stops inside webrtc-rs's interceptor chain. The
//! interceptor here marks PLI and FIR for delivery to the application, where the
//! SFU maps them from the leg's SSRC to the published track and asks its
//! publisher. Requests are rate-limited per track: a burst of subscribers joining
//! must not make the publisher send a keyframe each.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::source::SourceId;

/// Near the wire, before the report and NACK interceptors consume RTCP.
pub fn slot() -> Slot {
    Slot::from(14_000)
}
const MIN_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct SurfaceKeyframeRequests {
    /// Also surface sender reports (the loopback client counts them).
    sender_reports: bool,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl SurfaceKeyframeRequests {
    #[cfg(feature = "loopback-client")]
    pub fn with_sender_reports() -> Self {
        Self { sender_reports: true, ..Self::default() }
    }
}

fn is_keyframe_request(packet: &dyn rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SurfaceKeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut message: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &message.message.packet
            && packets.iter().any(|packet| {
                is_keyframe_request(packet.as_ref())
                    || (self.sender_reports && packet.as_any().is::<rtcp::sender_report::SenderReport>())
            })
        {
            message.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(message);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(message);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl Interceptor for SurfaceKeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
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
