//! A loopback client's peer connection, and starting over with a new one when
//! the SFU says the last one failed (`peer_failed`), as the browser client does:
//! a new socket (a browser gathers new candidates), a new connection with the
//! same tracks, and a fresh offer on the same signaling connection, which the
//! SFU answers with a new peer.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use serde_json::json;
use tokio::net::UdpSocket;

use super::{ClientError, ClientOptions, Driver, Outbound, RtpCodecKind, clip, simulcast};

/// A peer connection with the client's tracks (or a receive-only transceiver),
/// its host candidate at `local_addr`, and its first offer, made.
pub(super) fn open(
    options: &ClientOptions,
    local_addr: SocketAddr,
    now: Instant,
) -> Result<(RTCPeerConnection, Vec<Outbound>, String), ClientError> {
    let media_engine = super::media_engine(options.payload_types)?;
    let registry = Registry::new().with(
        crate::keyframe::slot(),
        crate::read_filter::ReadOnly::new(crate::keyframe::SurfaceKeyframeRequests::with_sender_reports()),
    );
    let mut media_engine = media_engine;
    let registry = register_default_interceptors(registry, &mut media_engine)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    let mut senders = Vec::new();
    if options.publish {
        for (kind, mime, clock_rate, channels) in
            [(RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2), (RtpCodecKind::Video, MIME_TYPE_VP8, 90_000, 0)]
        {
            let ssrc = rand::random::<u32>();
            let codec = RTCRtpCodec { mime_type: mime.to_string(), clock_rate, channels, ..Default::default() };
            let layers =
                if options.simulcast && kind == RtpCodecKind::Video { simulcast::layers() } else { Vec::new() };
            let encodings = if layers.is_empty() {
                vec![RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() }]
            } else {
                layers.iter().map(simulcast::Layer::coding).collect()
            };
            let track = MediaStreamTrack::new(
                "loopback".to_string(),
                format!("loopback-{kind:?}"),
                format!("{kind:?}"),
                kind,
                encodings
                    .into_iter()
                    .map(|rtp_coding_parameters| RTCRtpEncodingParameters {
                        rtp_coding_parameters,
                        active: true,
                        codec: codec.clone(),
                        ..Default::default()
                    })
                    .collect(),
            );
            let sender = pc.add_track(track)?;
            let sequence = rand::random();
            senders.push(Outbound {
                sender,
                kind,
                ssrc,
                sequence,
                payload_type: None,
                sent: 0,
                layers,
                clip: clip::Position::default(),
            });
        }
    } else {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(init))?;
    }
    let candidate = crate::peer::host_candidate(local_addr)?;
    let offer = pc.create_offer(None)?;
    pc.set_local_description(now, offer)?;
    pc.add_local_candidate(candidate)?;
    pc.add_local_candidate(RTCIceCandidateInit::default())?;
    let sdp = pc.local_description().map(|d| d.sdp).unwrap_or_default();
    Ok((pc, senders, sdp))
}

impl Driver {
    /// The SFU closed this client's peer because it failed: start over on a new
    /// socket with a new connection and offer again. The tracks go on from where
    /// they are due now, not from the start.
    pub(super) async fn restart(&mut self) -> Result<(), ClientError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let now = Instant::now();
        let (pc, mut senders, sdp) = open(&self.options, local_addr, now)?;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        for outbound in &mut senders {
            let rate = match outbound.kind {
                RtpCodecKind::Video => self.options.video_packets_per_second,
                _ => self.options.audio_packets_per_second,
            };
            outbound.sent = (elapsed * f64::from(rate)) as u64;
        }
        let _ = self.pc.close();
        (self.pc, self.socket, self.local_addr, self.senders) = (pc, socket, local_addr, senders);
        self.receivers.clear();
        if let Ok(mut tracks) = self.stats.tracks.lock() {
            tracks.values_mut().for_each(super::TrackStats::restart);
        }
        self.stats.connected.store(false, Ordering::Relaxed);
        self.stats.closed.store(false, Ordering::Relaxed);
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        self.note_state("restarted".into());
        let _ = self.outgoing.send(("offer".into(), json!({ "type": "offer", "sdp": sdp })));
        Ok(())
    }
}
