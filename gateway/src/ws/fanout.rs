//! Room fan-out over core NATS, so no gateway assumes it holds the whole room.
//!
//! A gateway subscribes to `<namespace>.rooms.<roomId>.signal` and to the room's
//! event subject `<prefix>.room.<roomId>` while at least one of its sockets is in
//! the room, and unsubscribes when the last one leaves. Every room message is
//! published to the signal subject, and each gateway hands it to its own sockets:
//! a targeted one only to the target user's. Room events (stored on JetStream,
//! seen here by a plain subscription, like `session_cache.rs`) close sockets:
//! `ParticipantRemoved` the removed user's, `RoomEnded` everyone's.
//!
//! A socket has a bounded outgoing queue; when it is full the socket is dropped
//! rather than making the room wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::HeaderMap;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use rapat_commands::EVENT_TYPES_HEADER;
use rapat_domain::envelope::StoredCommit;
use serde_json::json;
use tokio::sync::{OnceCell, mpsc};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::message::Identity;
use super::{CLOSE_REMOVED, CLOSE_ROOM_ENDED};

/// Names the connection a broadcast must not be echoed to.
const SKIP_HEADER: &str = "Rapat-Ws-Skip";
/// Names the user a targeted message is for.
const TARGET_HEADER: &str = "Rapat-Ws-Target";
/// Marks the message a gateway sends itself to know its subscription is live.
const PROBE_HEADER: &str = "Rapat-Ws-Probe";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the writer of one socket sends next.
#[derive(Debug)]
pub enum Outgoing {
    Text(Utf8Bytes),
    Ping,
    Close(u16, &'static str),
}

/// One local socket as the fan-out sees it.
pub struct Connection {
    pub id: Uuid,
    pub identity: Identity,
    queue: mpsc::Sender<Outgoing>,
    pub cancel: CancellationToken,
}

impl Connection {
    pub fn new(identity: Identity, queue: mpsc::Sender<Outgoing>) -> Self {
        Self { id: Uuid::new_v4(), identity, queue, cancel: CancellationToken::new() }
    }

