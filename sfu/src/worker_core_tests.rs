//! The worker's rules on a simulated clock, after str0m's `tests/common.rs`:
//! in-memory webrtc-rs clients exchange datagrams with the worker core (real
//! ICE, DTLS and SRTP, no socket, no thread), and time moves only when
//! [`Net::run_until`] moves it, from one due timer to the next. What the room
//! core would do with the worker's reports (subscribe the others to a published
//! track, route a keyframe request to its publisher) the test does by hand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rapat_wire::signal::SfuReplyKind;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use uuid::Uuid;

use super::*;
use crate::signal::PeerKey;

fn sfu_address() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 3478))
}

fn context(local_addr: SocketAddr, peer_addr: SocketAddr) -> TransportContext {
    TransportContext { local_addr, peer_addr, ecn: None, transport_protocol: TransportProtocol::UDP }
}

/// A browser stand-in: a full (not lite) webrtc-rs peer connection in memory.
struct Client {
    pc: RTCPeerConnection,
    address: SocketAddr,
    /// The SFU's peer for this client.
    peer: u64,
    key: PeerKey,
    /// Answers the SFU's offers at once; otherwise keeps the last in `unanswered`.
    answers: bool,
    unanswered: Option<String>,
    offers: usize,
    connected: bool,
    video: Option<(RTCRtpSenderId, u32, u16)>,
    rtp_received: u64,
    /// The received tracks (receiver, media SSRC), for keyframe requests.
    received_tracks: Vec<(RTCRtpReceiverId, u32)>,
    keyframe_requests: u64,
    /// The media SSRCs of the keyframe requests received.
    keyframe_ssrcs: Vec<u32>,
    /// A simulcast publisher's sender, its layers' SSRCs and next sequence numbers.
    simulcast: Option<(RTCRtpSenderId, [u32; 3], [u16; 3])>,
    /// Every RTP packet received, in order.
    received: Vec<rtp::Packet>,
    /// The `publisher_layers` payloads received.
    publisher_layers: Vec<serde_json::Value>,
    /// When each of `received` came.
    received_at: Vec<Instant>,
    /// The client's own estimate from the SFU's TWCC feedback on what it sends.
    uplink: crate::downlink::EstimateHandle,
}

impl Client {
    fn answer(&mut self, core: &mut WorkerCore, now: Instant, sdp: String) {
        let answered = RTCSessionDescription::offer(sdp)
            .and_then(|offer| self.pc.set_remote_description(now, offer))
            .and_then(|_| self.pc.create_answer(None))
            .and_then(|answer| self.pc.set_local_description(now, answer));
        answered.expect("the client answers the SFU's offer");
        let sdp = self.pc.local_description().map(|description| description.sdp).unwrap_or_default();
        core.handle_input(now, WorkerInput::Answer { peer: self.peer, sdp });
    }
}

/// Whether the network loses a datagram, by its bytes.
type Loss = Box<dyn FnMut(&[u8]) -> bool>;

/// One worker core and its clients on a simulated network and clock.
struct Net {
    now: Instant,
    core: WorkerCore,
    metrics: Arc<WorkerMetrics>,
    clients: Vec<Client>,
    room: Uuid,
    /// What the worker reported for the room core, in order.
    reports: Vec<(u64, PeerOutput)>,
    /// Datagrams sent so far towards the SFU and from it, over every client.
    sent: (usize, usize),
    /// Which of those the network loses, by their number (from 0) in `sent`.
    lost: (Vec<usize>, Vec<usize>),
    /// Also lost towards the SFU: the datagrams this says so of.
    lose_to_sfu: Option<Loss>,
    /// Shaped links from the SFU to some clients, by client address.
    links: HashMap<SocketAddr, simulcast::bwe::Link>,
    /// The workers each packet handed to other workers was for.
    shared: Vec<Vec<usize>>,
}

