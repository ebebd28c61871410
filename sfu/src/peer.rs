//! One participant's peer connection on the SFU side, and its negotiation.
//!
//! The client always makes the first offer (its own tracks); the SFU answers with
//! its host candidate in the SDP (and a passive ICE-TCP one when it listens on
//! TCP; ICE-lite, so no trickle from this side).
//! After that the SFU offers whenever tracks to forward come or go. The SFU is the
//! impolite side of "perfect negotiation": a client offer that crosses one of its
//! own is ignored, and the client rolls back and answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rapat_wire::signal::SfuReplyKind;
use rtc::interceptor::Registry;
use rtc::media_stream::{MediaStreamTrack, MediaStreamTrackId};
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::sdp::RTCSdpType;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState, RTCSignalingState};
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use serde_json::json;

pub(crate) use crate::candidate::{host_candidate, tcp_candidate};
use crate::keyframe::KeyframeRequests;
use crate::leg::{LegParameters, SourceParameters, Translation};
use crate::read_filter::ReadOnly;
use crate::signal::{Outgoing, PeerKey};
use crate::simulcast::{CodecFamily, LayerForwarder};
use crate::source::{SourceId, Subscription};
use crate::ufrag::IceCredentials;

/// An SFU offer not answered in this long is rolled back, so one lost answer
/// cannot stop every later renegotiation.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer's source ids are `peer id << SOURCE_BITS | n`, so a source names its peer.
pub const SOURCE_BITS: u32 = 20;

/// What a peer asks of the conductor after it handled something. (What it
/// says to its client goes out directly, through `Peer::signals`.)
#[derive(Debug)]
pub enum PeerOutput {
    /// The client started sending a track: offer it to everyone else in the room.
    Published(Subscription),
    Unpublished(SourceId),
    /// A subscriber asked for a keyframe of a forwarded track.
    KeyframeWanted(SourceId),
    /// A subscriber needs a keyframe of one simulcast layer of a track (to switch
    /// to it, or because it lost the picture of the layer it gets).
    LayerKeyframeWanted {
        source: SourceId,
        layer: u8,
    },
    /// This subscriber's leg of a simulcast track wants `layer` now, and
    /// forwards `forwarded` (another when the wanted one does not come).
    LayerWanted {
        source: SourceId,
        layer: u8,
        forwarded: u8,
    },
    /// The peer is gone: closed, or its client left.
    Closed,
    /// The peer is gone because its connection failed (ICE failed, or DTLS did
    /// not finish in time: `peer_handshake.rs`); its client is told so it can start over.
    Failed(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error("bad session description: {0}")]
    BadDescription(String),
}

/// A track the client sends.
struct Inbound {
    source: SourceId,
    kind: RtpCodecKind,
    receiver: RTCRtpReceiverId,
    media_ssrc: u32,
    /// The negotiated id of the audio-level extension, for active speakers.
    audio_level_id: Option<u8>,
    /// Simulcast layers seen so far (layer, SSRC); empty for a single-stream track.
    layers: Vec<(u8, u32)>,
    simulcast: bool,
    codec: CodecFamily,
}

/// A packet of a simulcast track whose layer is not known: not forwarded.
#[derive(Debug)]
pub struct UnknownLayer;

#[path = "peer_layers.rs"]
mod layers;

#[path = "peer_forward.rs"]
mod forward;

#[path = "peer_handshake.rs"]
mod handshake;
#[cfg(test)]
pub(crate) use handshake::DTLS_HANDSHAKE_LIMIT;

/// A track the SFU sends to this client.
struct Leg {
    sender: RTCRtpSenderId,
    ssrc: u32,
    source_parameters: SourceParameters,
    /// Built once negotiation settles; until then packets for this leg are skipped.
    translation: Option<Translation>,
    publisher_user: uuid::Uuid,
    clock_rate: u32,
    /// For a simulcast track: the layer chosen and the rewriting; made at its first packet.
    layers: Option<LayerForwarder>,
    /// For a VP8 track: its picture ids kept running across simulcast layer switches.
    vp8_ids: Option<crate::vp8_ids::Vp8Ids>,
    /// The layers last reported ([`PeerOutput::LayerWanted`]).
    reported_want: Option<(u8, u8)>,
    /// Video legs share the downlink estimate.
    video: bool,
}

