//! Room fan-out over core NATS, so no gateway assumes it holds the whole room.
//!
//! A gateway subscribes to `<namespace>.rooms.<roomId>.signal` and to the room's
//! event subject `<namespace>.events.room.<roomId>` (names from `Namespace`)
//! while at least one of its sockets is in the room, and unsubscribes when the last one leaves. Every room message is
//! published to the signal subject, and each gateway hands it to its own sockets:
//! a targeted one only to the target user's, one for a connection only to that
//! socket. Room events (stored on JetStream, seen here by a plain subscription,
//! like `session_cache.rs`) are turned into messages by `events.rs`; since each
//! gateway in the room sees each event once, every socket gets it once.
//!
//! A socket has a bounded outgoing queue; when it is full the socket is dropped
//! rather than making the room wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::HeaderMap;
use axum::extract::ws::Utf8Bytes;
use cqrs_es::Aggregate as _;
use futures::StreamExt;
use rapat_domain::room::Room;
use rapat_wire::Namespace;
use rapat_wire::signal::SfuRequest;
use sqlx::PgPool;
use tokio::sync::{OnceCell, mpsc};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::message::Identity;
use super::{CLOSE_REPLACED, events};
use crate::chat::ChatStore;

/// Names the connection a broadcast must not be echoed to.
const SKIP_HEADER: &str = "Rapat-Ws-Skip";
/// Names the user a targeted message is for.
const TARGET_HEADER: &str = "Rapat-Ws-Target";
/// Names the one connection a message is for: how the SFU answers a socket.
pub use rapat_wire::signal::CONNECTION_HEADER;
/// Marks the message a gateway sends itself to know its subscription is live.
const PROBE_HEADER: &str = "Rapat-Ws-Probe";
/// Names a socket that a newer socket of its user in the room replaces: it closes.
const REPLACED_HEADER: &str = "Rapat-Ws-Replaced";
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
    /// Names the signal, SFU and event subjects of each room.
    namespace: Namespace,
    rooms: Mutex<HashMap<Uuid, Arc<LocalRoom>>>,
    /// Chat history. Kept here, beside the other names derived from the
    /// namespace, because the sockets and the chat route both use it.
    pub chat: ChatStore,
    /// Each user's live notifications, for all their sockets here (`feeds.rs`).
    pub feeds: Arc<super::feeds::UserFeeds>,
}

pub(super) struct LocalRoom {
    pub(super) id: Uuid,
    connections: Mutex<HashMap<Uuid, Arc<Connection>>>,
    /// Display names of users seen in this room, for messages made from events
    /// (which carry only user ids); the users read model fills the gaps.
    names: Mutex<HashMap<Uuid, String>>,
    pub(super) db: PgPool,
    subscribed: OnceCell<()>,
    task: Mutex<Option<AbortHandle>>,
}

impl LocalRoom {
    pub(super) fn connections(&self) -> Vec<Arc<Connection>> {
        lock(&self.connections).values().cloned().collect()
    }

    pub(super) fn known_name(&self, user: Uuid) -> Option<String> {
        lock(&self.names).get(&user).cloned()
    }

