//! A media worker: one OS thread owning a share of the SFU's peers.
//!
//! Peers are spread over workers by id, so the per-subscriber work (rewrite,
//! SRTP encryption, send) of one busy room runs on every core. A packet from a
//! publisher is decrypted by its own worker, then handed (shared, not copied) to
//! every worker, which sends it on its own peers' legs for that track. Everything
//! else a worker learns (tracks opening, keyframe requests, peers closing) goes to
//! the room core (through the conductor's channel), which owns the room picture.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtp;
use rtc::sansio::Protocol;
use tokio::sync::mpsc::UnboundedSender;

use crate::inputs::{CoreInput, WorkerInput};
use crate::metrics::WorkerMetrics;
use crate::peer::{Peer, PeerOutput};
use crate::routes::RouteChange;
use crate::signal::Outgoing;
use crate::source::SourceId;

/// When nothing is due, a worker still wakes this often.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// Inputs handled before the worker looks at timers again.
const BATCH: usize = 256;

/// One of the SFU's UDP sockets, as workers use it.
pub struct MediaSocket {
    pub socket: Arc<UdpSocket>,
    /// The address in the ICE candidate of peers on this socket.
    pub announce: SocketAddr,
    /// Tells this socket's receive loop which peers exist and with which ICE credentials.
    pub routes: Sender<RouteChange>,
}

pub struct Worker {
    pub index: usize,
    pub inbox: Receiver<WorkerInput>,
    pub workers: Vec<Sender<WorkerInput>>,
    pub sockets: Arc<Vec<MediaSocket>>,
    pub conductor: UnboundedSender<CoreInput>,
    pub signals: UnboundedSender<Outgoing>,
    pub metrics: Arc<WorkerMetrics>,
    peers: HashMap<u64, Peer>,
    /// This worker's subscribers of each source.
    subscribers: HashMap<SourceId, HashSet<u64>>,
    /// Each peer's next timer, refreshed whenever the peer was touched: asking
    /// every peer's interceptor chain on every loop would cost more than the
    /// forwarding itself at hundreds of peers.
    deadlines: HashMap<u64, Instant>,
    touched: Vec<u64>,
}

impl Worker {
    pub fn new(
        index: usize,
        inbox: Receiver<WorkerInput>,
        workers: Vec<Sender<WorkerInput>>,
        sockets: Arc<Vec<MediaSocket>>,
        conductor: UnboundedSender<CoreInput>,
        signals: UnboundedSender<Outgoing>,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        Self {
            index,
            inbox,
            workers,
            sockets,
            conductor,
            signals,
            metrics,
            peers: HashMap::new(),
            subscribers: HashMap::new(),
            deadlines: HashMap::new(),
            touched: Vec::new(),
        }
    }

    pub fn run(mut self) {
        loop {
            let now = Instant::now();
            let deadline = self.next_deadline().unwrap_or(now + IDLE_WAKE).min(now + IDLE_WAKE);
            let first = match self.inbox.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let batch: Vec<WorkerInput> = first.into_iter().chain(std::iter::from_fn(|| self.inbox.try_recv().ok())).take(BATCH).collect();
            let mut stop = false;
            for input in batch {
                if matches!(input, WorkerInput::Stop) {
                    stop = true;
                    break;
                }
                self.handle(input);
            }
            self.run_timers();
            self.flush();
            if stop {
                // Closed peers still have their goodbyes (DTLS close) to send.
                for (id, peer) in &mut self.peers {
                    peer.close();
                    self.touched.push(*id);
                }
                self.flush();
                return;
            }
        }
    }

