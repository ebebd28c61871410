//! Forwarding a packet to a client, and the share of its downlink estimate
//! each of its video legs may use. Kept apart from `peer.rs`, which stays
//! about negotiation.

use std::time::{Duration, Instant};

use rtc::rtp;

use super::Peer;
use crate::simulcast::LayerTag;
use crate::source::SourceId;

/// A subscriber's estimate is split over its video legs again this often:
/// their needs move with the layers' rates, measured over a second.
const SHARES_EVERY: Duration = Duration::from_millis(250);

impl Peer {
    /// Sends a forwarded packet on this client's leg for `source`; whether it went.
    /// `layer` tags a packet of a simulcast track: only the layer chosen for this
    /// client goes, renumbered to run on across switches.
    pub fn forward(&mut self, source: SourceId, packet: &rtp::Packet, layer: Option<LayerTag>, now: Instant) -> bool {
        if !self.connected {
            return false;
        }
        let budget = if layer.is_some() { self.video_budget(source, now) } else { None };
        let Some(leg) = self.legs.get_mut(&source) else { return false };
        // Not before negotiation settled: a layer switch must not use up a keyframe that cannot go.
        if leg.translation.is_none() {
            return false;
        }
        let mut renumbered = None;
        if let Some(tag) = layer {
            let limits = (self.video_constraints.get(&leg.publisher_user).copied(), budget, self.downlink.cuts());
            let sink = (&mut self.keyframes, &mut self.outputs, &self.resend_floors);
            let Some(rewritten) = super::layers::pick(leg, (&self.key, source), tag, packet, limits, sink, now) else {
                return false;
            };
            renumbered = Some(rewritten);
        }
        let Some(mut translated) = leg.translation.as_ref().and_then(|translation| translation.apply(packet)) else {
            return false;
        };
        if let Some(rewritten) = renumbered {
            translated.header.sequence_number = rewritten.sequence;
            translated.header.timestamp = rewritten.timestamp;
            if let Some(payload) = rewritten.payload {
                translated.payload = payload;
            }
        }
        let Some(mut sender) = self.pc.rtp_sender(leg.sender) else { return false };
        let bytes = translated.payload.len() + super::layers::PACKET_OVERHEAD;
        let (ssrc, payload_type) = (translated.header.ssrc, translated.header.payload_type);
        if let Err(error) = sender.write_rtp(now, translated) {
            tracing::trace!(peer = %self.key, %error, "a forwarded packet was refused");
            return false;
        }
        if !leg.video {
            self.audio_rate.record(bytes, now);
        }
        // A probe's padding goes between frames, where it splits nothing.
        if packet.header.marker
            && let Some(padding) =
                leg.layers.as_mut().and_then(|layers| layers.padding(packet.header.sequence_number, now))
        {
            for n in 0..padding.count {
                let header = rtp::header::Header {
                    version: 2,
                    padding: true,
                    payload_type,
                    sequence_number: padding.first.wrapping_add(n),
                    timestamp: padding.timestamp,
                    ssrc,
                    ..Default::default()
                };
                if let Err(error) = sender.write_rtp(now, rtp::Packet { header, payload: Default::default() }) {
                    tracing::debug!(peer = %self.key, %error, "a padding packet was refused");
                    break;
                }
            }
        }
        true
    }

    /// This client's downlink estimate, once its TWCC feedback gave one.
    #[cfg(test)]
    pub fn downlink_bps(&self) -> Option<u64> {
        self.downlink.bps()
    }

    /// Video leg `source`'s share of the downlink estimate: what the audio
    /// sent to this client leaves of it, split by need (`split_budget`) again
    /// every [`SHARES_EVERY`]. The audio comes first: it is not switched down,
    /// so a layer chosen without it would not fit beside it.
    fn video_budget(&mut self, source: SourceId, now: Instant) -> Option<u64> {
        let bps = self.downlink.bps()?;
        let available = bps.saturating_sub(self.audio_rate.bps().unwrap_or(0));
        if self.video_legs <= 1 {
            return Some(available);
        }
        if self.shares_split.is_none_or(|split| now.saturating_duration_since(split) >= SHARES_EVERY) {
            self.shares_split = Some(now);
            let (sources, demands): (Vec<SourceId>, Vec<Option<u64>>) = self
                .legs
                .iter()
                .filter(|(_, leg)| leg.video)
                .map(|(source, leg)| (*source, leg.layers.as_ref().and_then(|layers| layers.demand_bps())))
                .unzip();
            let shares = crate::layer_fit::split_budget(available, &demands);
            let part = |share: u64| if available == 0 { 0.0 } else { share as f64 / available as f64 };
            self.video_shares = sources.into_iter().zip(shares.into_iter().map(part)).collect();
        }
        // Kept as parts of what is available, so a drop of the estimate counts at once.
        let part = self.video_shares.get(&source).copied().unwrap_or(1.0 / self.video_legs as f64);
        Some((available as f64 * part) as u64)
    }
}
