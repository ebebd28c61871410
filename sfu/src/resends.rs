//! Which NACKs webrtc-rs's NACK responder gets to answer: a subscriber's NACKs
//! lose what is stale, then what is over its peer's budget.
//!
//! Stale: packets sent before a leg's last layer switch. A switch starts the
//! subscriber's decoder again from the new layer's keyframe, so the old layer's
//! packets are of no use to it. Most switches are down, when the subscriber's
//! link just narrowed: its bottleneck dropped some of the old layer's packets,
//! and their retransmissions queued there ahead of the keyframe. In Chromium
//! behind a 400 kbit/s token bucket, the old layer's frames kept arriving for
//! over a second after the SFU had switched.
//!
//! Over budget: the responder resends whatever is asked while it still holds
//! the packet, as often as it is asked. A subscriber that cannot keep up (a
//! 20-person mesh in the forward bench, each client receiving 19 cameras on the
//! SFU's own cores) drops packets and NACKs them; the resends add to the load,
//! the SFU's workers fall behind and shed media, and that loss is NACKed in turn:
//! in 1.95 s the clients sent 10,110 NACKs against 5,866 packets from the
//! publishers, and the meeting collapsed (README, "SFU forwarding"). A token
//! bucket per peer bounds the resends it can cause; within it the newest packets
//! asked for are resent, as they are the ones still in time to play.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Packet, Slot, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{TransportLayerNack, nack_pairs_from_sequence_numbers};

use crate::read_filter::ReadFilter;

/// Nearer the wire than the NACK responder (4_000), so inbound NACKs come here first.
pub fn slot() -> Slot {
    Slot::from(3_500)
}

/// Per outgoing SSRC, the first sequence number worth resending: the one that
/// carried the current layer's keyframe. Shared by a peer (which writes it at
/// each switch) and its interceptor (which reads it); both live on the peer's
/// worker thread, so the lock is never contended.
#[derive(Clone, Debug, Default)]
pub struct ResendFloors(Arc<Mutex<HashMap<u32, u16>>>);

impl ResendFloors {
    pub fn set(&self, ssrc: u32, first: u16) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(ssrc, first);
    }

    pub fn remove(&self, ssrc: u32) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&ssrc);
    }

    fn floor(&self, ssrc: u32) -> Option<u16> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&ssrc).copied()
    }

    /// The sequence numbers `nack` asks for, without those before its SSRC's floor.
    fn fresh(&self, nack: &TransportLayerNack) -> Vec<u16> {
        let asked = nack.nacks.iter().flat_map(|pair| pair.packet_list());
        match self.floor(nack.media_ssrc) {
            Some(floor) => asked.filter(|sequence| sequence.wrapping_sub(floor) as i16 >= 0).collect(),
            None => asked.collect(),
        }
    }
}

/// Resends one peer may cause per second, and at once. About a tenth of what a
/// peer receiving 19 cameras gets (3,800 packets/s), twice what one camera sends:
/// far above what a link losing a few percent asks for, far below a storm.
const RESENDS_PER_SECOND: f64 = 400.0;
const RESEND_BURST: f64 = 400.0;

/// A token bucket of resends.
#[derive(Debug)]
struct ResendBudget {
    tokens: f64,
    at: Option<Instant>,
}

impl Default for ResendBudget {
    fn default() -> Self {
        Self { tokens: RESEND_BURST, at: None }
    }
}

impl ResendBudget {
    /// How many of `wanted` resends the budget allows at `now`; they are spent.
    fn take(&mut self, now: Instant, wanted: usize) -> usize {
        let elapsed = self.at.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.tokens = (self.tokens + elapsed * RESENDS_PER_SECOND).min(RESEND_BURST);
        self.at = Some(now.max(self.at.unwrap_or(now)));
        let granted = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= granted as f64;
        granted
    }
}

pub struct ResendFilter {
    floors: ResendFloors,
    budget: ResendBudget,
}

impl ResendFilter {
    pub fn new(floors: ResendFloors) -> Self {
        Self { floors, budget: ResendBudget::default() }
    }

    /// `nack` as the responder should see it: None when nothing is left to resend.
    fn trim(&mut self, nack: &TransportLayerNack, now: Instant) -> Option<TransportLayerNack> {
        let fresh = self.floors.fresh(nack);
        let granted = self.budget.take(now, fresh.len());
        // The newest asked for: the list runs in sequence order.
        let kept = &fresh[fresh.len() - granted..];
        (!kept.is_empty()).then(|| TransportLayerNack { nacks: nack_pairs_from_sequence_numbers(kept), ..nack.clone() })
    }

