//! The simulcast side of a peer: which layer a publisher's packet belongs to,
//! keyframe requests for one layer, the sizes a subscriber shows videos at, and
//! telling a publisher which of its layers are needed. Kept apart from
//! `peer.rs`, which stays about negotiation and forwarding.

use std::time::Instant;

use rapat_wire::signal::SfuReplyKind;
use rtc::media_stream::MediaStreamTrackId;
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpTransceiverId;
use serde_json::json;

use super::{Leg, Peer, PeerError, PeerKey, PeerOutput, UnknownLayer};
use crate::keyframe::KeyframeRequests;
use crate::resends::ResendFloors;
use crate::simulcast::{LayerForwarder, LayerTag};
use crate::simulcast_sdp::{PlayingTrack, keep_playing_layers};
use crate::source::SourceId;

impl Peer {
    /// Asks this client (a publisher) for a keyframe of one simulcast layer.
    pub fn request_layer_keyframe(&mut self, source: SourceId, layer: u8, now: Instant) {
        let Some(inbound) = self.inbound.values().find(|inbound| inbound.source == source) else { return };
        let Some(media_ssrc) = inbound.layers.iter().find(|(seen, _)| *seen == layer).map(|(_, ssrc)| *ssrc) else {
            return;
        };
        if let Some(mut receiver) = self.pc.rtp_receiver(inbound.receiver) {
            let pli =
                rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 0, media_ssrc };
            if let Err(error) = receiver.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(peer = %self.key, %error, "cannot send a layer keyframe request");
            }
        }
    }

    /// Tells this client (a publisher) which layers of its simulcast track
    /// `source` some subscriber needs.
    pub fn set_publisher_layers(&mut self, source: SourceId, active: &crate::layer_demand::ActiveLayers) {
        let Some((track, inbound)) = self.inbound.iter().find(|(_, inbound)| inbound.source == source) else { return };
        if !inbound.simulcast {
            return;
        }
        let mid = self.pc.rtp_transceiver(RTCRtpTransceiverId::from(inbound.receiver)).and_then(|t| t.mid().clone());
        let payload = json!({
            "trackId": track.to_string(),
            "mid": mid,
            "active": crate::layer_demand::active_rids(active),
        });
        self.signal(SfuReplyKind::PublisherLayers, payload);
    }

    /// This client shows `publisher`'s video at most `max_height` pixels high.
    pub fn set_video_constraint(&mut self, publisher: uuid::Uuid, max_height: u16) {
        self.video_constraints.insert(publisher, max_height);
        for leg in self.legs.values_mut().filter(|leg| leg.publisher_user == publisher) {
            if let Some(forwarder) = leg.layers.as_mut() {
                forwarder.set_max_height(Some(max_height));
            }
        }
    }

    /// A client's offer or answer, made to keep the SSRCs of the simulcast tracks
    /// already playing ([`crate::simulcast_sdp`]).
    pub(super) fn client_description(
        &mut self,
        kind: RTCSdpType,
        sdp: &str,
    ) -> Result<RTCSessionDescription, PeerError> {
        let sdp = self.keep_playing_layers(sdp);
        let description = if kind == RTCSdpType::Answer {
            RTCSessionDescription::answer(sdp)
        } else {
            RTCSessionDescription::offer(sdp)
        };
        description.map_err(|error| PeerError::BadDescription(error.to_string()))
    }

    fn keep_playing_layers(&mut self, sdp: &str) -> String {
        let simulcast: Vec<_> = self
            .inbound
            .iter()
            .filter(|(_, inbound)| inbound.simulcast)
            .map(|(track, inbound)| (track.clone(), inbound.receiver))
            .collect();
        let playing: Vec<PlayingTrack> = simulcast
            .into_iter()
            .filter_map(|(track_id, receiver)| {
                let mid = self.pc.rtp_transceiver(RTCRtpTransceiverId::from(receiver))?.mid().clone()?;
                Some(PlayingTrack { mid, track_id })
            })
            .collect();
        keep_playing_layers(sdp, &playing)
    }

    /// The simulcast layer of a packet received on `track`: `Ok(None)` for a
    /// single-stream track.
    pub fn layer_of(
        &mut self,
        track: &MediaStreamTrackId,
        packet: &rtp::Packet,
    ) -> Result<Option<LayerTag>, UnknownLayer> {
        let Some(inbound) = self.inbound.get_mut(track) else { return Ok(None) };
        if !inbound.simulcast {
            return Ok(None);
        }
        let ssrc = packet.header.ssrc;
        let layer = match inbound.layers.iter().find(|(_, seen)| *seen == ssrc) {
            Some((layer, _)) => *layer,
            None => {
                // The layer's first packet can come before its open event is handled.
                let receiver = self.pc.rtp_receiver(inbound.receiver).ok_or(UnknownLayer)?;
                let layer = receiver.track().rid(ssrc).and_then(|rid| crate::simulcast::layer_of_rid(rid));
                let layer = layer.ok_or(UnknownLayer)?;
                inbound.layers.push((layer, ssrc));
                layer
            }
        };
        let keyframe = crate::simulcast::keyframe_start(inbound.codec, &packet.payload);
        Ok(Some(LayerTag { layer, keyframe: keyframe.is_some(), height: keyframe.flatten() }))
    }
}

