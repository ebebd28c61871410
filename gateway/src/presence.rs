//! Presence: who is online, in a meeting or offline, in a JetStream key-value
//! bucket that every gateway shares.
//!
//! One key per user holds a [`Record`]: `lastSeenAt` (the last authenticated
//! request, socket open, socket close or socket refresh) and the user's open
//! WebSockets, by connection id, each with its room and an `expiresAt`. A gateway
//! adds a socket when it opens, refreshes it while it stays open (a few times per
//! `presence_socket_ttl`), and removes it when it closes. A gateway that dies
//! cannot remove its sockets, so a socket counts only until its `expiresAt`, and
//! expired entries are dropped at the user's next write.
//!
//! Why one key per user rather than a key per socket: reading presence is then one
//! get, with no consumer or key listing, and the only writers racing on a key are
//! the user's own sockets and requests. Every write is a compare-and-set on the
//! key's revision, retried on a lost race, so two gateways never overwrite each
//! other's sockets.
//!
//! The same record caps a user's sockets (`admit_socket`): the check and the new
//! socket's entry are one compare-and-set, so two gateways admitting sockets of one
//! user at once cannot both slip under the cap.
//!
//! A user is `in_meeting` while they have a live socket (sockets exist only in
//! rooms), `online` while they were seen within the presence window, and `offline`
//! otherwise. Presence is advisory: a failed write is logged, never surfaced.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::UpdateErrorKind;
use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use lru::LruCache;
use rapat_commands::{StoreError, ensure_kv_bucket};
use rapat_domain::ids::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An authenticated request records "last seen" at most this often per user.
const WRITE_EVERY: Duration = Duration::from_secs(15);
/// Compare-and-set attempts before a presence write is given up (and logged).
const ATTEMPTS: usize = 5;

pub struct Presence {
    bucket: kv::Store,
    /// When this gateway last wrote each user's request activity; only saves writes.
    last_written: Mutex<LruCache<UserId, Instant>>,
}

/// What a user's key holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    last_seen_at: Option<DateTime<Utc>>,
    #[serde(default)]
    sockets: BTreeMap<Uuid, Socket>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Socket {
    room_id: Uuid,
    expires_at: DateTime<Utc>,
    /// When the socket opened; the oldest of a room is the one a newer socket
    /// replaces. Missing in records written before sockets were capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    opened_at: Option<DateTime<Utc>>,
}

/// How many sockets a user may hold; zero is no cap.
#[derive(Clone, Copy, Debug)]
pub struct SocketCaps {
    pub per_user: usize,
    pub per_room: usize,
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySockets {
    pub held: usize,
}

/// What a compare-and-set write came to.
enum Written<T, E> {
    Stored(T),
    /// The edit declined to write.
    Declined(E),
    /// The bucket could not be read or written (logged).
    Failed,
}

impl Record {
    fn parse(bytes: &[u8]) -> Self {
        if let Ok(record) = serde_json::from_slice(bytes) {
            return record;
        }
        // Before sockets were tracked, the value was a bare RFC 3339 time.
        let last_seen_at = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc));
        Self { last_seen_at, sockets: BTreeMap::new() }
    }

    fn live_sockets(&self, now: DateTime<Utc>) -> usize {
        self.sockets.values().filter(|socket| socket.expires_at > now).count()
    }
}

/// A user's presence as the API tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    Offline,
    Online,
    InMeeting,
}

