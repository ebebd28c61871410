//! The conductor: the SFU's picture of who is in which room and what they publish.
//!
//! One async task owns it, so there is no shared mutable state between workers.
//! It admits offers (a current participant of a room that has not ended, checked
//! against the event store, within the room's capacity: see [`make_room`]),
//! places each new peer on a worker, tells subscribers'
//! workers when a track is published or goes, routes keyframe requests to the
//! publisher's worker, and applies room events: a user gone closes their peers, a
//! mute stops their audio, a room ended closes everything in it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;
use futures::future::BoxFuture;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use uuid::Uuid;

use crate::peer::{PeerOutput, SOURCE_BITS};
use crate::placement::ActiveRooms;
use crate::signal::{Incoming, Outgoing, PeerKey, RoomChange};
use crate::source::Subscription;
use crate::worker::WorkerInput;

/// Whether a user may open media in a room, from the room's events.
pub trait Admission: Send + Sync + 'static {
    fn check(&self, room: Uuid, user: Uuid) -> BoxFuture<'static, Result<Admitted, Refused>>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Audio starts blocked when the participant is muted.
    pub audio_muted: bool,
    /// The room's `maxUsers`: at most this many distinct users have peers in it.
    pub max_users: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    NotParticipant,
    RoomEnded,
    /// Peers of `maxUsers` other users are already in the room.
    RoomFull,
    Unavailable(String),
}

impl Refused {
    fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Refused::NotParticipant => ("not_a_participant", "join the room before sending media".into()),
            Refused::RoomEnded => ("room_ended", "the room has ended".into()),
            Refused::RoomFull => ("room_full", "the room's media is full: it has reached its participant limit".into()),
            Refused::Unavailable(reason) => ("sfu_unavailable", format!("cannot check the room now: {reason}")),
        }
    }
}

pub enum ConductorInput {
    Signal(Incoming),
    Room(RoomChange),
    FromPeer { peer: u64, output: PeerOutput },
    Checked { key: PeerKey, result: Result<Admitted, Refused> },
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
    queued: Vec<Incoming>,
    cancelled: bool,
}

/// What the conductor shares with the handle, and the per-user cap.
pub struct PeerLimits {
    pub max_peers_per_user: usize,
    /// The keys of the conductor's rooms, shared with the room placement.
    pub active: ActiveRooms,
    pub peer_count: Arc<AtomicUsize>,
}

pub struct Conductor {
    inputs: UnboundedReceiver<ConductorInput>,
    myself: UnboundedSender<ConductorInput>,
    workers: Vec<Sender<WorkerInput>>,
    signals: UnboundedSender<Outgoing>,
    admission: Arc<dyn Admission>,
    /// Live peers one user may hold in one room (`SfuConfig::max_peers_per_user`).
    max_peers_per_user: usize,
    next_peer: u64,
    peers: HashMap<u64, PeerEntry>,
    by_connection: HashMap<Uuid, u64>,
    rooms: HashMap<Uuid, HashSet<u64>>,
    /// The keys of `rooms`, shared with the room placement (`placement.rs`).
    active: ActiveRooms,
    pending: HashMap<Uuid, Pending>,
    /// How many peers exist (closing ones included), for metrics.
    peer_count: Arc<AtomicUsize>,
}

impl Conductor {
    pub fn new(
        inputs: UnboundedReceiver<ConductorInput>,
        myself: UnboundedSender<ConductorInput>,
        workers: Vec<Sender<WorkerInput>>,
        signals: UnboundedSender<Outgoing>,
        admission: Arc<dyn Admission>,
        limits: PeerLimits,
    ) -> Self {
        Self {
            inputs,
            myself,
            workers,
            signals,
            admission,
            max_peers_per_user: limits.max_peers_per_user.max(1),
            next_peer: 1,
            peers: HashMap::new(),
            by_connection: HashMap::new(),
            rooms: HashMap::new(),
            active: limits.active,
            pending: HashMap::new(),
            peer_count: limits.peer_count,
        }
    }

    pub async fn run(mut self) {
        while let Some(input) = self.inputs.recv().await {
            match input {
                ConductorInput::Signal(incoming) => self.signal(incoming),
                ConductorInput::Room(change) => self.room_changed(change),
                ConductorInput::FromPeer { peer, output } => self.peer_reported(peer, output),
                ConductorInput::Checked { key, result } => self.checked(key, result),
            }
        }
    }