/// A track of one stream on `ssrc`, named `name` (its id `name-kind`, its
/// stream `kind`), as a client publishes a camera or a microphone.
pub(crate) fn single_stream_track(name: &str, kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> MediaStreamTrack {
    let encoding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
        active: true,
        codec,
        ..Default::default()
    };
    let label = if kind == RtpCodecKind::Video { "video" } else { "audio" };
    MediaStreamTrack::new(name.into(), format!("{name}-{label}"), label.into(), kind, vec![encoding])
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        let metrics = Arc::new(WorkerMetrics::default());
        Self {
            now,
            core: WorkerCore::new(vec![sfu_address()], Arc::clone(&metrics), now),
            metrics,
            clients: Vec::new(),
            room: Uuid::new_v4(),
            reports: Vec::new(),
            sent: (0, 0),
            lost: (Vec::new(), Vec::new()),
            lose_to_sfu: None,
            links: HashMap::new(),
            shared: Vec::new(),
        }
    }

    /// A client that offers a VP8 track (`publish`) or to receive, and the SFU's peer for it.
    fn join(&mut self, publish: bool) -> usize {
        self.join_with(publish, |_| None)
    }

    /// A client whose tracks `add` adds (unless it publishes the plain VP8 track).
    fn join_with(
        &mut self,
        publish: bool,
        add: impl FnOnce(&mut RTCPeerConnection) -> Option<(RTCRtpSenderId, [u32; 3], [u16; 3])>,
    ) -> usize {
        let index = self.clients.len();
        let peer = index as u64 + 1;
        let key = PeerKey { room: self.room, user: Uuid::new_v4(), connection: Uuid::new_v4() };
        let address = SocketAddr::from(([198, 51, 100, 1], 5000 + index as u16));
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().expect("codecs");
        // As a browser does, the client's application sees the keyframe requests it gets.
        let surfaced = Registry::new().with(
            crate::keyframe::slot(),
            crate::read_filter::ReadOnly::new(crate::keyframe::SurfaceKeyframeRequests::default()),
        );
        let registry = register_default_interceptors(surfaced, &mut media_engine).expect("interceptors");
        // As a browser does, the client numbers what it sends for the SFU's TWCC feedback.
        let (registry, uplink) = crate::downlink::register(registry);
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(self.now)
            .expect("a client");
        let mut video = None;
        if publish {
            let ssrc = rand::random::<u32>();
            let codec = RTCRtpCodec { mime_type: MIME_TYPE_VP8.to_string(), clock_rate: 90_000, ..Default::default() };
            let track = single_stream_track("camera", RtpCodecKind::Video, codec, ssrc);
            video = Some((pc.add_track(track).expect("a video track"), ssrc, 1));
        }
        let simulcast = add(&mut pc);
        if !publish && simulcast.is_none() {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(init)).expect("a transceiver");
        }
        let offer = pc.create_offer(None).expect("an offer");
        pc.set_local_description(self.now, offer).expect("the offer applies");
        pc.add_local_candidate(crate::peer::host_candidate(address).expect("a candidate"))
            .expect("the candidate applies");
        pc.add_local_candidate(RTCIceCandidateInit::default()).expect("end of candidates");
        let sdp = pc.local_description().map(|description| description.sdp).unwrap_or_default();
        self.core.handle_input(self.now, WorkerInput::Create { peer, key: key.clone(), audio_blocked: false });
        self.core.handle_input(self.now, WorkerInput::Offer { peer, sdp });
        self.clients.push(Client {
            pc,
            address,
            peer,
            key,
            answers: true,
            unanswered: None,
            offers: 0,
            connected: false,
            video,
            rtp_received: 0,
            received_tracks: Vec::new(),
            keyframe_requests: 0,
            keyframe_ssrcs: Vec::new(),
            simulcast,
            received: Vec::new(),
            publisher_layers: Vec::new(),
            received_at: Vec::new(),
            uplink,
        });
        index
    }

    /// Delivers everything in flight at the current time, until nothing moves.
    fn exchange(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(output) = self.core.poll_output() {
                moved = true;
                self.deliver(output);
            }
            moved |= self.release_links();
            for client in &mut self.clients {
                while let Some(event) = client.pc.poll_event() {
                    match event {
                        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                            client.connected = state == RTCPeerConnectionState::Connected
                        }
                        RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                            client.received_tracks.push((init.receiver_id, init.ssrc))
                        }
                        _ => {}
                    }
                }
                while let Some(message) = client.pc.poll_read() {
                    match message.message {
                        RTCMessage::RtpPacket(_, packet) => {
                            client.rtp_received += 1;
                            client.received.push(packet);
                            client.received_at.push(self.now);
                        }
                        RTCMessage::RtcpPacket(_, packets) => {
                            client.keyframe_ssrcs.extend(packets.iter().filter_map(|packet| {
                                packet.as_any().downcast_ref::<PictureLossIndication>().map(|pli| pli.media_ssrc)
                            }));
                            client.keyframe_requests +=
                                packets.iter().filter(|packet| packet.as_any().is::<PictureLossIndication>()).count()
                                    as u64;
                        }
                        _ => {}
                    }
                }
                while let Some(datagram) = client.pc.poll_write() {
                    moved = true;
                    self.sent.0 += 1;
                    let lose = self.lose_to_sfu.as_mut().is_some_and(|lose| lose(&datagram.message));
                    if lose || self.lost.0.contains(&(self.sent.0 - 1)) {
                        continue;
                    }
                    let message = TaggedBytesMut {
                        now: self.now,
                        transport: context(sfu_address(), client.address),
                        message: datagram.message,
                    };
                    self.core.handle_input(self.now, WorkerInput::Datagram { peer: client.peer, datagram: message });
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settles");
    }

    fn deliver(&mut self, output: WorkerOutput) {
        match output {
            WorkerOutput::Transmit { to, bytes, .. } => {
                self.sent.1 += 1;
                if self.lost.1.contains(&(self.sent.1 - 1)) {
                    return;
                }
                if let Some(link) = self.links.get_mut(&to) {
                    link.send(self.now, bytes);
                    return;
                }
                let Some(client) = self.clients.iter_mut().find(|client| client.address == to) else { return };
                let datagram =
                    TaggedBytesMut { now: self.now, transport: context(client.address, sfu_address()), message: bytes };
                // A client that already closed refuses late datagrams; so would a browser.
                let _ = client.pc.handle_read(datagram);
            }
            WorkerOutput::Signal(outgoing) => {
                let Some(client) = self.clients.iter_mut().find(|client| client.key == outgoing.to) else { return };
                let sdp = outgoing.payload["sdp"].as_str().unwrap_or_default().to_string();
                match outgoing.kind {
                    SfuReplyKind::Answer => {
                        client
                            .pc
                            .set_remote_description(self.now, RTCSessionDescription::answer(sdp).expect("an answer"))
                            .expect("the answer applies");
                    }
                    SfuReplyKind::Offer => {
                        client.offers += 1;
                        if client.answers {
                            client.answer(&mut self.core, self.now, sdp);
                        } else {
                            client.unanswered = Some(sdp);
                        }
                    }
                    SfuReplyKind::Error => panic!("the SFU refused {}: {}", outgoing.to, outgoing.payload),
                    // The room core's, not a worker's.
                    SfuReplyKind::ActiveSpeakers => {}
                    SfuReplyKind::PublisherLayers => client.publisher_layers.push(outgoing.payload),
                }
            }
            WorkerOutput::ToRoom { peer, output } => self.reports.push((peer, output)),
            WorkerOutput::Shared { to, .. } => self.shared.push(to.to_vec()),
            // One worker and no receive loop: clients are routed by peer id already;
            // audio levels are the room core's (its tests and sfu/tests/speakers.rs).
            WorkerOutput::Route { .. } | WorkerOutput::AudioLevels { .. } | WorkerOutput::Record { .. } => {}
        }
    }

    /// Runs the network, timer by timer, until `done` or `limit` of simulated time.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.exchange();
            if done(self) {
                return true;
            }
            let next = self
                .clients
                .iter_mut()
                .filter_map(|client| client.pc.poll_timeout())
                .chain(self.core.poll_timeout())
                .chain(self.links.values().filter_map(simulcast::bwe::Link::next_arrival))
                .min();
            // At least a millisecond a step, so a timer due again at once cannot stop the clock.
            let next = next.unwrap_or(end).max(self.now + Duration::from_millis(1)).min(end);
            if next <= self.now {
                return false;
            }
            self.now = next;
            self.core.handle_timeout(self.now);
            for client in &mut self.clients {
                if client.pc.poll_timeout().is_some_and(|due| due <= self.now) {
                    let _ = client.pc.handle_timeout(self.now);
                }
            }
        }
    }

    /// `count` VP8 packets from a publishing client, written now.
    fn publish(&mut self, client: usize, count: u16) {
        let now = self.now;
        let client = &mut self.clients[client];
        let (sender, ssrc, sequence) = client.video.as_mut().expect("a publisher");
        let mut rtp_sender = client.pc.rtp_sender(*sender).expect("the sender");
        let payload_type =
            rtp_sender.get_parameters().rtp_parameters.codecs.first().expect("a negotiated codec").payload_type;
        for _ in 0..count {
            let header = rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: *sequence,
                timestamp: u32::from(*sequence) * 3000,
                ssrc: *ssrc,
                ..Default::default()
            };
            rtp_sender
                .write_rtp(now, rtp::Packet { header, payload: Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 0]) })
                .expect("the packet is written");
            *sequence = sequence.wrapping_add(1);
        }
    }

    /// The room core's part: every other client subscribes to what was published.
    fn subscribe_the_others(&mut self) -> Vec<SourceId> {
        let published: Vec<(u64, crate::source::Subscription)> = self
            .reports
            .iter()
            .filter_map(|(peer, output)| match output {
                PeerOutput::Published(subscription) => Some((*peer, subscription.clone())),
                _ => None,
            })
            .collect();
        self.reports.retain(|(_, output)| !matches!(output, PeerOutput::Published(_)));
        let peers: Vec<u64> = self.clients.iter().map(|client| client.peer).collect();
        for (publisher, subscription) in &published {
            for peer in peers.iter().filter(|peer| *peer != publisher) {
                self.core
                    .handle_input(self.now, WorkerInput::Subscribe { peer: *peer, subscription: subscription.clone() });
            }
        }
        published.into_iter().map(|(_, subscription)| subscription.source).collect()
    }

    fn keyframes_wanted(&self) -> Vec<SourceId> {
        self.reports
            .iter()
            .filter_map(|(_, output)| match output {
                PeerOutput::KeyframeWanted(source) => Some(*source),
                _ => None,
            })
            .collect()
    }

    /// A PLI from a subscribing client for every track it receives.
    fn request_keyframes(&mut self, client: usize) {
        let now = self.now;
        let client = &mut self.clients[client];
        for (receiver, media_ssrc) in client.received_tracks.clone() {
            let mut receiver = client.pc.rtp_receiver(receiver).expect("the receiver");
            receiver
                .write_rtcp(now, vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })])
                .expect("the PLI is written");
        }
    }
}