pub struct Peer {
    pub key: PeerKey,
    pub source_base: u64,
    pc: RTCPeerConnection,
    local_candidate: RTCIceCandidateInit,
    /// The passive ICE-TCP candidate, when the SFU listens on TCP.
    tcp_candidate: Option<RTCIceCandidateInit>,
    answered_first_offer: bool,
    awaiting_answer: Option<Instant>,
    renegotiate: bool,
    connected: bool,
    closed: bool,
    /// Bounds the DTLS handshake once ICE connected (`peer_handshake.rs`).
    handshake: handshake::HandshakeWatch,
    /// Audio from this client is not forwarded while set (muted, or muted by the host).
    pub audio_blocked: bool,
    inbound: HashMap<MediaStreamTrackId, Inbound>,
    legs: HashMap<SourceId, Leg>,
    /// Subscriptions that arrived before the client's first offer was answered.
    queued: Vec<Subscription>,
    next_source: u64,
    keyframes: KeyframeRequests,
    /// Where each video leg's resendable packets start (its last switch's keyframe).
    resend_floors: crate::resends::ResendFloors,
    /// The largest height this client shows each publisher's video at (`video_constraints`).
    video_constraints: HashMap<uuid::Uuid, u16>,
    /// This client's downlink estimate, from its TWCC feedback; shared by its video legs.
    downlink: crate::downlink::EstimateHandle,
    /// How many of `legs` are video, kept with them: the budget is asked per packet.
    video_legs: usize,
    /// Each video leg's part of the estimate (after the audio), by need, and when it was split.
    video_shares: HashMap<SourceId, f64>,
    shares_split: Option<Instant>,
    /// The bitrate of the audio sent to this client: it comes off the estimate first.
    audio_rate: crate::layer_fit::LayerRate,
    pub outputs: Vec<PeerOutput>,
    /// Messages for this peer's client: answers, offers, errors.
    pub signals: Vec<Outgoing>,
}

impl Peer {
    /// `id` is unique across the SFU; this peer's source ids are derived from it.
    pub fn new(
        key: PeerKey,
        id: u64,
        credentials: IceCredentials,
        local_addr: SocketAddr,
        downlink_estimate: bool,
        now: Instant,
    ) -> Result<Self, PeerError> {
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(credentials.ufrag, credentials.password)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .build();
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs()?;
        crate::speakers::register(&mut media_engine)?;
        let resend_floors = crate::resends::ResendFloors::default();
        let registry = Registry::new()
            .with(crate::keyframe::slot(), ReadOnly::new(crate::keyframe::SurfaceKeyframeRequests::default()))
            .with(crate::resends::slot(), ReadOnly::new(crate::resends::ResendFilter::new(resend_floors.clone())));
        let registry = register_default_interceptors(registry, &mut media_engine)?;
        // Without the estimate no packet carries a transport-wide sequence number,
        // no feedback is joined, and layers are chosen by the client's sizes alone.
        let (registry, downlink) = if downlink_estimate {
            crate::downlink::register(registry)
        } else {
            (registry, crate::downlink::EstimateHandle::default())
        };
        let pc = RTCPeerConnectionBuilder::new()
            .with_setting_engine(settings)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        let local_candidate = host_candidate(local_addr)?;
        Ok(Self {
            key,
            source_base: id << SOURCE_BITS,
            pc,
            local_candidate,
            tcp_candidate: None,
            answered_first_offer: false,
            awaiting_answer: None,
            renegotiate: false,
            connected: false,
            closed: false,
            handshake: Default::default(),
            audio_blocked: false,
            inbound: HashMap::new(),
            legs: HashMap::new(),
            queued: Vec::new(),
            next_source: 0,
            keyframes: KeyframeRequests::default(),
            resend_floors,
            video_constraints: HashMap::new(),
            downlink,
            video_legs: 0,
            video_shares: HashMap::new(),
            shares_split: None,
            audio_rate: Default::default(),
            outputs: Vec::new(),
            signals: Vec::new(),
        })
    }