#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    pub state: PresenceState,
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Presence {
    /// Opens the bucket, creating it with `replicas` when missing.
    pub async fn open(jetstream: &jetstream::Context, bucket: &str, replicas: usize) -> Result<Self, StoreError> {
        let day = Some(Duration::from_secs(24 * 3600));
        ensure_kv_bucket(
            jetstream,
            bucket,
            "rapat presence: last sighting and open sockets of each user",
            day,
            replicas,
        )
        .await?;
        let bucket = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|error| StoreError::Unavailable { reason: format!("presence bucket: {error}") })?;
        let capacity = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
        Ok(Self { bucket, last_written: Mutex::new(LruCache::new(capacity)) })
    }

    /// Records that `user` made an authenticated request now.
    pub async fn touch(&self, user: UserId) {
        let now = Instant::now();
        {
            let mut written = self.last_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if written.get(&user).is_some_and(|at| now.duration_since(*at) < WRITE_EVERY) {
                return;
            }
            written.put(user, now);
        }
        self.change(user, |_, _| {}).await;
    }

    /// Records an open socket of `user` in `room`, live for `ttl` unless refreshed.
    /// Also what a refresh calls.
    pub async fn socket_open(&self, user: UserId, connection: Uuid, room: Uuid, ttl: Duration) {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.change(user, |record, now| put_socket(record, connection, room, now, ttl)).await;
    }

    /// Records a new socket of `user` in `room` within `caps`, in one
    /// compare-and-set. When the user already holds `caps.per_room` sockets in the
    /// room, their oldest there make way (returned: the caller closes them), so a
    /// client that reconnects before its old socket timed out is never refused.
    /// When they hold `caps.per_user` sockets in all, the socket is refused. If
    /// presence cannot be written the socket is admitted: presence is advisory,
    /// and the failure is logged.
    pub async fn admit_socket(
        &self,
        user: UserId,
        connection: Uuid,
        room: Uuid,
        ttl: Duration,
        caps: SocketCaps,
    ) -> Result<Vec<Uuid>, TooManySockets> {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let written = self
            .update(user, |record, now| {
                let replaced = oldest_beyond(record, room, caps.per_room);
                for old in &replaced {
                    record.sockets.remove(old);
                }
                let held = record.sockets.len();
                if caps.per_user != 0 && held >= caps.per_user {
                    return Err(TooManySockets { held });
                }
                put_socket(record, connection, room, now, ttl);
                Ok(replaced)
            })
            .await;
        match written {
            Written::Stored(replaced) => Ok(replaced),
            Written::Declined(refusal) => Err(refusal),
            Written::Failed => Ok(Vec::new()),
        }
    }

    pub async fn socket_closed(&self, user: UserId, connection: Uuid) {
        self.change(user, |record, _| {
            record.sockets.remove(&connection);
        })
        .await;
    }

    /// `user`'s presence now; `window` is how long after the last sighting a user
    /// without a socket stays online.
    pub async fn sighting(&self, user: UserId, window: Duration) -> Sighting {
        let now = Utc::now();
        let record = match self.bucket.get(user.to_string()).await {
            Ok(Some(bytes)) => Record::parse(&bytes),
            Ok(None) => Record::default(),
            Err(error) => {
                tracing::warn!(%user, %error, "presence not readable; answering offline");
                Record::default()
            }
        };
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        // A lobby socket (`ws::LOBBY`) is online, not in a meeting.
        let in_room = record.sockets.values().any(|socket| socket.expires_at > now && !socket.room_id.is_nil());
        let state = if in_room {
            PresenceState::InMeeting
        } else if record.live_sockets(now) > 0 || record.last_seen_at.is_some_and(|seen| now - seen <= window) {
            PresenceState::Online
        } else {
            PresenceState::Offline
        };
        Sighting { state, last_seen_at: record.last_seen_at }
    }

    /// Applies `edit` to the user's record (stamping `lastSeenAt` and dropping
    /// expired sockets), by compare-and-set on the key's revision.
    async fn change(&self, user: UserId, edit: impl Fn(&mut Record, DateTime<Utc>)) {
        let _: Written<(), ()> = self
            .update(user, |record, now| {
                edit(record, now);
                Ok(())
            })
            .await;
    }

    /// Like `change`, but `edit` may decline (`Err`), and then nothing is written.
    async fn update<T, E>(
        &self,
        user: UserId,
        edit: impl Fn(&mut Record, DateTime<Utc>) -> Result<T, E>,
    ) -> Written<T, E> {
        let key = user.to_string();
        for _ in 0..ATTEMPTS {
            let (mut record, revision) = match self.bucket.entry(key.as_str()).await {
                Ok(Some(entry)) => (Record::parse(&entry.value), entry.revision),
                // Revision 0 means "the key must not exist yet".
                Ok(None) => (Record::default(), 0),
                Err(error) => {
                    tracing::warn!(%user, %error, "presence not recorded");
                    return Written::Failed;
                }
            };
            let now = Utc::now();
            record.sockets.retain(|_, socket| socket.expires_at > now);
            record.last_seen_at = Some(now);
            let outcome = match edit(&mut record, now) {
                Ok(outcome) => outcome,
                Err(refusal) => return Written::Declined(refusal),
            };
            let Ok(value) = serde_json::to_vec(&record) else { return Written::Failed };
            match self.bucket.update(key.as_str(), value.into(), revision).await {
                Ok(_) => return Written::Stored(outcome),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => {
                    tracing::warn!(%user, %error, "presence not recorded");
                    return Written::Failed;
                }
            }
        }
        tracing::warn!(%user, "presence not recorded: too many concurrent changes");
        Written::Failed
    }
}

/// Adds or refreshes a socket, keeping when it first opened.
fn put_socket(record: &mut Record, connection: Uuid, room: Uuid, now: DateTime<Utc>, ttl: chrono::Duration) {
    let expires_at = now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let opened_at = record.sockets.get(&connection).map_or(Some(now), |socket| socket.opened_at);
    record.sockets.insert(connection, Socket { room_id: room, expires_at, opened_at });
}

/// The oldest sockets in `room` that must go for one more to fit under `cap`
/// (zero: no cap).
fn oldest_beyond(record: &Record, room: Uuid, cap: usize) -> Vec<Uuid> {
    if cap == 0 {
        return Vec::new();
    }
    let mut in_room: Vec<(Option<DateTime<Utc>>, Uuid)> = (record.sockets.iter())
        .filter(|(_, socket)| socket.room_id == room)
        .map(|(id, socket)| (socket.opened_at, *id))
        .collect();
    // `None` (an entry from before `openedAt`) sorts first: the oldest.
    in_room.sort();
    let excess = (in_room.len() + 1).saturating_sub(cap);
    in_room.into_iter().take(excess).map(|(_, id)| id).collect()
}