const CONNECT: Duration = Duration::from_secs(10);

/// A publisher and a subscriber connected, the publisher's track published and
/// (unless the subscriber does not answer) forwarded to the subscriber.
fn publisher_and_subscriber(subscriber_answers: bool) -> (Net, usize, usize, SourceId) {
    let mut net = Net::new();
    let (publisher, subscriber) = (net.join(true), net.join(false));
    net.clients[subscriber].answers = subscriber_answers;
    assert!(
        net.run_until(CONNECT, |net| net.clients.iter().all(|client| client.connected)),
        "both clients connect over ICE and DTLS"
    );
    net.publish(publisher, 5);
    assert!(net.run_until(CONNECT, |net| !net.reports.is_empty()), "the SFU sees the publisher's track");
    let sources = net.subscribe_the_others();
    assert_eq!(sources.len(), 1, "one published track");
    (net, publisher, subscriber, sources[0])
}

#[test]
fn a_publishers_packets_reach_its_subscriber_and_no_one_else() {
    let (mut net, publisher, subscriber, _) = publisher_and_subscriber(true);
    assert!(
        net.run_until(CONNECT, |net| net.clients[subscriber].offers == 1),
        "the SFU offers the track to the subscriber"
    );
    let forwarded = net.metrics.rtp_forwarded.load(Ordering::Relaxed);
    net.publish(publisher, 20);
    assert!(
        net.run_until(Duration::from_secs(1), |net| net.clients[subscriber].rtp_received >= 20),
        "the subscriber got {}",
        net.clients[subscriber].rtp_received
    );
    assert_eq!(net.metrics.rtp_forwarded.load(Ordering::Relaxed) - forwarded, 20);
    assert_eq!(net.clients[publisher].rtp_received, 0, "nothing of its own comes back to the publisher");

    // Closing the subscriber leaves the publisher's packets nowhere to go.
    net.core.handle_input(net.now, WorkerInput::Close { peer: net.clients[subscriber].peer });
    net.run_until(Duration::from_millis(100), |_| false);
    assert!(
        net.reports
            .iter()
            .any(|(peer, output)| *peer == net.clients[subscriber].peer && matches!(output, PeerOutput::Closed))
    );
    let forwarded = net.metrics.rtp_forwarded.load(Ordering::Relaxed);
    net.publish(publisher, 10);
    net.run_until(Duration::from_millis(100), |_| false);
    assert_eq!(net.metrics.rtp_forwarded.load(Ordering::Relaxed), forwarded, "no leg left for the publisher's packets");
}