    /// Offers a passive ICE-TCP candidate at `addr` too, in the first answer.
    pub fn add_tcp_candidate(&mut self, addr: SocketAddr) -> Result<(), PeerError> {
        self.tcp_candidate = Some(tcp_candidate(addr)?);
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn connection(&mut self) -> &mut RTCPeerConnection {
        &mut self.pc
    }

    fn signal(&mut self, kind: SfuReplyKind, payload: serde_json::Value) {
        self.signals.push(Outgoing { to: self.key.clone(), kind, payload });
    }

    /// A client offer: answered, unless it collides with the SFU's own (impolite side).
    pub fn handle_offer(&mut self, sdp: String, now: Instant) -> Result<(), PeerError> {
        if self.awaiting_answer.is_some() {
            tracing::debug!(peer = %self.key, "ignoring a client offer that crossed the SFU's own");
            return Ok(());
        }
        let offer = self.client_description(RTCSdpType::Offer, &sdp)?;
        self.pc.set_remote_description(now, offer)?;
        if let Err(error) = self.answer_offer(now) {
            // Back to stable, so the next offer (either side's) can proceed.
            if let Some(mut remote) = self.pc.remote_description().cloned() {
                remote.sdp_type = RTCSdpType::Rollback;
                let _ = self.pc.set_remote_description(now, remote);
            }
            return Err(error);
        }
        self.drop_stopped_tracks();
        self.refresh_translations();
        self.offer_if_needed(now)
    }

    /// A client offer that stops sending a track (removeTrack, a screen share
    /// ended) leaves its receiver out of the receiving ones: unpublish it.
    fn drop_stopped_tracks(&mut self) {
        let receiving: std::collections::HashSet<RTCRtpReceiverId> = self.pc.get_receivers().collect();
        let stopped: Vec<MediaStreamTrackId> = self
            .inbound
            .iter()
            .filter(|(_, inbound)| !receiving.contains(&inbound.receiver))
            .map(|(track, _)| track.clone())
            .collect();
        for track in stopped {
            if let Some(inbound) = self.inbound.remove(&track) {
                tracing::debug!(peer = %self.key, source = %inbound.source, "client stopped sending a track");
                self.outputs.push(PeerOutput::Unpublished(inbound.source));
            }
        }
    }

    fn answer_offer(&mut self, now: Instant) -> Result<(), PeerError> {
        if !self.answered_first_offer {
            self.pc.add_local_candidate(self.local_candidate.clone())?;
            if let Some(tcp) = self.tcp_candidate.clone() {
                self.pc.add_local_candidate(tcp)?;
            }
            self.pc.add_local_candidate(RTCIceCandidateInit::default())?;
        }
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        let sdp = self.pc.local_description().map(|description| description.sdp).unwrap_or_default();
        self.signal(SfuReplyKind::Answer, json!({ "type": "answer", "sdp": sdp }));
        if !self.answered_first_offer {
            self.answered_first_offer = true;
            for subscription in std::mem::take(&mut self.queued) {
                self.subscribe(subscription)?;
            }
        }
        Ok(())
    }

    /// The client's answer to the SFU's last offer.
    pub fn handle_answer(&mut self, sdp: String, now: Instant) -> Result<(), PeerError> {
        if self.awaiting_answer.is_none() {
            tracing::debug!(peer = %self.key, "ignoring an answer to no offer");
            return Ok(());
        }
        let answer = self.client_description(RTCSdpType::Answer, &sdp)?;
        self.pc.set_remote_description(now, answer)?;
        self.awaiting_answer = None;
        self.refresh_translations();
        self.offer_if_needed(now)
    }

    pub fn handle_candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), PeerError> {
        // Before a remote description there is nothing to add it to; as ICE-lite the
        // SFU learns the client's address from its connectivity checks anyway.
        if candidate.candidate.is_empty() || self.pc.remote_description().is_none() {
            return Ok(());
        }
        self.pc.add_remote_candidate(candidate)?;
        Ok(())
    }