    pub(super) fn remember_name(&self, user: Uuid, name: String) {
        lock(&self.names).insert(user, name);
    }
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
    pub fn new(nats: async_nats::Client, namespace: Namespace) -> Self {
        Self {
            chat: ChatStore::new(nats.clone(), namespace.clone()),
            feeds: Arc::new(super::feeds::UserFeeds::new(nats.clone(), namespace.clone())),
            nats,
            namespace,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn signal_subject(&self, room: Uuid) -> String {
        self.namespace.room_signal_subject(room)
    }

    /// Adds a socket to a room, subscribing first if it is the room's first here.
    /// Once this returns, messages published to the room reach the socket.
    /// `names` are display names the caller knows (the room's participants); `db`
    /// answers for the others.
    pub async fn join(
        self: &Arc<Self>,
        room: Uuid,
        connection: Arc<Connection>,
        names: impl IntoIterator<Item = (Uuid, String)>,
        db: &PgPool,
    ) -> Result<Membership, async_nats::Error> {
        let local = {
            let mut rooms = lock(&self.rooms);
            let local = rooms
                .entry(room)
                .or_insert_with(|| {
                    Arc::new(LocalRoom {
                        id: room,
                        connections: Mutex::new(HashMap::new()),
                        names: Mutex::new(HashMap::new()),
                        db: db.clone(),
                        subscribed: OnceCell::new(),
                        task: Mutex::new(None),
                    })
                })
                .clone();
            lock(&local.connections).insert(connection.id, Arc::clone(&connection));
            lock(&local.names).extend(names);
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
        let events = self.nats.subscribe(self.namespace.event_subject(Room::TYPE, local.id)).await?;
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
    pub async fn publish(
        &self,
        room: Uuid,
        skip: Option<Uuid>,
        target: Option<Uuid>,
        text: Utf8Bytes,
    ) -> Result<(), async_nats::Error> {
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

    /// Closes the socket `connection` in `room` (4420), on whichever gateway holds
    /// it: a newer socket of the same user took its place.
    pub async fn replace(&self, room: Uuid, connection: Uuid) -> Result<(), async_nats::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(REPLACED_HEADER, connection.to_string().as_str());
        self.nats.publish_with_headers(self.signal_subject(room), headers, Default::default()).await?;
        Ok(())
    }

    /// Publishes a message for the SFU that serves `room` (core NATS: nobody may
    /// be listening, and the SFU, not this publish, answers the client).
    pub async fn publish_to_sfu(&self, request: &SfuRequest) -> Result<(), async_nats::Error> {
        let body = serde_json::to_vec(request)?;
        self.nats.publish(self.namespace.sfu_inbound_subject(request.room_id), body.into()).await?;
        Ok(())
    }
}

pub(super) fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    message.headers.as_ref()?.get(name).map(|value| value.as_str())
}

fn connections(local: &Weak<LocalRoom>) -> Vec<Arc<Connection>> {
    local.upgrade().map(|local| local.connections()).unwrap_or_default()
}

async fn follow(local: Weak<LocalRoom>, mut signals: async_nats::Subscriber, mut events: async_nats::Subscriber) {
    // One loop for both subjects keeps a room's messages in the order they came.
    loop {
        tokio::select! {
            message = signals.next() => match message {
                Some(message) => deliver_signal(&local, &message),
                None => break,
            },
            message = events.next() => match message {
                Some(message) => {
                    let Some(room) = local.upgrade() else { break };
                    events::deliver(&room, &message).await;
                }
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
    if let Some(replaced) = header(message, REPLACED_HEADER) {
        let replaced = Uuid::parse_str(replaced).ok();
        for connection in connections(local).into_iter().filter(|connection| Some(connection.id) == replaced) {
            connection.deliver(Outgoing::Close(CLOSE_REPLACED, "replaced by a newer socket of yours in this room"));
        }
        return;
    }
    let Ok(text) = Utf8Bytes::try_from(message.payload.clone()) else { return };
    let skip = header(message, SKIP_HEADER).and_then(|id| Uuid::parse_str(id).ok());
    let target = header(message, TARGET_HEADER).and_then(|id| Uuid::parse_str(id).ok());
    let only = header(message, CONNECTION_HEADER).map(|id| Uuid::parse_str(id).ok());
    for connection in connections(local) {
        if Some(connection.id) == skip || target.is_some_and(|target| target != connection.identity.user) {
            continue;
        }
        // A malformed connection id reaches nobody rather than everybody.
        if only.is_some_and(|only| only != Some(connection.id)) {
            continue;
        }
        connection.deliver(Outgoing::Text(text.clone()));
    }
}