    /// Peers are spread over the SFU's sockets (one, or one per port of a range) by id.
    fn socket_of(&self, peer: u64) -> &MediaSocket {
        &self.sockets[peer as usize % self.sockets.len()]
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self.deadlines.iter().filter(|(_, deadline)| **deadline <= now).map(|(id, _)| *id).collect();
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id) {
                if let Err(error) = peer.connection().handle_timeout(now) {
                    tracing::debug!(peer = %peer.key, %error, "peer timeout handling failed");
                }
                if let Err(error) = peer.check_answer_timeout(now) {
                    tracing::debug!(peer = %peer.key, %error, "rolling back an unanswered offer failed");
                }
                self.touched.push(id);
            }
        }
    }

    fn handle(&mut self, input: WorkerInput) {
        let now = Instant::now();
        match input {
            WorkerInput::Datagram { peer, datagram } => {
                self.metrics.datagrams_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(target) = self.peers.get_mut(&peer) {
                    // A stray or late datagram is not the client's request failing.
                    if let Err(error) = target.connection().handle_read(datagram) {
                        tracing::trace!(peer = %target.key, %error, "a datagram was not accepted");
                    }
                    self.touched.push(peer);
                }
            }
            WorkerInput::Create { peer, key, audio_blocked } => {
                let credentials = crate::ufrag::credentials(peer);
                let socket = self.socket_of(peer);
                match Peer::new(key.clone(), peer, credentials.clone(), socket.announce, now) {
                    Ok(mut created) => {
                        // Registered before the answer goes out, so the client's first check finds it.
                        let _ = socket.routes.send(RouteChange::Admit { peer, credentials });
                        created.audio_blocked = audio_blocked;
                        self.peers.insert(peer, created);
                        self.touched.push(peer);
                    }
                    Err(error) => {
                        tracing::warn!(peer = %key, %error, "cannot create a peer connection");
                        let _ = self.signals.send(Outgoing::error(key, "sfu_error", "the SFU could not create a peer connection"));
                        let _ = self.conductor.send(CoreInput::FromPeer { peer, output: PeerOutput::Closed });
                    }
                }
            }
            WorkerInput::Offer { peer, sdp } => self.with_peer(peer, |p| p.handle_offer(sdp, now)),
            WorkerInput::Answer { peer, sdp } => self.with_peer(peer, |p| p.handle_answer(sdp, now)),
            WorkerInput::Candidate { peer, candidate } => self.with_peer(peer, |p| p.handle_candidate(candidate)),
            WorkerInput::Subscribe { peer, subscription } => {
                let source = subscription.source;
                if self.peers.contains_key(&peer) {
                    self.subscribers.entry(source).or_default().insert(peer);
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
            WorkerInput::Rtp { source, packet } => self.forward_local(source, &packet, now),
            // Seen by `run` before it gets here.
            WorkerInput::Stop => {}
        }
    }

    fn with_peer(&mut self, id: u64, action: impl FnOnce(&mut Peer) -> Result<(), crate::peer::PeerError>) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if let Err(error) = action(peer) {
            tracing::info!(peer = %peer.key, %error, "peer request failed");
            let message = error.to_string();
            let _ = self.signals.send(Outgoing::error(peer.key.clone(), "negotiation_failed", &message));
        }
        self.touched.push(id);
    }

    fn forward_local(&mut self, source: SourceId, packet: &rtp::Packet, now: Instant) {
        let Some(subscribers) = self.subscribers.get(&source) else { return };
        let mut forwarded = 0;
        for id in subscribers {
            if let Some(peer) = self.peers.get_mut(id) {
                forwarded += u64::from(peer.forward(source, packet, now));
                self.touched.push(*id);
            }
        }
        self.metrics.rtp_forwarded.fetch_add(forwarded, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drains every touched peer: its events, received messages and datagrams to send.
    fn flush(&mut self) {
        let mut forwarded: Vec<(SourceId, Arc<rtp::Packet>)> = Vec::new();
        while !self.touched.is_empty() || !forwarded.is_empty() {
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for id in touched {
                self.drain_peer(id, &mut forwarded);
            }
            let now = Instant::now();
            for (source, packet) in forwarded.drain(..) {
                for (index, worker) in self.workers.iter().enumerate() {
                    if index != self.index {
                        let _ = worker.send(WorkerInput::Rtp { source, packet: Arc::clone(&packet) });
                    }
                }
                self.forward_local(source, &packet, now);
            }
        }
    }

    fn drain_peer(&mut self, id: u64, forwarded: &mut Vec<(SourceId, Arc<rtp::Packet>)>) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let now = Instant::now();
        while let Some(event) = peer.connection().poll_event() {
            if let Err(error) = peer.handle_event(event, now) {
                tracing::debug!(peer = %peer.key, %error, "peer event handling failed");
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = peer.connection().poll_read() {
            match message {
                RTCMessage::RtpPacket(track, packet) => {
                    if let Some(source) = peer.source_of(&track) {
                        forwarded.push((source, Arc::new(packet)));
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => peer.handle_rtcp(&packets, now),
                _ => {}
            }
        }
        let mut sent = 0u64;
        while let Some(datagram) = peer.connection().poll_write() {
            match self.sockets[id as usize % self.sockets.len()].socket.send_to(&datagram.message, datagram.transport.peer_addr) {
                Ok(_) => sent += 1,
                Err(error) => tracing::trace!(peer = %peer.key, %error, "send failed"),
            }
        }
        self.metrics.datagrams_out.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
        let closed = peer.is_closed();
        for outgoing in std::mem::take(&mut peer.signals) {
            let _ = self.signals.send(outgoing);
        }
        for output in std::mem::take(&mut peer.outputs) {
            let _ = self.conductor.send(CoreInput::FromPeer { peer: id, output });
        }
        match peer.next_deadline() {
            Some(deadline) if !closed => self.deadlines.insert(id, deadline),
            _ => self.deadlines.remove(&id),
        };
        if closed {
            self.peers.remove(&id);
            self.subscribers.retain(|_, subscribers| {
                subscribers.remove(&id);
                !subscribers.is_empty()
            });
            let _ = self.socket_of(id).routes.send(RouteChange::Forget { peer: id });
        }
    }
}
