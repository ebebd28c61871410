//! The SFU's ICE-TCP listener (RFC 6544, RFC 4571 framing) on a real NATS: a
//! webrtc-rs subscriber whose only candidate is a TCP active one connects to
//! the SFU's passive candidate and receives a UDP publisher's media over it;
//! and a connection that does not start with a binding request verified by an
//! existing peer's ICE password is closed, and routes nothing. (Chromium with
//! UDP to the SFU blocked: e2e/connectivity.test.mjs.)

mod common;

use std::time::Duration;

use common::harness_with;
use rapat_sfu::SfuConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// RFC 4571: a two-byte length, then the packet.
fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

/// Whether the SFU closes the connection within `limit` after `bytes`.
async fn closed_after(to: std::net::SocketAddr, bytes: &[u8], limit: Duration) -> bool {
    let mut stream = TcpStream::connect(to).await.expect("connects");
    if !bytes.is_empty() {
        stream.write_all(bytes).await.expect("writes");
    }
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(limit, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_that_does_not_verify_is_closed_and_routes_nothing() {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
    config.tcp_bind = Some("127.0.0.1:0".parse().expect("address"));
    config.workers = 1;
    let h = harness_with(config).await;
    let tcp = h.sfu.tcp_announced_addr().expect("an ICE-TCP listener");
    assert_ne!(tcp.port(), 0);

    // DTLS-looking junk, then a STUN binding request for a peer that does not exist.
    let junk = framed(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert!(closed_after(tcp, &junk, Duration::from_secs(5)).await, "junk first: closed");
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7u8; 12]);
    assert!(closed_after(tcp, &framed(&request), Duration::from_secs(5)).await, "an unknown binding request: closed");
    assert_eq!(h.sfu.handle().routes(), 0);
    assert_eq!(h.sfu.handle().counters().datagrams_in, 0, "nothing reached a worker");
}

/// A webrtc-rs subscriber that reaches the SFU only over ICE-TCP: its one local
/// candidate is a TCP active one, it connects to the SFU's passive candidate and
/// frames everything on that connection. Counts the RTP packets it decrypts.
mod tcp_client {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use futures::StreamExt;
    use rapat_wire::signal::{CONNECTION_HEADER, SfuReply, SfuRequest, SfuRequestKind};
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::configuration::media_engine::MediaEngine;
    use rtc::peer_connection::event::RTCPeerConnectionEvent;
    use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
    use rtc::peer_connection::sdp::RTCSessionDescription;
    use rtc::peer_connection::state::RTCPeerConnectionState;
    use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
    use rtc::sansio::Protocol;
    use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
    use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use uuid::Uuid;

    #[derive(Default)]
    pub struct Seen {
        pub connected: AtomicBool,
        pub rtp: AtomicU64,
    }

    pub async fn subscribe(h: &crate::common::Harness, user: Uuid, sfu_tcp: SocketAddr) -> Arc<Seen> {
        let seen = Arc::new(Seen::default());
        let connection = Uuid::new_v4();
        let mut replies = h.nats.subscribe(h.namespace.room_signal_subject(h.room)).await.expect("subscribe");
        h.nats.flush().await.expect("flush");
        let (nats, subject, room) = (h.nats.clone(), h.namespace.sfu_inbound_subject(h.room), h.room);
        let send = move |kind: SfuRequestKind, payload: Value| {
            let request = SfuRequest {
                kind,
                room_id: room,
                user_id: user,
                username: "tcp".into(),
                connection_id: connection,
                payload,
            };
            let (nats, subject) = (nats.clone(), subject.clone());
            async move {
                let body = serde_json::to_vec(&request).expect("writes");
                nats.publish(subject, body.into()).await.expect("publish");
            }
        };

        let mut engine = MediaEngine::default();
        engine.register_default_codecs().expect("codecs");
        let now = Instant::now();
        let mut pc = RTCPeerConnectionBuilder::new().with_media_engine(engine).build(now).expect("a peer connection");
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            pc.add_transceiver_from_kind(kind, Some(init)).expect("a transceiver");
        }
        // RFC 6544: an active candidate has no port of its own (9, the discard port).
        let active = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "tcp".into(),
                address: "127.0.0.1".into(),
                port: 9,
                component: 1,
                ..Default::default()
            },
            tcp_type: rtc::ice::tcp_type::TcpType::Active,
        }
        .new_candidate_host()
        .expect("a candidate");
        pc.add_local_candidate(RTCIceCandidate::from(&active).to_json().expect("json")).expect("added");
        let offer = pc.create_offer(None).expect("an offer");
        pc.set_local_description(now, offer).expect("set");
        let sdp = pc.local_description().map(|d| d.sdp).unwrap_or_default();
        send(SfuRequestKind::Offer, json!({ "type": "offer", "sdp": sdp })).await;

        let mut stream = TcpStream::connect(sfu_tcp).await.expect("connects to the SFU's TCP candidate");
        let local = stream.local_addr().expect("local address");
        let tag = move |message: BytesMut| TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: local,
                peer_addr: sfu_tcp,
                ecn: None,
                transport_protocol: TransportProtocol::TCP,
            },
            message,
        };
        let wanted = connection.to_string();
        let seen_by_task = Arc::clone(&seen);
        tokio::spawn(async move {
            let seen = seen_by_task;
            let mut decoder = TcpFrameDecoder::new();
            let mut buf = vec![0u8; 4096];
            loop {
                while let Some(out) = pc.poll_write() {
                    if stream.write_all(&frame_packet(&out.message)).await.is_err() {
                        return;
                    }
                }
                while let Some(event) = pc.poll_event() {
                    if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) =
                        event
                    {
                        seen.connected.store(true, Ordering::Relaxed);
                    }
                }
                while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
                    if let RTCMessage::RtpPacket(..) = message {
                        seen.rtp.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let deadline = pc.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_millis(100));
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => { let _ = pc.handle_timeout(Instant::now()); }
                    read = stream.read(&mut buf) => match read {
                        Ok(len @ 1..) => {
                            decoder.extend_from_slice(&buf[..len]);
                            while let Some(frame) = decoder.next_packet() {
                                let _ = pc.handle_read(tag(BytesMut::from(&frame[..])));
                            }
                        }
                        _ => return,
                    },
                    message = replies.next() => {
                        let Some(message) = message else { return };
                        let for_us = message.headers.as_ref().and_then(|h| h.get(CONNECTION_HEADER)).is_some_and(|v| v.as_str() == wanted);
                        let Ok(reply) = serde_json::from_slice::<SfuReply>(&message.payload) else { continue };
                        let sdp = reply.payload.get("sdp").and_then(Value::as_str).map(str::to_string);
                        if !for_us {
                            continue;
                        }
                        let now = Instant::now();
                        match (reply.kind.as_str(), sdp) {
                            ("answer", Some(sdp)) => {
                                pc.set_remote_description(now, RTCSessionDescription::answer(sdp).expect("an answer")).expect("set");
                            }
                            ("offer", Some(sdp)) => {
                                pc.set_remote_description(now, RTCSessionDescription::offer(sdp).expect("an offer")).expect("set");
                                let answer = pc.create_answer(None).expect("an answer");
                                pc.set_local_description(now, answer).expect("set");
                                let sdp = pc.local_description().map(|d| d.sdp).unwrap_or_default();
                                send(SfuRequestKind::Answer, json!({ "type": "answer", "sdp": sdp })).await;
                            }
                            (kind, _) => panic!("the SFU sent {kind}: {}", reply.payload),
                        }
                    }
                }
            }
        });
        seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_subscriber_on_ice_tcp_only_receives_the_media() {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
    config.tcp_bind = Some("127.0.0.1:0".parse().expect("address"));
    config.workers = 2;
    let h = harness_with(config).await;
    let tcp = h.sfu.tcp_announced_addr().expect("an ICE-TCP listener");
    h.join(h.host).await;
    let _publisher = h.connect(h.host, rapat_sfu::loopback_client::ClientOptions::publisher()).await;
    let subscriber = h.participant().await;
    let seen = tcp_client::subscribe(&h, subscriber.as_uuid(), tcp).await;
    common::eventually("media over ICE-TCP", Duration::from_secs(15), || {
        seen.connected.load(std::sync::atomic::Ordering::Relaxed)
            && seen.rtp.load(std::sync::atomic::Ordering::Relaxed) > 50
    })
    .await;
    assert_eq!(h.sfu.handle().routes(), 1, "the publisher's UDP address; TCP connections have routes of their own");
}