    fn filter(&mut self, packets: Vec<Box<dyn rtcp::Packet>>, now: Instant) -> Vec<Box<dyn rtcp::Packet>> {
        packets
            .into_iter()
            .filter_map(|packet| match packet.as_any().downcast_ref::<TransportLayerNack>() {
                Some(nack) => self.trim(nack, now).map(|kept| Box::new(kept) as Box<dyn rtcp::Packet>),
                None => Some(packet),
            })
            .collect()
    }
}

impl ReadFilter for ResendFilter {
    fn keep(&mut self, message: &mut TaggedPacket) -> bool {
        let now = message.now;
        if let Packet::Rtcp(packets) = &mut message.message.packet {
            *packets = self.filter(std::mem::take(packets), now);
            return !packets.is_empty();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn nack(ssrc: u32, sequences: &[u16]) -> TransportLayerNack {
        TransportLayerNack { sender_ssrc: 1, media_ssrc: ssrc, nacks: nack_pairs_from_sequence_numbers(sequences) }
    }

    fn asked(nack: Option<TransportLayerNack>) -> Vec<u16> {
        nack.map(|nack| nack.nacks.iter().flat_map(|pair| pair.packet_list()).collect()).unwrap_or_default()
    }

    #[test]
    fn packets_before_the_switch_are_not_resent_and_the_rest_are() {
        let floors = ResendFloors::default();
        // No switch yet: everything asked for is resent.
        assert_eq!(floors.fresh(&nack(7, &[10, 12, 40])), [10, 12, 40]);
        floors.set(7, 30);
        assert_eq!(floors.fresh(&nack(7, &[10, 12, 29, 30, 40])), [30, 40]);
        let mut filter = ResendFilter::new(floors.clone());
        assert!(filter.trim(&nack(7, &[10, 12]), Instant::now()).is_none(), "nothing left to resend");
        // Another leg's SSRC is not touched, and across the wrap the order holds.
        assert_eq!(floors.fresh(&nack(8, &[10])), [10]);
        floors.set(7, 2);
        assert_eq!(floors.fresh(&nack(7, &[65_534, 65_535, 0, 1, 2, 3])), [2, 3]);
        floors.remove(7);
        assert_eq!(floors.fresh(&nack(7, &[1])), [1]);
    }

    #[test]
    fn an_rtcp_compound_loses_only_the_stale_nack() {
        let floors = ResendFloors::default();
        floors.set(7, 100);
        let mut filter = ResendFilter::new(floors);
        let pli =
            rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 1, media_ssrc: 7 };
        let packets: Vec<Box<dyn rtcp::Packet>> =
            vec![Box::new(nack(7, &[50])), Box::new(pli), Box::new(nack(7, &[99, 100]))];
        let kept = filter.filter(packets, Instant::now());
        assert_eq!(kept.len(), 2);
        assert!(kept[0].as_any().is::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>());
        assert_eq!(asked(kept[1].as_any().downcast_ref::<TransportLayerNack>().cloned()), [100]);
    }

    #[test]
    fn a_peer_asking_past_its_budget_gets_the_newest_and_the_budget_refills() {
        let mut filter = ResendFilter::new(ResendFloors::default());
        let start = Instant::now();
        let storm: Vec<u16> = (0..500).collect();
        // The whole burst, and of the 500 asked the newest 400.
        assert_eq!(asked(filter.trim(&nack(7, &storm), start)), (100..500).collect::<Vec<u16>>());
        // Spent: nothing more at once, on any of the peer's SSRCs.
        assert!(filter.trim(&nack(8, &[1]), start).is_none());
        // A quarter of a second buys a quarter of the rate.
        assert_eq!(asked(filter.trim(&nack(7, &storm), start + Duration::from_millis(250))).len(), 100);
        // A quiet peer is never held back, and the bucket holds no more than its burst.
        let later = start + Duration::from_secs(10);
        assert_eq!(asked(filter.trim(&nack(7, &[3, 5, 8]), later)), [3, 5, 8]);
        assert_eq!(asked(filter.trim(&nack(7, &storm), later)).len(), 397);
    }
}
