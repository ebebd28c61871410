//! The conductor: the SFU's picture of who is in which room and what they publish.
//!
//! One async task owns it, so there is no shared mutable state between workers.
//! It admits offers (a current participant of a room that has not ended, checked
//! against the event store), places each new peer on a worker, tells subscribers'
//! workers when a track is published or goes, routes keyframe requests to the
//! publisher's worker, and applies room events: a user gone closes their peers, a
//! mute stops their audio, a room ended closes everything in it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    NotParticipant,
    RoomEnded,
    Unavailable(String),
}

impl Refused {
    fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Refused::NotParticipant => ("not_a_participant", "join the room before sending media".into()),
            Refused::RoomEnded => ("room_ended", "the room has ended".into()),
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
}

/// Messages of a connection whose admission is being checked.
struct Pending {
    queued: Vec<Incoming>,
    cancelled: bool,
}

pub struct Conductor {
    inputs: UnboundedReceiver<ConductorInput>,
    myself: UnboundedSender<ConductorInput>,
    workers: Vec<Sender<WorkerInput>>,
    signals: UnboundedSender<Outgoing>,
    admission: Arc<dyn Admission>,
    next_peer: u64,
    peers: HashMap<u64, PeerEntry>,
    by_connection: HashMap<Uuid, u64>,
    rooms: HashMap<Uuid, HashSet<u64>>,
    /// The keys of `rooms`, shared with the room placement (`placement.rs`).
    active: ActiveRooms,
    pending: HashMap<Uuid, Pending>,
}

impl Conductor {
    pub fn new(
        inputs: UnboundedReceiver<ConductorInput>,
        myself: UnboundedSender<ConductorInput>,
        workers: Vec<Sender<WorkerInput>>,
        signals: UnboundedSender<Outgoing>,
        admission: Arc<dyn Admission>,
        active: ActiveRooms,
    ) -> Self {
        Self {
            inputs,
            myself,
            workers,
            signals,
            admission,
            next_peer: 1,
            peers: HashMap::new(),
            by_connection: HashMap::new(),
            rooms: HashMap::new(),
            active,
            pending: HashMap::new(),
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

    fn signal(&mut self, incoming: Incoming) {
        let connection = incoming.connection_id;
        if incoming.kind == "disconnect" {
            self.pending.remove(&connection);
            if let Some(peer) = self.by_connection.get(&connection) {
                self.send(*peer, WorkerInput::Close { peer: *peer });
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
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::info!(peer = %key, ?refused, "an offer was refused");
                let (code, message) = refused.code_and_message();
                let _ = self.signals.send(Outgoing::error(key, code, &message));
                return;
            }
        };
        let peer = self.next_peer;
        self.next_peer += 1;
        let worker = (peer % self.workers.len() as u64) as usize;
        self.peers.insert(peer, PeerEntry { key: key.clone(), worker, published: Vec::new() });
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
                        self.send(peer, WorkerInput::Close { peer });
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
                    self.send(peer, WorkerInput::Close { peer });
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