#[test]
fn a_publishers_packets_go_to_other_workers_only_once_its_room_is_on_them() {
    let (mut net, publisher, subscriber, _) = publisher_and_subscriber(true);
    assert!(net.run_until(CONNECT, |net| net.clients[subscriber].offers == 1));
    net.publish(publisher, 10);
    assert!(net.run_until(Duration::from_secs(1), |net| net.clients[subscriber].rtp_received >= 10));
    assert_eq!(net.shared, Vec::<Vec<usize>>::new(), "a room on one worker wakes no other");

    let peer = net.clients[publisher].peer;
    net.core.handle_input(net.now, WorkerInput::RoomWorkers { peer, others: Arc::from([1, 3]) });
    net.publish(publisher, 10);
    assert!(net.run_until(Duration::from_secs(1), |net| net.clients[subscriber].rtp_received >= 20));
    assert_eq!(net.shared, vec![vec![1, 3]; 10], "each packet goes to the workers holding the rest of the room");

    net.core.handle_input(net.now, WorkerInput::RoomWorkers { peer, others: Arc::from([]) });
    net.publish(publisher, 10);
    assert!(net.run_until(Duration::from_secs(1), |net| net.clients[subscriber].rtp_received >= 30));
    assert_eq!(net.shared.len(), 10, "back on one worker, nothing more is handed out");
}

