//! NACKs for packets sent before a leg's last layer switch, dropped before
//! webrtc-rs's NACK responder answers them.
//!
//! A switch starts the subscriber's decoder again from the new layer's
//! keyframe, so the old layer's packets are of no use to it. Most switches are
//! down, when the subscriber's link just narrowed: its bottleneck dropped some
//! of the old layer's packets, and their retransmissions queued there ahead of
//! the keyframe. In Chromium behind a 400 kbit/s token bucket, the old layer's
//! frames kept arriving for over a second after the SFU had switched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

    /// `nack` without the sequence numbers before its SSRC's floor; None when
    /// nothing is left to resend.
    fn trim(&self, nack: &TransportLayerNack) -> Option<TransportLayerNack> {
        let Some(floor) = self.floor(nack.media_ssrc) else { return Some(nack.clone()) };
        let wanted: Vec<u16> = nack
            .nacks
            .iter()
            .flat_map(|pair| pair.packet_list())
            .filter(|sequence| sequence.wrapping_sub(floor) as i16 >= 0)
            .collect();
        (!wanted.is_empty())
            .then(|| TransportLayerNack { nacks: nack_pairs_from_sequence_numbers(&wanted), ..nack.clone() })
    }
}

pub struct DropStaleNacks {
    floors: ResendFloors,
}

impl DropStaleNacks {
    pub fn new(floors: ResendFloors) -> Self {
        Self { floors }
    }

    fn filter(&self, packets: Vec<Box<dyn rtcp::Packet>>) -> Vec<Box<dyn rtcp::Packet>> {
        packets
            .into_iter()
            .filter_map(|packet| match packet.as_any().downcast_ref::<TransportLayerNack>() {
                Some(nack) => self.floors.trim(nack).map(|kept| Box::new(kept) as Box<dyn rtcp::Packet>),
                None => Some(packet),
            })
            .collect()
    }
}

impl ReadFilter for DropStaleNacks {
    fn keep(&mut self, message: &mut TaggedPacket) -> bool {
        if let Packet::Rtcp(packets) = &mut message.message.packet {
            *packets = self.filter(std::mem::take(packets));
            return !packets.is_empty();
        }
        true
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(asked(floors.trim(&nack(7, &[10, 12, 40]))), [10, 12, 40]);
        floors.set(7, 30);
        assert_eq!(asked(floors.trim(&nack(7, &[10, 12, 29, 30, 40]))), [30, 40]);
        assert!(floors.trim(&nack(7, &[10, 12])).is_none(), "nothing left to resend");
        // Another leg's SSRC is not touched, and across the wrap the order holds.
        assert_eq!(asked(floors.trim(&nack(8, &[10]))), [10]);
        floors.set(7, 2);
        assert_eq!(asked(floors.trim(&nack(7, &[65_534, 65_535, 0, 1, 2, 3]))), [2, 3]);
        floors.remove(7);
        assert_eq!(asked(floors.trim(&nack(7, &[1]))), [1]);
    }

    #[test]
    fn an_rtcp_compound_loses_only_the_stale_nack() {
        let floors = ResendFloors::default();
        floors.set(7, 100);
        let filter = DropStaleNacks::new(floors);
        let pli =
            rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 1, media_ssrc: 7 };
        let kept = filter.filter(vec![Box::new(nack(7, &[50])), Box::new(pli), Box::new(nack(7, &[99, 100]))]);
        assert_eq!(kept.len(), 2);
        assert!(kept[0].as_any().is::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>());
        assert_eq!(asked(kept[1].as_any().downcast_ref::<TransportLayerNack>().cloned()), [100]);
    }
}
