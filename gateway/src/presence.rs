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
    pub async fn open(jetstream: &jetstream::Context, bucket: &str) -> Result<Self, StoreError> {
        let day = Some(Duration::from_secs(24 * 3600));
        ensure_kv_bucket(jetstream, bucket, "rapat presence: last sighting and open sockets of each user", day, 1).await?;
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
        self.change(user, |record, now| {
            let expires_at = now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
            record.sockets.insert(connection, Socket { room_id: room, expires_at });
        })
        .await;
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
        let state = if record.live_sockets(now) > 0 {
            PresenceState::InMeeting
        } else if record.last_seen_at.is_some_and(|seen| now - seen <= window) {
            PresenceState::Online
        } else {
            PresenceState::Offline
        };
        Sighting { state, last_seen_at: record.last_seen_at }
    }

    /// Applies `edit` to the user's record (stamping `lastSeenAt` and dropping
    /// expired sockets), by compare-and-set on the key's revision.
    async fn change(&self, user: UserId, edit: impl Fn(&mut Record, DateTime<Utc>)) {
        let key = user.to_string();
        for _ in 0..ATTEMPTS {
            let (mut record, revision) = match self.bucket.entry(key.as_str()).await {
                Ok(Some(entry)) => (Record::parse(&entry.value), entry.revision),
                // Revision 0 means "the key must not exist yet".
                Ok(None) => (Record::default(), 0),
                Err(error) => {
                    tracing::warn!(%user, %error, "presence not recorded");
                    return;
                }
            };
            let now = Utc::now();
            record.sockets.retain(|_, socket| socket.expires_at > now);
            record.last_seen_at = Some(now);
            edit(&mut record, now);
            let Ok(value) = serde_json::to_vec(&record) else { return };
            match self.bucket.update(key.as_str(), value.into(), revision).await {
                Ok(_) => return,
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => {
                    tracing::warn!(%user, %error, "presence not recorded");
                    return;
                }
            }
        }
        tracing::warn!(%user, "presence not recorded: too many concurrent changes");
    }
}
