//! Presence from activity: each authenticated request records "last seen" in a
//! JetStream key-value bucket (shared by every gateway), at most once per
//! `WRITE_EVERY` per user. Until the WebSocket work lands, a user seen within the
//! presence window is online, and in a meeting if also currently in a room.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use lru::LruCache;
use rapat_commands::{StoreError, ensure_kv_bucket};
use rapat_domain::ids::UserId;

const WRITE_EVERY: Duration = Duration::from_secs(15);

pub struct Presence {
    bucket: kv::Store,
    /// When this gateway last wrote each user's presence; only saves writes.
    last_written: Mutex<LruCache<UserId, Instant>>,
}

impl Presence {
    pub async fn open(jetstream: &jetstream::Context, bucket: &str) -> Result<Self, StoreError> {
        let day = Some(Duration::from_secs(24 * 3600));
        ensure_kv_bucket(jetstream, bucket, "rapat presence: last time each user was seen", day, 1).await?;
        let bucket = jetstream
            .get_key_value(bucket)
            .await
            .map_err(|error| StoreError::Unavailable { reason: format!("presence bucket: {error}") })?;
        let capacity = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
        Ok(Self { bucket, last_written: Mutex::new(LruCache::new(capacity)) })
    }

    /// Records that `user` was active now. Failures are logged, never surfaced:
    /// presence is advisory.
    pub async fn touch(&self, user: UserId) {
        let now = Instant::now();
        {
            let mut written = self.last_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if written.get(&user).is_some_and(|at| now.duration_since(*at) < WRITE_EVERY) {
                return;
            }
            written.put(user, now);
        }
        let value = Utc::now().to_rfc3339();
        if let Err(error) = self.bucket.put(user.to_string(), value.into()).await {
            tracing::warn!(%user, %error, "presence not recorded");
        }
    }

    pub async fn last_seen(&self, user: UserId) -> Option<DateTime<Utc>> {
        let bytes = self.bucket.get(user.to_string()).await.ok().flatten()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc))
    }
}
