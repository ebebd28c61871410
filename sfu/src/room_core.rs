//! The room core: the SFU's picture of who is in which room and what they
//! publish, and every decision made on it. Sans-IO, after str0m's `Rtc`: it is
//! driven by [`RoomCore::handle_input`] and drained by [`RoomCore::poll_output`];
//! it owns no socket, channel, task or clock (no room rule depends on time, and
//! active speakers, which do, take it in: `room_speakers.rs`), so its tests run
//! it with plain values.
//!
//! It admits offers (an admission check asked for by [`CoreOutput::CheckAdmission`]
//! and answered by [`CoreInput::Checked`], within the room's capacity: see
//! [`make_room`]), places each new peer on a worker, tells subscribers' workers
//! when a track is published or goes, routes keyframe requests to the
//! publisher's worker, and applies room events: a user gone closes their peers, a
//! mute stops their audio, a room ended closes everything in it. A room event
//! seen while an offer's check is in flight refuses that offer, so a user removed
//! just before their offer arrives never gets a peer.

use std::collections::{HashMap, HashSet, VecDeque};

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

/// Messages of a connection whose admission is being checked.
struct Pending {
    queued: Vec<SfuRequest>,
    /// The stream sequence of the latest leave, removal or end of this user or
    /// room seen while the check ran.
    gone_at: Option<u64>,
}

pub struct RoomCore {
    workers: usize,
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
        let peer = self.next_peer;
        self.next_peer += 1;
        let worker = (peer % self.workers as u64) as usize;
        self.peers.insert(peer, PeerEntry { key: key.clone(), worker, published: Vec::new(), closing: false });
        self.by_connection.insert(key.connection, peer);
        let room = self.rooms.entry(key.room).or_default();
        if room.is_empty() {
            self.outputs.push_back(CoreOutput::RoomOpened(key.room));
        }
        room.insert(peer);
        self.send(peer, WorkerInput::Create { peer, key: key.clone(), audio_blocked: admitted.audio_muted });
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
