//! A media worker's core: its share of the SFU's peers and every decision about
//! them, sans-IO after str0m's `Rtc`. It is driven by [`WorkerCore::handle_input`]
//! and [`WorkerCore::handle_timeout`], drained by [`WorkerCore::poll_output`], and
//! says when it next needs time with [`WorkerCore::poll_timeout`]. It owns no
//! socket, channel, thread or clock: time moves only by the `Instant`s passed in,
//! so its tests run it on a simulated clock. `worker.rs` is its thread.
//!
//! A peer's worker is its id modulo the worker count. The room core keeps a
//! small room's peers on one worker and spreads a big room's over all, so the
//! per-subscriber work (rewrite, SRTP encryption) of one busy room runs on
//! every core (`room_core.rs`). A packet from a publisher is decrypted by its
//! own worker, forwarded to this worker's subscribers at once and handed out
//! ([`WorkerOutput::Shared`]) to the other workers that hold peers of its room,
//! if the room core named any ([`WorkerInput::RoomWorkers`]). Everything else a worker learns (tracks opening,
//! keyframe requests, peers closing) goes to the room core
//! ([`WorkerOutput::ToRoom`]), which owns the room picture.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtp;
use rtc::sansio::Protocol;

use crate::inputs::WorkerInput;
use crate::metrics::WorkerMetrics;
use crate::peer::{Peer, PeerError, PeerOutput};
use crate::routes::RouteChange;
use crate::signal::Outgoing;
use crate::simulcast::LayerTag;
use crate::source::SourceId;
use crate::speakers::{LevelMeter, LevelSummary};

/// A publisher's packet on its way to subscribers, with its simulcast layer.
type Forwarded = (SourceId, Arc<rtp::Packet>, Option<LayerTag>);

/// What the worker core wants done; its thread (`worker.rs`) does it.
#[derive(Debug)]
pub enum WorkerOutput {
    /// Send `bytes` to `to` from the SFU's socket number `socket`, or, when
    /// `tcp`, on the client's ICE-TCP connection from `to` (`tcp.rs`).
    Transmit { socket: usize, to: SocketAddr, bytes: BytesMut, tcp: bool },
    /// Tell socket `socket`'s receive loop that a peer exists or is gone.
    Route { socket: usize, change: RouteChange },
    /// A decrypted packet of one of this worker's publishers, already forwarded
    /// to this worker's subscribers: for the subscribers on workers `to`.
    Shared { source: SourceId, packet: Arc<rtp::Packet>, layer: Option<LayerTag>, to: Arc<[usize]> },
    /// What a peer asks of the room core.
    ToRoom { peer: u64, output: PeerOutput },
    /// A message for one client connection.
    Signal(Outgoing),
    /// The audio levels of this worker's publishers counted up to `at`, for
    /// the room core's active speakers.
    AudioLevels { at: Instant, levels: Vec<(SourceId, LevelSummary)> },
    /// A packet of a recorded track, received at `at`, for the recording thread.
    Record { source: SourceId, packet: Arc<rtp::Packet>, layer: Option<u8>, at: Instant },
}

pub struct WorkerCore {
    /// The announced address of each of the SFU's sockets.
    sockets: Vec<SocketAddr>,
    /// Each peer's socket, handed out in turn as peers are created here: a
    /// room's peers share a worker and their ids step by the worker count, so
    /// `id % sockets` would leave some sockets to other rooms.
    peer_sockets: HashMap<u64, usize>,
    next_socket: usize,
    /// The announced address of the ICE-TCP listener, when there is one.
    tcp: Option<SocketAddr>,
    /// Whether new peers estimate their downlink (TWCC) and fit layers to it.
    downlink_estimate: bool,
    metrics: Arc<WorkerMetrics>,
    peers: HashMap<u64, Peer>,
    /// This worker's subscribers of each source.
    subscribers: HashMap<SourceId, HashSet<u64>>,
    /// The other workers holding peers of a peer's room, for peers whose room
    /// is not on this worker alone: where their packets are handed.
    room_workers: HashMap<u64, Arc<[usize]>>,
    /// Each peer's next timer, refreshed whenever the peer was touched: asking
    /// every peer's interceptor chain on every loop would cost more than the
    /// forwarding itself at hundreds of peers.
    deadlines: HashMap<u64, Instant>,
    /// Peers handled since they were last drained; drained once per batch of inputs.
    touched: Vec<u64>,
    /// The audio levels of this worker's publishers since the last report.
    levels: LevelMeter,
    /// This worker's publishers' tracks that are being recorded.
    recorded: HashSet<SourceId>,
    /// The latest time passed in, for the work `poll_output` does.
    now: Instant,
    outputs: VecDeque<WorkerOutput>,
}