#[test]
fn an_sfu_offer_not_answered_in_ten_seconds_is_rolled_back_and_made_again() {
    let (mut net, publisher, subscriber, _) = publisher_and_subscriber(false);
    assert!(net.run_until(Duration::from_millis(100), |net| net.clients[subscriber].offers == 1));
    let offered = net.now;

    assert!(
        !net.run_until(Duration::from_millis(9_990), |net| net.clients[subscriber].offers > 1),
        "a second offer before the timeout"
    );
    assert!(
        net.run_until(Duration::from_millis(100), |net| net.clients[subscriber].offers == 2),
        "no new offer after the rollback"
    );
    let waited = net.now.duration_since(offered);
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_100), "re-offered after {waited:?}");

    // Answering the new offer completes the renegotiation: the track flows.
    let sdp = net.clients[subscriber].unanswered.take().expect("the new offer");
    let Net { clients, core, now, .. } = &mut net;
    clients[subscriber].answer(core, *now, sdp);
    net.publish(publisher, 10);
    assert!(
        net.run_until(Duration::from_secs(1), |net| net.clients[subscriber].rtp_received >= 10),
        "media after answering the second offer"
    );
}

#[test]
fn a_subscribers_keyframe_requests_reach_the_publisher_at_most_every_half_second() {
    let (mut net, publisher, subscriber, source) = publisher_and_subscriber(true);
    net.publish(publisher, 5);
    assert!(
        net.run_until(CONNECT, |net| !net.clients[subscriber].received_tracks.is_empty()),
        "the subscriber receives the track"
    );

    net.request_keyframes(subscriber);
    net.run_until(Duration::from_millis(1), |_| false);
    assert_eq!(net.keyframes_wanted(), [source], "the first request goes on");
    net.run_until(Duration::from_millis(200), |_| false);
    net.request_keyframes(subscriber);
    net.run_until(Duration::from_millis(1), |_| false);
    assert_eq!(net.keyframes_wanted(), [source], "a second request within 500 ms is dropped");
    net.run_until(Duration::from_millis(300), |_| false);
    net.request_keyframes(subscriber);
    net.run_until(Duration::from_millis(1), |_| false);
    assert_eq!(net.keyframes_wanted(), [source, source], "500 ms after the first, another goes on");

    // The room core routes it to the publisher's worker, which asks the publisher.
    net.core.handle_input(net.now, WorkerInput::Keyframe { peer: net.clients[publisher].peer, source });
    assert!(
        net.run_until(Duration::from_secs(1), |net| net.clients[publisher].keyframe_requests == 1),
        "a PLI at the publisher"
    );
}