    fn send(&self, peer: u64, input: WorkerInput) {
        if let Some(entry) = self.peers.get(&peer) {
            let _ = self.workers[entry.worker].send(input);
        }
    }

    /// Tells a peer's worker to close it; it stops counting at once.
    fn close(&mut self, peer: u64) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.closing = true;
        }
        self.send(peer, WorkerInput::Close { peer });
    }

    fn signal(&mut self, incoming: Incoming) {
        let connection = incoming.connection_id;
        if incoming.kind == "disconnect" {
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
            None if incoming.kind == "offer" => self.admit(incoming),
            // Answers and candidates for no peer (closed, or never opened) are stale.
            None => {}
        }
    }

    fn deliver(&mut self, peer: u64, incoming: Incoming) {
        let key = incoming.key();
        match incoming.kind.as_str() {
            "offer" | "answer" => {
                let Some(sdp) = incoming.sdp() else {
                    let _ = self.signals.send(Outgoing::error(key, "invalid_payload", "payload.sdp must be a string"));
                    return;
                };
                let input = if incoming.kind == "offer" { WorkerInput::Offer { peer, sdp } } else { WorkerInput::Answer { peer, sdp } };
                self.send(peer, input);
            }
            "ice-candidate" => match serde_json::from_value::<RTCIceCandidateInit>(incoming.payload) {
                Ok(candidate) => self.send(peer, WorkerInput::Candidate { peer, candidate }),
                Err(_) => {
                    let _ = self.signals.send(Outgoing::error(key, "invalid_payload", "payload must be an RTCIceCandidateInit"));
                }
            },
            _ => {}
        }
    }

    fn admit(&mut self, incoming: Incoming) {
        let key = incoming.key();
        self.pending.insert(key.connection, Pending { queued: vec![incoming], cancelled: false });
        let check = self.admission.check(key.room, key.user);
        let myself = self.myself.clone();
        tokio::spawn(async move {
            let result = check.await;
            let _ = myself.send(ConductorInput::Checked { key, result });
        });
    }

    fn checked(&mut self, key: PeerKey, result: Result<Admitted, Refused>) {
        let Some(pending) = self.pending.remove(&key.connection) else { return };
        let admitted = match (pending.cancelled, result) {
            (true, _) => Err(Refused::NotParticipant),
            (false, result) => result,
        };
        let live: Vec<(u64, Uuid)> = self
            .room_peers(key.room)
            .into_iter()
            .filter_map(|peer| self.peers.get(&peer).filter(|entry| !entry.closing).map(|entry| (peer, entry.key.user)))
            .collect();
        let made_room = admitted.and_then(|admitted| {
            let replaced = make_room(&live, key.user, admitted.max_users, self.max_peers_per_user)?;
            Ok((admitted, replaced))
        });
        let (admitted, replaced) = match made_room {
            Ok(made) => made,
            Err(refused) => {
                tracing::info!(peer = %key, ?refused, "an offer was refused");
                let (code, message) = refused.code_and_message();
                let _ = self.signals.send(Outgoing::error(key, code, &message));
                return;
            }
        };
        for old in replaced {
            let Some(entry) = self.peers.get(&old) else { continue };
            tracing::info!(peer = %entry.key, by = %key.connection, "a newer peer of the same user replaces this one");
            let message = "a newer connection of yours in this room took over the media; this one's peer connection is closed";
            let _ = self.signals.send(Outgoing::error(entry.key.clone(), "peer_replaced", message));
            self.close(old);
        }
        let peer = self.next_peer;
        self.next_peer += 1;
        let worker = (peer % self.workers.len() as u64) as usize;
        self.peers.insert(peer, PeerEntry { key: key.clone(), worker, published: Vec::new(), closing: false });
        self.peer_count.store(self.peers.len(), Ordering::Relaxed);
        self.by_connection.insert(key.connection, peer);
        self.rooms.entry(key.room).or_default().insert(peer);
        if let Ok(mut active) = self.active.lock() {
            active.insert(key.room);
        }
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
        tracing::info!(peer = %key, id = peer, worker, "peer admitted");
        for incoming in pending.queued {
            self.deliver(peer, incoming);
        }
    }

    fn room_peers(&self, room: Uuid) -> Vec<u64> {
        self.rooms.get(&room).map(|peers| peers.iter().copied().collect()).unwrap_or_default()
    }

    fn room_changed(&mut self, change: RoomChange) {
        tracing::debug!(?change, "room change");
        match change {
            RoomChange::UserGone { room, user } => {
                self.cancel_pending(|key| key.room == room && key.user == user);
                for peer in self.room_peers(room) {
                    if self.peers.get(&peer).is_some_and(|entry| entry.key.user == user) {
                        self.close(peer);
                    }
                }
            }
            RoomChange::AudioBlocked { room, user, blocked } => {
                for peer in self.room_peers(room) {
                    if self.peers.get(&peer).is_some_and(|entry| entry.key.user == user) {
                        self.send(peer, WorkerInput::BlockAudio { peer, blocked });
                    }
                }
            }
            RoomChange::Ended { room } => {
                self.cancel_pending(|key| key.room == room);
                for peer in self.room_peers(room) {
                    self.close(peer);
                }
            }
        }
    }

    fn cancel_pending(&mut self, matches: impl Fn(&PeerKey) -> bool) {
        for pending in self.pending.values_mut() {
            if pending.queued.first().is_some_and(|first| matches(&first.key())) {
                pending.cancelled = true;
            }
        }
    }

    fn peer_reported(&mut self, peer: u64, output: PeerOutput) {
        match output {
            PeerOutput::Published(subscription) => {
                let Some(entry) = self.peers.get_mut(&peer) else { return };
                entry.published.push(subscription.clone());
                let (room, user) = (entry.key.room, entry.key.user);
                for other in self.room_peers(room) {
                    if self.peers.get(&other).is_some_and(|entry| entry.key.user != user) {
                        self.send(other, WorkerInput::Subscribe { peer: other, subscription: subscription.clone() });
                    }
                }
            }
            PeerOutput::Unpublished(source) => {
                let Some(entry) = self.peers.get_mut(&peer) else { return };
                entry.published.retain(|published| published.source != source);
                let room = entry.key.room;
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
            PeerOutput::Closed => {
                let Some(entry) = self.peers.remove(&peer) else { return };
                self.peer_count.store(self.peers.len(), Ordering::Relaxed);
                tracing::info!(peer = %entry.key, "peer closed");
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
                        if let Ok(mut active) = self.active.lock() {
                            active.remove(&entry.key.room);
                        }
                    }
                }
            }
        }
    }
}