impl WorkerCore {
    /// A core for peers on sockets announced at `sockets` (at least one).
    pub fn new(sockets: Vec<SocketAddr>, metrics: Arc<WorkerMetrics>, now: Instant) -> Self {
        assert!(!sockets.is_empty(), "a worker needs a socket");
        Self {
            sockets,
            peer_sockets: HashMap::new(),
            next_socket: 0,
            tcp: None,
            downlink_estimate: true,
            metrics,
            peers: HashMap::new(),
            subscribers: HashMap::new(),
            room_workers: HashMap::new(),
            deadlines: HashMap::new(),
            touched: Vec::new(),
            levels: LevelMeter::default(),
            recorded: HashSet::new(),
            now,
            outputs: VecDeque::new(),
        }
    }

    /// Every peer also offers a passive ICE-TCP candidate at `announce`.
    pub fn with_tcp(mut self, announce: Option<SocketAddr>) -> Self {
        self.tcp = announce;
        self
    }

    /// New peers estimate their downlink and fit simulcast layers to it, or not.
    pub fn with_downlink_estimate(mut self, on: bool) -> Self {
        self.downlink_estimate = on;
        self
    }

    /// Peers are spread over the SFU's sockets (one, or one per port of a range) by id.
    fn socket_of(&self, peer: u64) -> usize {
        self.peer_sockets.get(&peer).copied().unwrap_or(0)
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The earliest moment a peer needs [`WorkerCore::handle_timeout`]; read after
    /// `poll_output` returned `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.deadlines.values().min().copied();
        match (peers, self.levels.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every peer timer due at `now`: webrtc-rs's (ICE, DTLS, RTCP reports,
    /// NACK) and the SFU's own (an offer not answered in time is rolled back, a
    /// DTLS handshake that died or did not finish in time fails the peer:
    /// `peer_handshake.rs`).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        let due: Vec<u64> =
            self.deadlines.iter().filter(|(_, deadline)| **deadline <= now).map(|(id, _)| *id).collect();
        for id in due {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            if let Err(error) = peer.connection().handle_timeout(now) {
                tracing::debug!(peer = %peer.key, %error, "peer timeout handling failed");
                peer.timeout_failed(&error);
            }
            if let Err(error) = peer.check_answer_timeout(now) {
                tracing::debug!(peer = %peer.key, %error, "rolling back an unanswered offer failed");
            }
            peer.check_handshake(now);
            self.touched.push(id);
        }
    }

    pub fn handle_input(&mut self, now: Instant, input: WorkerInput) {
        self.advance(now);
        let now = self.now;
        match input {
            WorkerInput::Datagram { peer, datagram } => {
                self.metrics.datagrams_in.fetch_add(1, Ordering::Relaxed);
                if let Some(target) = self.peers.get_mut(&peer) {
                    target.datagram_in(&datagram.message, now);
                    // A stray or late datagram is not the client's request failing.
                    if let Err(error) = target.connection().handle_read(datagram) {
                        tracing::trace!(peer = %target.key, %error, "a datagram was not accepted");
                    }
                    self.touched.push(peer);
                }
            }
            WorkerInput::Create { peer, key, audio_blocked } => {
                let credentials = crate::ufrag::credentials(peer);
                let socket = self.next_socket % self.sockets.len();
                let estimate = self.downlink_estimate;
                match Peer::new(key.clone(), peer, credentials.clone(), self.sockets[socket], estimate, now) {
                    Ok(mut created) => {
                        if let Some(tcp) = self.tcp
                            && let Err(error) = created.add_tcp_candidate(tcp)
                        {
                            tracing::warn!(peer = %key, %error, "cannot make the ICE-TCP candidate");
                        }
                        // Registered before the answer goes out, so the client's first check finds it.
                        self.outputs.push_back(WorkerOutput::Route {
                            socket,
                            change: RouteChange::Admit { peer, credentials },
                        });
                        created.audio_blocked = audio_blocked;
                        self.peers.insert(peer, created);
                        self.peer_sockets.insert(peer, socket);
                        self.next_socket += 1;
                        self.touched.push(peer);
                    }
                    Err(error) => {
                        tracing::warn!(peer = %key, %error, "cannot create a peer connection");
                        self.outputs.push_back(WorkerOutput::Signal(Outgoing::error(
                            key,
                            "sfu_error",
                            "the SFU could not create a peer connection",
                        )));
                        self.outputs.push_back(WorkerOutput::ToRoom { peer, output: PeerOutput::Closed });
                    }
                }
            }
            WorkerInput::Offer { peer, sdp } => self.with_peer(peer, |p| p.handle_offer(sdp, now)),
            WorkerInput::Answer { peer, sdp } => self.with_peer(peer, |p| p.handle_answer(sdp, now)),
            WorkerInput::Candidate { peer, candidate } => self.with_peer(peer, |p| p.handle_candidate(candidate)),
            WorkerInput::Subscribe { peer, subscription } => {
                if self.peers.contains_key(&peer) {
                    self.subscribers.entry(subscription.source).or_default().insert(peer);
                }
                self.with_peer(peer, |p| {
                    p.subscribe(subscription)?;
                    p.offer_if_needed(now)
                });
            }
            WorkerInput::Unsubscribe { peer, source } => {
                if let Some(subscribers) = self.subscribers.get_mut(&source) {
                    subscribers.remove(&peer);
                    if subscribers.is_empty() {
                        self.subscribers.remove(&source);
                    }
                }
                self.with_peer(peer, |p| {
                    p.unsubscribe(source)?;
                    p.offer_if_needed(now)
                });
            }
            WorkerInput::BlockAudio { peer, blocked } => self.with_peer(peer, |p| {
                p.audio_blocked = blocked;
                Ok(())
            }),
            WorkerInput::Keyframe { peer, source } => self.with_peer(peer, |p| {
                p.request_keyframe(source, now);
                Ok(())
            }),
            WorkerInput::Close { peer } => self.with_peer(peer, |p| {
                p.close();
                Ok(())
            }),
            WorkerInput::LayerKeyframe { peer, source, layer } => self.with_peer(peer, |p| {
                p.request_layer_keyframe(source, layer, now);
                Ok(())
            }),
            WorkerInput::PublisherLayers { peer, source, active } => self.with_peer(peer, |p| {
                p.set_publisher_layers(source, &active);
                Ok(())
            }),
            WorkerInput::VideoConstraint { peer, publisher, max_height } => self.with_peer(peer, |p| {
                p.set_video_constraint(publisher, max_height);
                Ok(())
            }),
            WorkerInput::Record { peer, source, on } => {
                // Only a live publisher's own track; its packets start flowing at its next datagram.
                if on && self.peers.contains_key(&peer) && source.0 >> crate::peer::SOURCE_BITS == peer {
                    self.recorded.insert(source);
                } else {
                    self.recorded.remove(&source);
                }
            }
            WorkerInput::Rtp { source, packet, layer } => self.forward_local(source, &packet, layer),
            WorkerInput::RoomWorkers { peer, others } => {
                if others.is_empty() || !self.peers.contains_key(&peer) {
                    self.room_workers.remove(&peer);
                } else {
                    self.room_workers.insert(peer, others);
                }
            }
            WorkerInput::Stop => self.close_all(),
        }
    }

    /// Closes every peer; their goodbyes (DTLS close) come out of `poll_output`.
    pub fn close_all(&mut self) {
        for (id, peer) in &mut self.peers {
            peer.close();
            self.touched.push(*id);
        }
    }

    /// The next thing to do, once every peer touched since the last call has been
    /// drained (its events, received packets and datagrams to send).
    pub fn poll_output(&mut self) -> Option<WorkerOutput> {
        if self.outputs.is_empty() && !self.touched.is_empty() {
            self.flush();
        }
        if self.outputs.is_empty()
            && let Some(levels) = self.levels.take_due(self.now)
        {
            self.outputs.push_back(WorkerOutput::AudioLevels { at: self.now, levels });
        }
        self.outputs.pop_front()
    }

    fn with_peer(&mut self, id: u64, action: impl FnOnce(&mut Peer) -> Result<(), PeerError>) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if let Err(error) = action(peer) {
            tracing::info!(peer = %peer.key, %error, "peer request failed");
            let message = error.to_string();
            self.outputs.push_back(WorkerOutput::Signal(Outgoing::error(
                peer.key.clone(),
                "negotiation_failed",
                &message,
            )));
        }
        self.touched.push(id);
    }