    /// Starts forwarding another participant's track to this client.
    pub fn subscribe(&mut self, subscription: Subscription) -> Result<(), PeerError> {
        if !self.answered_first_offer {
            self.queued.push(subscription);
            return Ok(());
        }
        if self.legs.contains_key(&subscription.source) {
            return Ok(());
        }
        let ssrc = rand::random::<u32>();
        let rtx = (subscription.kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters { ssrc: rand::random() });
        let track = MediaStreamTrack::new(
            subscription.publisher_user.to_string(),
            format!("{}-{}", subscription.publisher_user, subscription.source),
            format!("{:?}", subscription.kind).to_lowercase(),
            subscription.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), rtx, ..Default::default() },
                active: true,
                codec: subscription.codec.clone(),
                ..Default::default()
            }],
        );
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: Vec::new(),
            send_encodings: Vec::new(),
        };
        let transceiver = self.pc.add_transceiver_from_track(track, Some(init))?;
        let leg = Leg {
            sender: RTCRtpSenderId::from(transceiver),
            ssrc,
            source_parameters: subscription.parameters,
            translation: None,
            publisher_user: subscription.publisher_user,
            clock_rate: subscription.codec.clock_rate,
            layers: None,
            vp8_ids: (CodecFamily::of_mime(&subscription.codec.mime_type) == CodecFamily::Vp8)
                .then(crate::vp8_ids::Vp8Ids::default),
            reported_want: None,
            video: subscription.kind == RtpCodecKind::Video,
        };
        self.video_legs += usize::from(leg.video);
        self.legs.insert(subscription.source, leg);
        self.renegotiate = true;
        Ok(())
    }

    pub fn unsubscribe(&mut self, source: SourceId) -> Result<(), PeerError> {
        self.queued.retain(|queued| queued.source != source);
        if let Some(leg) = self.legs.remove(&source) {
            self.video_legs -= usize::from(leg.video);
            self.resend_floors.remove(leg.ssrc);
            self.pc.remove_track(leg.sender)?;
            self.renegotiate = true;
        }
        Ok(())
    }

    /// Sends an offer for pending track changes when the connection is free to.
    pub fn offer_if_needed(&mut self, now: Instant) -> Result<(), PeerError> {
        // Offers are answered on the spot, so without an offer of its own out the
        // connection is in the stable state.
        if !self.renegotiate || !self.answered_first_offer || self.awaiting_answer.is_some() || self.closed {
            return Ok(());
        }
        self.renegotiate = false;
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(now, offer)?;
        let sdp = self.pc.local_description().map(|description| description.sdp).unwrap_or_default();
        self.awaiting_answer = Some(now + ANSWER_TIMEOUT);
        self.signal(SfuReplyKind::Offer, json!({ "type": "offer", "sdp": sdp }));
        Ok(())
    }

    /// The translation tables depend on what both sides negotiated; rebuilt
    /// whenever a description is applied.
    fn refresh_translations(&mut self) {
        let mids: HashMap<RTCRtpSenderId, Option<String>> = self
            .legs
            .values()
            .map(|leg| {
                let mid = self.pc.rtp_transceiver(RTCRtpTransceiverId::from(leg.sender)).and_then(|t| t.mid().clone());
                (leg.sender, mid)
            })
            .collect();
        for leg in self.legs.values_mut() {
            let Some(mut sender) = self.pc.rtp_sender(leg.sender) else { continue };
            let leg_parameters = LegParameters::negotiated(
                &sender.get_parameters().rtp_parameters,
                mids.get(&leg.sender).cloned().flatten(),
            );
            leg.translation = Some(Translation::new(leg.ssrc, &leg.source_parameters, &leg_parameters));
        }
    }

    /// Asks this client (a publisher) for a keyframe of one of its tracks.
    pub fn request_keyframe(&mut self, source: SourceId, now: Instant) {
        let Some(inbound) = self.inbound.values().find(|inbound| inbound.source == source) else { return };
        if inbound.kind != RtpCodecKind::Video {
            return;
        }
        let (receiver, media_ssrc) = (inbound.receiver, inbound.media_ssrc);
        if let Some(mut receiver) = self.pc.rtp_receiver(receiver) {
            let pli =
                rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication { sender_ssrc: 0, media_ssrc };
            if let Err(error) = receiver.write_rtcp(now, vec![Box::new(pli)]) {
                tracing::debug!(peer = %self.key, %error, "cannot send a keyframe request");
            }
        }
    }

    /// The source a packet received on `track` belongs to, unless it must not be
    /// forwarded (audio while blocked).
    pub fn source_of(&self, track: &MediaStreamTrackId) -> Option<SourceId> {
        let inbound = self.inbound.get(track)?;
        if inbound.kind == RtpCodecKind::Audio && self.audio_blocked {
            return None;
        }
        Some(inbound.source)
    }

    /// The audio level a packet received on `track` carries, if it is audio with one.
    pub fn audio_level(&self, track: &MediaStreamTrackId, packet: &rtp::Packet) -> Option<crate::speakers::AudioLevel> {
        let id = self.inbound.get(track)?.audio_level_id?;
        crate::speakers::AudioLevel::parse(&packet.header.get_extension(id)?)
    }

    /// Keyframe requests from this client about tracks the SFU sends it.
    pub fn handle_rtcp(&mut self, packets: &[Box<dyn rtcp::Packet>], now: Instant) {
        for media_ssrc in self.keyframes.media_ssrcs(packets) {
            let leg = self.legs.iter().find(|(_, leg)| leg.ssrc == media_ssrc);
            let current = leg.and_then(|(_, leg)| leg.layers.as_ref()).and_then(LayerForwarder::current);
            let source = leg.map(|(source, _)| *source);
            if let (Some(source), Some(layer)) = (source, current) {
                // The picture lost is that of the layer this client gets.
                if self.keyframes.allow_layer(source, layer, now) {
                    self.outputs.push(PeerOutput::LayerKeyframeWanted { source, layer });
                }
            } else if let Some(source) = source
                && self.keyframes.allow(source, now)
            {
                self.outputs.push(PeerOutput::KeyframeWanted(source));
            }
        }
    }

    /// Reacts to what the connection reports.
    pub fn handle_event(&mut self, event: RTCPeerConnectionEvent, now: Instant) -> Result<(), PeerError> {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                tracing::debug!(peer = %self.key, %state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Connected => {
                        self.connected = true;
                        self.handshake.finished();
                    }
                    RTCPeerConnectionState::Failed => self.fail("the connection failed (ICE)"),
                    RTCPeerConnectionState::Closed => self.mark_closed(PeerOutput::Closed),
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(RTCIceConnectionState::Connected) => {
                self.handshake.ice_connected(now)
            }
            RTCPeerConnectionEvent::OnSignalingStateChangeEvent(RTCSignalingState::Stable) => {
                self.offer_if_needed(now)?
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.track_opened(init.receiver_id, init.track_id, init.ssrc, init.rid.as_deref())
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                if let Some(inbound) = self.inbound.remove(&track) {
                    self.outputs.push(PeerOutput::Unpublished(inbound.source));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn track_opened(
        &mut self,
        receiver_id: RTCRtpReceiverId,
        track_id: MediaStreamTrackId,
        ssrc: u32,
        rid: Option<&str>,
    ) {
        let layer = rid.and_then(crate::simulcast::layer_of_rid);
        if let Some(inbound) = self.inbound.get_mut(&track_id) {
            // Another simulcast layer of a track already published.
            if let Some(layer) = layer
                && !inbound.layers.iter().any(|(_, seen)| *seen == ssrc)
            {
                inbound.layers.push((layer, ssrc));
            }
            return;
        }
        let Some(mut receiver) = self.pc.rtp_receiver(receiver_id) else { return };
        let track = receiver.track();
        let kind = track.kind();
        let Some(codec) = track.codec(ssrc).cloned() else {
            tracing::warn!(peer = %self.key, ssrc, "a track without a negotiated codec is not forwarded");
            return;
        };
        let source_parameters = SourceParameters::negotiated(&receiver.get_parameters().rtp_parameters);
        self.next_source += 1;
        let source = SourceId(self.source_base + self.next_source);
        let audio_level_id = crate::speakers::extension_id(kind, &source_parameters.extensions);
        let simulcast = rid.is_some_and(|rid| !rid.is_empty());
        let inbound = Inbound {
            source,
            kind,
            receiver: receiver_id,
            media_ssrc: ssrc,
            audio_level_id,
            layers: layer.map(|layer| vec![(layer, ssrc)]).unwrap_or_default(),
            simulcast,
            codec: CodecFamily::of_mime(&codec.mime_type),
        };
        self.inbound.insert(track_id, inbound);
        tracing::debug!(peer = %self.key, %source, ?kind, mime = %codec.mime_type, "client publishes a track");
        self.outputs.push(PeerOutput::Published(Subscription {
            source,
            publisher_user: self.key.user,
            kind,
            codec,
            parameters: source_parameters,
        }));
    }

    /// Rolls back an SFU offer that was never answered.
    pub fn check_answer_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        if let Some(deadline) = self.awaiting_answer
            && now >= deadline
        {
            tracing::info!(peer = %self.key, "the client never answered; rolling the offer back");
            self.awaiting_answer = None;
            if let Some(mut description) = self.pc.local_description() {
                description.sdp_type = RTCSdpType::Rollback;
                self.pc.set_local_description(now, description)?;
            }
            self.renegotiate = true;
        }
        Ok(())
    }

    pub fn next_deadline(&mut self) -> Option<Instant> {
        [self.pc.poll_timeout(), self.awaiting_answer, self.handshake.deadline()].into_iter().flatten().min()
    }
}
