//! The room core: the SFU's picture of who is in which room and what they
//! publish, and every decision made on it. Sans-IO, after str0m's `Rtc`: it is
//! driven by [`RoomCore::handle_input`] and drained by [`RoomCore::poll_output`];
//! it owns no socket, channel, task or clock (no room rule depends on time, and
//! active speakers, which do, take it in: `room_speakers.rs`), so its tests run
//! it with plain values.
//!
//! It admits offers (an admission check asked for by [`CoreOutput::CheckAdmission`]
//! and answered by [`CoreInput::Checked`], within the room's capacity: see
//! [`make_room`]), places each new peer on a worker ([`place`]: a small room on
//! one worker, a big one spread), tells subscribers' workers
//! when a track is published or goes, routes keyframe requests to the
//! publisher's worker, and applies room events: a user gone closes their peers, a
//! mute stops their audio, a room ended closes everything in it. A room event
//! seen while an offer's check is in flight refuses that offer, so a user removed
//! just before their offer arrives never gets a peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rapat_wire::signal::{SfuRequest, SfuRequestKind};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use uuid::Uuid;

use crate::inputs::{Admitted, CoreInput, Refused, WorkerInput};
use crate::layer_demand::{ActiveLayers, LayerDemand};
use crate::peer::{PeerOutput, SOURCE_BITS};
use crate::signal::{Outgoing, PeerKey, RoomChange, sdp_of};
use crate::source::{SourceId, Subscription};
use crate::speakers::Speakers;

#[path = "room_recording.rs"]
mod room_recording;
#[path = "room_speakers.rs"]
mod room_speakers;

/// What the core wants done; the shell (`conductor.rs`) does it.
#[derive(Debug)]
pub enum CoreOutput {
    /// Hand `input` to media worker number `worker`.
    ToWorker { worker: usize, input: WorkerInput },
    /// Send a message to one client connection.
    Signal(Outgoing),
    /// Ask whether `key.user` may open media in `key.room`; answer with [`CoreInput::Checked`].
    CheckAdmission(PeerKey),
    /// The room got its first peer on this node (for the room placement).
    RoomOpened(Uuid),
    /// The room's last peer on this node closed.
    RoomClosed(Uuid),
    /// Start or stop writing a track to a file (`room_recording.rs`).
    Record(crate::recorder::RecordOrder),
}

struct PeerEntry {
    key: PeerKey,
    worker: usize,
    published: Vec<Subscription>,
    /// Told to close; no longer counts against the room's capacity.
    closing: bool,
}

/// A room's peers all go to one worker until it has this many on this node;
/// from then on each new one goes to the least-loaded worker.
///
/// Why: a packet for subscribers on another worker is one more queue hand-over
/// and, mostly, one more wake of that worker, shared by the subscribers there.
/// In a meeting a packet has few subscribers: with a 10-person meeting spread
/// over two workers, waiting and waking were 10.5 % of the workers' CPU,
/// against 0.8 % for one publisher to 200. Kept on one worker, a room of 16
/// forwards at most 16 × 15 streams, about 48,000 packets/s at the bench's
/// 200 packets/s per participant: within one core (the bench's workers forward
/// 60,000-100,000 per core), and many such rooms still use every core because
/// each new room goes to the least-loaded worker. Past 16, a packet's
/// subscribers are enough to pay for the hand-over, and a room that may grow to
/// hundreds (one speaker to a large audience) must not be held to one core.
/// Placed peers never move (their ICE, DTLS and SRTP state lives in their
/// worker), so a room that grows past this keeps its first peers where they are.
/// This is per SFU node: `placement.rs` decides which node serves a room, and
/// nothing here is shared between processes.
pub(crate) const ROOM_ON_ONE_WORKER_BELOW: usize = 16;

/// The worker for a new peer, given the worker of each peer the room already
/// has on this node and every worker's peer count (`load`, one per worker).
pub(crate) fn place(room: &[usize], load: &[usize]) -> usize {
    let least_loaded = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.min_by_key(|&worker| (load.get(worker).copied().unwrap_or(0), worker)).unwrap_or(0)
    };
    if room.is_empty() || room.len() >= ROOM_ON_ONE_WORKER_BELOW {
        return least_loaded(&mut (0..load.len()));
    }
    // The worker with most of the room (a room that shrank below the threshold
    // may span several); among equals, the least loaded.
    let mut in_room = vec![0usize; load.len()];
    for &worker in room {
        if let Some(count) = in_room.get_mut(worker) {
            *count += 1;
        }
    }
    let most = in_room.iter().copied().max().unwrap_or(0);
    least_loaded(&mut (0..load.len()).filter(|&worker| in_room[worker] == most))
}