    fn forward_local(&mut self, source: SourceId, packet: &rtp::Packet, layer: Option<LayerTag>) {
        let Some(subscribers) = self.subscribers.get(&source) else { return };
        let mut forwarded = 0;
        for id in subscribers {
            if let Some(peer) = self.peers.get_mut(id) {
                forwarded += u64::from(peer.forward(source, packet, layer, self.now));
                self.touched.push(*id);
            }
        }
        self.metrics.rtp_forwarded.fetch_add(forwarded, Ordering::Relaxed);
    }

    fn flush(&mut self) {
        let mut forwarded: Vec<Forwarded> = Vec::new();
        while !self.touched.is_empty() || !forwarded.is_empty() {
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for id in touched {
                self.drain_peer(id, &mut forwarded);
            }
            for (source, packet, layer) in forwarded.drain(..) {
                self.forward_local(source, &packet, layer);
                // A room on this worker alone wakes no other worker.
                if let Some(to) = self.room_workers.get(&(source.0 >> crate::peer::SOURCE_BITS)) {
                    self.outputs.push_back(WorkerOutput::Shared { source, packet, layer, to: Arc::clone(to) });
                }
            }
        }
    }

    fn drain_peer(&mut self, id: u64, forwarded: &mut Vec<Forwarded>) {
        let socket = self.socket_of(id);
        let now = self.now;
        let Some(peer) = self.peers.get_mut(&id) else { return };
        while let Some(event) = peer.connection().poll_event() {
            if let Err(error) = peer.handle_event(event, now) {
                tracing::debug!(peer = %peer.key, %error, "peer event handling failed");
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = peer.connection().poll_read() {
            match message {
                RTCMessage::RtpPacket(track, packet) => {
                    if let Some(source) = peer.source_of(&track)
                        && let Ok(layer) = peer.layer_of(&track, &packet)
                    {
                        if let Some(level) = peer.audio_level(&track, &packet) {
                            self.levels.record(source, level, now);
                        }
                        let packet = Arc::new(packet);
                        if self.recorded.contains(&source) {
                            self.outputs.push_back(WorkerOutput::Record {
                                source,
                                packet: Arc::clone(&packet),
                                layer: layer.map(|tag| tag.layer),
                                at: now,
                            });
                        }
                        forwarded.push((source, packet, layer));
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => peer.handle_rtcp(&packets, now),
                _ => {}
            }
        }
        while let Some(datagram) = peer.connection().poll_write() {
            self.outputs.push_back(WorkerOutput::Transmit {
                socket,
                to: datagram.transport.peer_addr,
                bytes: datagram.message,
                tcp: datagram.transport.transport_protocol == rtc::shared::TransportProtocol::TCP,
            });
        }
        let closed = peer.is_closed();
        for outgoing in std::mem::take(&mut peer.signals) {
            self.outputs.push_back(WorkerOutput::Signal(outgoing));
        }
        for output in std::mem::take(&mut peer.outputs) {
            self.outputs.push_back(WorkerOutput::ToRoom { peer: id, output });
        }
        match peer.next_deadline() {
            Some(deadline) if !closed => self.deadlines.insert(id, deadline),
            _ => self.deadlines.remove(&id),
        };
        if closed {
            self.peers.remove(&id);
            self.peer_sockets.remove(&id);
            self.room_workers.remove(&id);
            self.levels.forget(|source| source.0 >> crate::peer::SOURCE_BITS == id);
            self.recorded.retain(|source| source.0 >> crate::peer::SOURCE_BITS != id);
            self.subscribers.retain(|_, subscribers| {
                subscribers.remove(&id);
                !subscribers.is_empty()
            });
            self.outputs.push_back(WorkerOutput::Route { socket, change: RouteChange::Forget { peer: id } });
        }
    }
}

#[cfg(test)]
#[path = "worker_core_tests.rs"]
mod tests;