/// Bytes a forwarded packet costs on the wire beyond its payload (RTP header
/// and extensions, SRTP tag, UDP and IP), for comparing layer rates with the estimate.
pub(super) const PACKET_OVERHEAD: usize = 70;

/// Whether `leg` sends this packet of a simulcast track, and under which
/// sequence number and timestamp, for the subscriber's `max_height`, its
/// leg's share of the downlink estimate, `budget`, and the estimator's `cuts` so far; on the way, asks for the keyframe a switch
/// waits for and reports the layers the leg needs.
pub(super) fn pick(
    leg: &mut Leg,
    (peer, source): (&PeerKey, SourceId),
    tag: LayerTag,
    packet: &rtp::Packet,
    (max_height, budget, cuts): (Option<u16>, Option<u64>, u64),
    (keyframes, outputs, resend_floors): (&mut KeyframeRequests, &mut Vec<PeerOutput>, &ResendFloors),
    now: Instant,
) -> Option<Rewritten> {
    let forwarder = leg.layers.get_or_insert_with(|| {
        let mut forwarder = LayerForwarder::new(leg.clock_rate);
        forwarder.set_max_height(max_height);
        forwarder
    });
    // The choice before this packet, only when it will be logged: this runs per packet.
    let logged = tracing::enabled!(tracing::Level::DEBUG);
    let before = logged.then(|| (forwarder.wanted(), forwarder.probing()));
    let forwarded_before = forwarder.current();
    forwarder.set_estimate_cuts(cuts);
    forwarder.observe(tag.layer, packet.payload.len() + PACKET_OVERHEAD, budget, now);
    if let Some(before) = before
        && before != (forwarder.wanted(), forwarder.probing())
    {
        let (wanted, probing, rates, padding) =
            (forwarder.wanted(), forwarder.probing(), forwarder.layer_rates(), forwarder.padding_sent());
        tracing::debug!(%peer, %source, wanted, probing, ?budget, ?rates, padding, cuts, "a leg's layer choice moved");
    }
    let decision = forwarder.handle(tag, packet.header.sequence_number, packet.header.timestamp, now);
    if forwarded_before != forwarder.current() {
        tracing::debug!(%peer, %source, from = ?forwarded_before, to = ?forwarder.current(), "a leg switched layers at a keyframe");
        if let Some(first) = forwarder.resend_from() {
            resend_floors.set(leg.ssrc, first);
        }
        if let Some(ids) = leg.vp8_ids.as_mut() {
            ids.switch(&packet.payload);
        }
    }
    if let Some((layer, forwarded)) = forwarder.needed(now)
        && leg.reported_want != Some((layer, forwarded))
    {
        leg.reported_want = Some((layer, forwarded));
        outputs.push(PeerOutput::LayerWanted { source, layer, forwarded });
    }
    if let Some(layer) = decision.wants_keyframe
        && keyframes.allow_layer(source, layer, now)
    {
        tracing::debug!(%peer, %source, layer, "asking the publisher for a keyframe of a layer to switch to");
        outputs.push(PeerOutput::LayerKeyframeWanted { source, layer });
    }
    let (sequence, timestamp) = decision.forward?;
    let payload = leg.vp8_ids.as_mut().and_then(|ids| ids.apply(&packet.payload));
    Some(Rewritten { sequence, timestamp, payload })
}

/// A simulcast packet as a leg sends it: renumbered, and its payload when that
/// changed too (VP8 picture ids).
pub(super) struct Rewritten {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: Option<bytes::Bytes>,
}