/// Messages of a connection whose admission is being checked.
struct Pending {
    queued: Vec<SfuRequest>,
    /// The stream sequence of the latest leave, removal or end of this user or
    /// room seen while the check ran.
    gone_at: Option<u64>,
}

pub struct RoomCore {
    workers: usize,
    /// Peers on each worker, closing ones included (they still cost until gone).
    load: Vec<usize>,
    /// Live peers one user may hold in one room (`SfuConfig::max_peers_per_user`).
    max_peers_per_user: usize,
    next_peer: u64,
    peers: HashMap<u64, PeerEntry>,
    by_connection: HashMap<Uuid, u64>,
    rooms: HashMap<Uuid, HashSet<u64>>,
    pending: HashMap<Uuid, Pending>,
    /// Active speakers per room (`room_speakers.rs`).
    speakers: Speakers,
    /// The simulcast layers subscribers need, per track.
    layer_demand: LayerDemand,
    /// Rooms recording now, and the tracks being recorded (`room_recording.rs`).
    recording: HashSet<Uuid>,
    recorded: HashSet<SourceId>,
    outputs: VecDeque<CoreOutput>,
}

impl RoomCore {
    /// A core placing peers over `workers` media workers (at least one).
    pub fn new(workers: usize, max_peers_per_user: usize) -> Self {
        Self {
            workers: workers.max(1),
            load: vec![0; workers.max(1)],
            max_peers_per_user: max_peers_per_user.max(1),
            next_peer: 1,
            peers: HashMap::new(),
            by_connection: HashMap::new(),
            rooms: HashMap::new(),
            pending: HashMap::new(),
            speakers: Speakers::default(),
            layer_demand: LayerDemand::default(),
            recording: HashSet::new(),
            recorded: HashSet::new(),
            outputs: VecDeque::new(),
        }
    }