/// Under load a datagram of the handshake can be lost (a full socket buffer): the
/// connection must still come up, by retransmission, whichever one it was: a
/// STUN check or its response, a DTLS flight in either direction.
#[test]
fn a_peer_connects_whichever_handshake_datagram_is_lost() {
    for towards_sfu in [true, false] {
        // A handshake takes six datagrams each way: two STUN, then DTLS.
        for lost in 0..6 {
            let mut net = Net::new();
            if towards_sfu {
                net.lost.0.push(lost);
            } else {
                net.lost.1.push(lost);
            }
            let client = net.join(false);
            let connected = net.run_until(Duration::from_secs(30), |net| net.clients[client].connected);
            let direction = if towards_sfu { "to the SFU" } else { "from the SFU" };
            assert!(connected, "datagram {lost} {direction} lost: not connected after 30 s ({:?} sent)", net.sent);
            let sent = if towards_sfu { net.sent.0 } else { net.sent.1 };
            assert!(sent > lost, "datagram {lost} {direction} was never sent: {:?}", net.sent);
        }
    }
}

#[path = "worker_core_simulcast_tests.rs"]
mod simulcast;

#[path = "worker_core_handshake_tests.rs"]
mod handshake;

#[test]
fn a_workers_peers_take_the_sockets_in_turn_whatever_their_ids() {
    let sockets: Vec<SocketAddr> = (0..4).map(|port| SocketAddr::from(([127, 0, 0, 1], 9000 + port))).collect();
    let mut core = WorkerCore::new(sockets, Arc::new(WorkerMetrics::default()), Instant::now());
    // A room on one of two workers gets every other id.
    let room = Uuid::new_v4();
    for peer in [1, 3, 5, 7] {
        let key = PeerKey { room, user: Uuid::new_v4(), connection: Uuid::new_v4() };
        core.handle_input(Instant::now(), WorkerInput::Create { peer, key, audio_blocked: false });
    }
    let mut used = Vec::new();
    while let Some(output) = core.poll_output() {
        if let WorkerOutput::Route { socket, change: RouteChange::Admit { .. } } = output {
            used.push(socket);
        }
    }
    assert_eq!(used, [0, 1, 2, 3], "id modulo the sockets would use two of the four");
}