/// Room for a new peer of `user`, given the room's live peers (id, user; ids grow
/// with age): refused when `user` has no peer there yet and `max_users` users
/// already do; otherwise the peers of `user` to close so that, with the new one,
/// they are at most `per_user`: the oldest go, because a client that reconnects
/// (a new socket after a dropped one) must not be locked out by a dying peer.
pub(crate) fn make_room(live: &[(u64, Uuid)], user: Uuid, max_users: u32, per_user: usize) -> Result<Vec<u64>, Refused> {
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
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn a_new_user_beyond_max_users_is_refused_and_a_present_one_is_not() {
        let u = users(3);
        let live = [(1, u[0]), (2, u[1]), (3, u[1])];
        assert_eq!(make_room(&live, u[2], 2, 3), Err(Refused::RoomFull));
        assert_eq!(make_room(&live, u[1], 2, 3), Ok(vec![]));
        assert_eq!(make_room(&live, u[2], 3, 3), Ok(vec![]));
        assert_eq!(make_room(&[], u[0], 1, 3), Ok(vec![]));
    }

    #[test]
    fn a_user_at_the_cap_loses_their_oldest_peers() {
        let u = users(2);
        let live = [(9, u[0]), (4, u[0]), (5, u[1]), (7, u[0])];
        assert_eq!(make_room(&live, u[0], 5, 3), Ok(vec![4]));
        assert_eq!(make_room(&live, u[0], 5, 1), Ok(vec![4, 7, 9]));
        assert_eq!(make_room(&live, u[1], 5, 3), Ok(vec![]));
        // A cap of zero would lock everyone out; it means one.
        assert_eq!(make_room(&live, u[1], 5, 0), Ok(vec![5]));
    }

    #[test]
    fn peers_in_a_room_stay_within_max_users_times_the_cap() {
        let u = users(8);
        let mut live: Vec<(u64, Uuid)> = Vec::new();
        for id in 1..=400u64 {
            let user = u[(id as usize * 7) % u.len()];
            if let Ok(replaced) = make_room(&live, user, 5, 3) {
                live.retain(|(peer, _)| !replaced.contains(peer));
                live.push((id, user));
            }
            let distinct: HashSet<Uuid> = live.iter().map(|(_, owner)| *owner).collect();
            assert!(distinct.len() <= 5 && live.len() <= 15, "{} users, {} peers", distinct.len(), live.len());
        }
    }
}