    /// Queues `item`; a client too slow to keep its queue short is dropped.
    pub fn deliver(&self, item: Outgoing) {
        if self.queue.try_send(item).is_err() {
            tracing::info!(connection = %self.id, user = %self.identity.user, "dropping a websocket that cannot keep up");
            self.cancel.cancel();
        }
    }
}

/// The sockets of this gateway, by room, and the NATS subscriptions that feed them.
pub struct Hub {
    nats: async_nats::Client,
    /// `<namespace>.rooms`: signal subjects are `<this>.<roomId>.signal`.
    signal_prefix: String,
    /// `<event subject prefix>.room`: a room's events are on `<this>.<roomId>`.
    event_prefix: String,
    rooms: Mutex<HashMap<Uuid, Arc<LocalRoom>>>,
}

struct LocalRoom {
    id: Uuid,
    connections: Mutex<HashMap<Uuid, Arc<Connection>>>,
    subscribed: OnceCell<()>,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for LocalRoom {
    fn drop(&mut self) {
        // Ending the task drops its subscriptions, which unsubscribes.
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// A socket's place in a room; leaving happens on drop.
pub struct Membership {
    hub: Arc<Hub>,
    room: Uuid,
    connection: Uuid,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.room, self.connection);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// `event_subject_prefix` is the event store's (`<namespace>.events`).
    pub fn new(nats: async_nats::Client, event_subject_prefix: &str, room_type: &str) -> Self {
        let namespace = event_subject_prefix.strip_suffix(".events").unwrap_or(event_subject_prefix);
        Self {
            nats,
            signal_prefix: format!("{namespace}.rooms"),
            event_prefix: format!("{event_subject_prefix}.{room_type}"),
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn signal_subject(&self, room: Uuid) -> String {
        format!("{}.{room}.signal", self.signal_prefix)
    }

    /// Adds a socket to a room, subscribing first if it is the room's first here.
    /// Once this returns, messages published to the room reach the socket.
    pub async fn join(self: &Arc<Self>, room: Uuid, connection: Arc<Connection>) -> Result<Membership, async_nats::Error> {
        let local = {
            let mut rooms = lock(&self.rooms);
            let local = rooms
                .entry(room)
                .or_insert_with(|| {
                    Arc::new(LocalRoom {
                        id: room,
                        connections: Mutex::new(HashMap::new()),
                        subscribed: OnceCell::new(),
                        task: Mutex::new(None),
                    })
                })
                .clone();
            lock(&local.connections).insert(connection.id, Arc::clone(&connection));
            local
        };
        let membership = Membership { hub: Arc::clone(self), room, connection: connection.id };
        local.subscribed.get_or_try_init(|| self.subscribe(&local)).await?;
        Ok(membership)
    }

    fn leave(&self, room: Uuid, connection: Uuid) {
        let emptied = {
            let mut rooms = lock(&self.rooms);
            let empty = rooms.get(&room).is_some_and(|local| {
                let mut connections = lock(&local.connections);
                connections.remove(&connection);
                connections.is_empty()
            });
            if empty { rooms.remove(&room) } else { None }
        };
        drop(emptied);
    }

    async fn subscribe(&self, local: &Arc<LocalRoom>) -> Result<(), async_nats::Error> {
        let subject = self.signal_subject(local.id);
        let mut signals = self.nats.subscribe(subject.clone()).await?;
        let events = self.nats.subscribe(format!("{}.{}", self.event_prefix, local.id)).await?;
        // NATS handles one connection's commands in order: once our own probe comes
        // back, both subscriptions are live on the server.
        let probe = Uuid::new_v4().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(PROBE_HEADER, probe.as_str());
        self.nats.publish_with_headers(subject, headers, Default::default()).await?;
        let weak = Arc::downgrade(local);
        tokio::time::timeout(PROBE_TIMEOUT, async {
            while let Some(message) = signals.next().await {
                if header(&message, PROBE_HEADER) == Some(probe.as_str()) {
                    return Ok(());
                }
                deliver_signal(&weak, &message);
            }
            Err("the signal subscription ended")
        })
        .await
        .map_err(|_| "no answer from NATS to the subscription probe")??;
        let task = tokio::spawn(follow(weak, signals, events));
        *lock(&local.task) = Some(task.abort_handle());
        Ok(())
    }

    /// Publishes a room message to every gateway with sockets in the room.
    /// `skip` is a connection not to echo it to; `target` limits it to one user.
    pub async fn publish(&self, room: Uuid, skip: Option<Uuid>, target: Option<Uuid>, text: Utf8Bytes) -> Result<(), async_nats::Error> {
        let mut headers = HeaderMap::new();
        if let Some(skip) = skip {
            headers.insert(SKIP_HEADER, skip.to_string().as_str());
        }
        if let Some(target) = target {
            headers.insert(TARGET_HEADER, target.to_string().as_str());
        }
        self.nats.publish_with_headers(self.signal_subject(room), headers, text.into()).await?;
        Ok(())
    }
}

fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(|value| value.as_str())
}

fn connections(local: &Weak<LocalRoom>) -> Vec<Arc<Connection>> {
    local.upgrade().map(|local| lock(&local.connections).values().cloned().collect()).unwrap_or_default()
}

async fn follow(local: Weak<LocalRoom>, mut signals: async_nats::Subscriber, mut events: async_nats::Subscriber) {
    loop {
        tokio::select! {
            message = signals.next() => match message {
                Some(message) => deliver_signal(&local, &message),
                None => break,
            },
            message = events.next() => match message {
                Some(message) => deliver_event(&local, &message),
                None => break,
            },
        }
    }
    tracing::warn!("a room's NATS subscription ended; its sockets get no more room messages");
}

fn deliver_signal(local: &Weak<LocalRoom>, message: &async_nats::Message) {
    if header(message, PROBE_HEADER).is_some() {
        return;
    }
    let Ok(text) = Utf8Bytes::try_from(message.payload.clone()) else { return };
    let skip = header(message, SKIP_HEADER).and_then(|id| Uuid::parse_str(id).ok());
    let target = header(message, TARGET_HEADER).and_then(|id| Uuid::parse_str(id).ok());
    for connection in connections(local) {
        if Some(connection.id) == skip || target.is_some_and(|target| target != connection.identity.user) {
            continue;
        }
        connection.deliver(Outgoing::Text(text.clone()));
    }
}

fn deliver_event(local: &Weak<LocalRoom>, message: &async_nats::Message) {
    let relevant = header(message, EVENT_TYPES_HEADER)
        .is_some_and(|types| types.split(',').any(|t| t == "ParticipantRemoved" || t == "RoomEnded"));
    if !relevant {
        return;
    }
    let Ok(commit) = serde_json::from_slice::<StoredCommit>(&message.payload) else {
        tracing::warn!(subject = %message.subject, "cannot read a room event; sockets not updated");
        return;
    };
    for event in commit.events {
        match event.event_type.as_str() {
            "ParticipantRemoved" => {
                let removed = event.payload.get("userId").and_then(|id| id.as_str()).and_then(|id| Uuid::parse_str(id).ok());
                for connection in connections(local).into_iter().filter(|c| Some(c.identity.user) == removed) {
                    let payload = json!({ "removedBy": event.payload.get("removedBy") });
                    connection.deliver(Outgoing::Text(connection.identity.message("removed", None, payload)));
                    connection.deliver(Outgoing::Close(CLOSE_REMOVED, "removed from the room by the host"));
                }
            }
            "RoomEnded" => {
                for connection in connections(local) {
                    connection.deliver(Outgoing::Text(connection.identity.message("room_ended", None, json!({}))));
                    connection.deliver(Outgoing::Close(CLOSE_ROOM_ENDED, "the room has ended"));
                }
            }
            _ => {}
        }
    }
}