    pub fn handle_input(&mut self, input: CoreInput) {
        match input {
            CoreInput::Signal(incoming) => self.signal(incoming),
            CoreInput::Room { change, sequence } => self.room_changed(change, sequence),
            CoreInput::FromPeer { peer, output } => self.peer_reported(peer, output),
            CoreInput::Checked { key, result } => self.checked(key, result),
            CoreInput::AudioLevels { at, levels } => self.audio_levels(at, levels),
        }
    }

    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.outputs.pop_front()
    }

    /// Peers that exist, closing ones included.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn send(&mut self, peer: u64, input: WorkerInput) {
        if let Some(entry) = self.peers.get(&peer) {
            self.outputs.push_back(CoreOutput::ToWorker { worker: entry.worker, input });
        }
    }

    fn tell(&mut self, to: PeerKey, code: &str, message: &str) {
        self.outputs.push_back(CoreOutput::Signal(Outgoing::error(to, code, message)));
    }

    /// Tells a peer's worker to close it; it stops counting at once.
    fn close(&mut self, peer: u64) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.closing = true;
        }
        self.send(peer, WorkerInput::Close { peer });
    }

    fn signal(&mut self, incoming: SfuRequest) {
        let connection = incoming.connection_id;
        if incoming.kind == SfuRequestKind::Disconnect {
            self.pending.remove(&connection);
            if let Some(peer) = self.by_connection.get(&connection).copied() {
                self.close(peer);
            }
            return;
        }
        if let Some(pending) = self.pending.get_mut(&connection) {
            pending.queued.push(incoming);
            return;
        }
        match self.by_connection.get(&connection).copied() {
            Some(peer) => self.deliver(peer, incoming),
            None if incoming.kind == SfuRequestKind::Offer => {
                let key = PeerKey::of(&incoming);
                self.pending.insert(key.connection, Pending { queued: vec![incoming], gone_at: None });
                self.outputs.push_back(CoreOutput::CheckAdmission(key));
            }
            // Answers and candidates for no peer (closed, or never opened) are stale.
            None => {}
        }
    }

    fn deliver(&mut self, peer: u64, incoming: SfuRequest) {
        let key = PeerKey::of(&incoming);
        match incoming.kind {
            SfuRequestKind::Offer | SfuRequestKind::Answer => {
                let Some(sdp) = sdp_of(&incoming) else {
                    self.tell(key, "invalid_payload", "payload.sdp must be a string");
                    return;
                };
                let input = if incoming.kind == SfuRequestKind::Offer {
                    WorkerInput::Offer { peer, sdp }
                } else {
                    WorkerInput::Answer { peer, sdp }
                };
                self.send(peer, input);
            }
            SfuRequestKind::IceCandidate => match serde_json::from_value::<RTCIceCandidateInit>(incoming.payload) {
                Ok(candidate) => self.send(peer, WorkerInput::Candidate { peer, candidate }),
                Err(_) => self.tell(key, "invalid_payload", "payload must be an RTCIceCandidateInit"),
            },
            SfuRequestKind::VideoConstraints => match crate::signal::video_constraint_of(&incoming) {
                Some((publisher, max_height)) => {
                    self.send(peer, WorkerInput::VideoConstraint { peer, publisher, max_height })
                }
                None => self.tell(
                    key,
                    "invalid_payload",
                    "payload.publisherId must be a user id and payload.maxHeight a height in pixels",
                ),
            },
            _ => {}
        }
    }

    fn live_peers(&self, room: Uuid) -> Vec<(u64, Uuid)> {
        self.room_peers(room)
            .into_iter()
            .filter_map(|peer| self.peers.get(&peer).filter(|entry| !entry.closing).map(|entry| (peer, entry.key.user)))
            .collect()
    }

    fn checked(&mut self, key: PeerKey, result: Result<Admitted, Refused>) {
        let Some(pending) = self.pending.remove(&key.connection) else {
            return;
        };
        // A check decided before the user or room went (a later sequence) is stale;
        // one decided after it already saw it.
        let admitted = match (pending.gone_at, result) {
            (Some(gone_at), Ok(admitted)) if gone_at > admitted.as_of => Err(Refused::NotParticipant),
            (_, result) => result,
        };
        let live = self.live_peers(key.room);
        let made_room = admitted.and_then(|admitted| {
            let replaced = make_room(&live, key.user, admitted.max_users, self.max_peers_per_user)?;
            Ok((admitted, replaced))
        });
        let (admitted, replaced) = match made_room {
            Ok(made) => made,
            Err(refused) => {
                tracing::info!(peer = %key, ?refused, "an offer was refused");
                let (code, message) = refused.code_and_message();
                self.tell(key, code, &message);
                return;
            }
        };
        for old in replaced {
            let Some(entry) = self.peers.get(&old) else {
                continue;
            };
            tracing::info!(peer = %entry.key, by = %key.connection, "a newer peer of the same user replaces this one");
            let message =
                "a newer connection of yours in this room took over the media; this one's peer connection is closed";
            self.tell(entry.key.clone(), "peer_replaced", message);
            self.close(old);
        }
        let room_before = self.workers_of(key.room);
        let in_room: Vec<usize> =
            self.room_peers(key.room).iter().filter_map(|id| self.peers.get(id)).map(|entry| entry.worker).collect();
        let worker = place(&in_room, &self.load);
        let peer = self.id_on(worker);
        self.load[worker] += 1;
        self.peers.insert(peer, PeerEntry { key: key.clone(), worker, published: Vec::new(), closing: false });
        self.by_connection.insert(key.connection, peer);
        let room = self.rooms.entry(key.room).or_default();
        if room.is_empty() {
            self.outputs.push_back(CoreOutput::RoomOpened(key.room));
        }
        room.insert(peer);
        self.send(peer, WorkerInput::Create { peer, key: key.clone(), audio_blocked: admitted.audio_muted });
        // A room on one worker needs no word: a peer's packets stay on its worker until told.
        let room_after = self.workers_of(key.room);
        if room_after.len() > 1 {
            if room_after == room_before {
                self.tell_peer_room_workers(peer, &room_after);
            } else {
                self.tell_room_workers(key.room);
            }
        }
        let existing: Vec<Subscription> = self
            .peers
            .values()
            .filter(|entry| entry.key.room == key.room && entry.key.user != key.user)
            .flat_map(|entry| entry.published.iter().cloned())
            .collect();
        for subscription in existing {
            self.send(peer, WorkerInput::Subscribe { peer, subscription });
        }
        self.tell_speakers(&key);
        tracing::info!(peer = %key, id = peer, worker, "peer admitted");
        for incoming in pending.queued {
            self.deliver(peer, incoming);
        }
    }

    /// A new peer's id: the next one whose remainder by the worker count is
    /// `worker`, because the receive loops hand a peer's datagrams to the worker
    /// its id names (`udp.rs`, `tcp.rs`); ids need not be consecutive.
    fn id_on(&mut self, worker: usize) -> u64 {
        let workers = self.workers as u64;
        let peer = self.next_peer + (worker as u64 + workers - self.next_peer % workers) % workers;
        self.next_peer = peer + 1;
        peer
    }

    /// The workers holding the room's peers on this node, in order.
    fn workers_of(&self, room: Uuid) -> Vec<usize> {
        let mut workers: Vec<usize> = self
            .rooms
            .get(&room)
            .into_iter()
            .flatten()
            .filter_map(|peer| self.peers.get(peer))
            .map(|entry| entry.worker)
            .collect();
        workers.sort_unstable();
        workers.dedup();
        workers
    }

    /// Tells every peer of the room's workers which other workers hold peers of
    /// the room (after the set changed), so its packets reach them and no others.
    fn tell_room_workers(&mut self, room: Uuid) {
        let workers = self.workers_of(room);
        for peer in self.room_peers(room) {
            self.tell_peer_room_workers(peer, &workers);
        }
    }

    fn tell_peer_room_workers(&mut self, peer: u64, room_workers: &[usize]) {
        let Some(own) = self.peers.get(&peer).map(|entry| entry.worker) else { return };
        let others: Arc<[usize]> = room_workers.iter().copied().filter(|&worker| worker != own).collect();
        self.send(peer, WorkerInput::RoomWorkers { peer, others });
    }

    fn room_peers(&self, room: Uuid) -> Vec<u64> {
        let mut peers: Vec<u64> =
            self.rooms.get(&room).map(|peers| peers.iter().copied().collect()).unwrap_or_default();
        // In age order, so what the core asks for does not depend on hashing.
        peers.sort_unstable();
        peers
    }

    fn peers_of(&self, room: Uuid, user: Uuid) -> Vec<u64> {
        self.room_peers(room)
            .into_iter()
            .filter(|peer| self.peers.get(peer).is_some_and(|entry| entry.key.user == user))
            .collect()
    }

    fn room_changed(&mut self, change: RoomChange, sequence: u64) {
        tracing::debug!(?change, "room change");
        match change {
            RoomChange::UserGone { room, user } => {
                self.cancel_pending(sequence, |key| key.room == room && key.user == user);
                self.silence(room, user);
                for peer in self.peers_of(room, user) {
                    self.close(peer);
                }
            }
            RoomChange::AudioBlocked { room, user, blocked } => {
                if blocked {
                    self.silence(room, user);
                }
                for peer in self.peers_of(room, user) {
                    self.send(peer, WorkerInput::BlockAudio { peer, blocked });
                }
            }
            RoomChange::Ended { room } => {
                self.cancel_pending(sequence, |key| key.room == room);
                self.set_recording(room, false);
                for peer in self.room_peers(room) {
                    self.close(peer);
                }
            }
            RoomChange::Recording { room, on } => self.set_recording(room, on),
        }
    }

    fn cancel_pending(&mut self, sequence: u64, matches: impl Fn(&PeerKey) -> bool) {
        for pending in self.pending.values_mut() {
            if pending.queued.first().is_some_and(|first| matches(&PeerKey::of(first))) {
                pending.gone_at = Some(pending.gone_at.map_or(sequence, |at| at.max(sequence)));
            }
        }
    }

    fn peer_reported(&mut self, peer: u64, output: PeerOutput) {
        match output {
            PeerOutput::Published(subscription) => {
                let Some(entry) = self.peers.get_mut(&peer) else {
                    return;
                };
                entry.published.push(subscription.clone());
                let (room, user) = (entry.key.room, entry.key.user);
                self.record_publication(peer, &subscription);
                for other in self.room_peers(room) {
                    if self.peers.get(&other).is_some_and(|entry| entry.key.user != user) {
                        self.send(other, WorkerInput::Subscribe { peer: other, subscription: subscription.clone() });
                    }
                }
            }
            PeerOutput::Unpublished(source) => {
                let Some(entry) = self.peers.get_mut(&peer) else {
                    return;
                };
                entry.published.retain(|published| published.source != source);
                self.layer_demand.forget_source(source);
                let room = entry.key.room;
                self.stop_recording_source(source);
                for other in self.room_peers(room) {
                    if other != peer {
                        self.send(other, WorkerInput::Unsubscribe { peer: other, source });
                    }
                }
            }
            PeerOutput::KeyframeWanted(source) => {
                let publisher = source.0 >> SOURCE_BITS;
                self.send(publisher, WorkerInput::Keyframe { peer: publisher, source });
            }
            PeerOutput::LayerKeyframeWanted { source, layer } => {
                let publisher = source.0 >> SOURCE_BITS;
                self.send(publisher, WorkerInput::LayerKeyframe { peer: publisher, source, layer });
            }
            PeerOutput::LayerWanted { source, layer, forwarded } => {
                if let Some(active) = self.layer_demand.want(source, peer, &[layer, forwarded]) {
                    self.tell_layers(source, active);
                }
            }
            PeerOutput::Closed => self.forget(peer),
            PeerOutput::Failed(why) => {
                let key = self.peers.get(&peer).filter(|entry| !entry.closing).map(|entry| entry.key.clone());
                self.forget(peer);
                // Told after the peer is forgotten: the client's next offer on
                // this connection makes a new peer rather than reaching the dead one.
                if let Some(key) = key {
                    let message = format!("{why}; the SFU closed this peer connection: make a new one and offer again");
                    self.tell(key, "peer_failed", &message);
                }
            }
        }
    }

    fn tell_layers(&mut self, source: SourceId, active: ActiveLayers) {
        let publisher = source.0 >> SOURCE_BITS;
        self.send(publisher, WorkerInput::PublisherLayers { peer: publisher, source, active });
    }

    fn forget(&mut self, peer: u64) {
        let Some(entry) = self.peers.remove(&peer) else {
            return;
        };
        tracing::info!(peer = %entry.key, "peer closed");
        self.load[entry.worker] = self.load[entry.worker].saturating_sub(1);
        for published in &entry.published {
            self.layer_demand.forget_source(published.source);
            self.stop_recording_source(published.source);
        }
        for (source, active) in self.layer_demand.forget_peer(peer) {
            self.tell_layers(source, active);
        }
        for published in &entry.published {
            for other in self.room_peers(entry.key.room) {
                if other != peer {
                    self.send(other, WorkerInput::Unsubscribe { peer: other, source: published.source });
                }
            }
        }
        if self.by_connection.get(&entry.key.connection) == Some(&peer) {
            self.by_connection.remove(&entry.key.connection);
        }
        if let Some(room) = self.rooms.get_mut(&entry.key.room) {
            room.remove(&peer);
            if room.is_empty() {
                self.rooms.remove(&entry.key.room);
                self.speakers.forget_room(entry.key.room);
                self.outputs.push_back(CoreOutput::RoomClosed(entry.key.room));
            } else if !self.workers_of(entry.key.room).contains(&entry.worker) {
                // Its worker holds no one of the room any more: stop handing it packets.
                self.tell_room_workers(entry.key.room);
            }
        }
    }
}

/// Room for a new peer of `user`, given the room's live peers (id, user; ids grow
/// with age): refused when `user` has no peer there yet and `max_users` users
/// already do; otherwise the peers of `user` to close so that, with the new one,
/// they are at most `per_user`: the oldest go, because a client that reconnects
/// (a new socket after a dropped one) must not be locked out by a dying peer.
pub(crate) fn make_room(
    live: &[(u64, Uuid)],
    user: Uuid,
    max_users: u32,
    per_user: usize,
) -> Result<Vec<u64>, Refused> {
    let users: HashSet<Uuid> = live.iter().map(|(_, owner)| *owner).collect();
    if !users.contains(&user) && users.len() >= max_users as usize {
        return Err(Refused::RoomFull);
    }
    let mut own: Vec<u64> = live.iter().filter(|(_, owner)| *owner == user).map(|(peer, _)| *peer).collect();
    own.sort_unstable();
    let excess = (own.len() + 1).saturating_sub(per_user.max(1));
    own.truncate(excess);
    Ok(own)
}

#[cfg(test)]
#[path = "room_core_tests.rs"]
mod tests;
