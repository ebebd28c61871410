//! A short memory of sessions seen active, so that an authenticated request does
//! not cost a read-model query every time.
//!
//! Revocation must still bite at once, on every gateway. So an entry is dropped
//! (1) by the gateway that revokes a session, before it answers; (2) on every
//! gateway, by a core NATS subscription to the session subjects: JetStream stores
//! each session event on `<prefix>.session.<id>` and NATS delivers it to plain
//! subscribers too, with the `Rapat-Event-Types` header naming `SessionRevoked`;
//! (3) after `ttl` in any case, which bounds how long a revocation missed during a
//! NATS disconnection can go unseen.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lru::LruCache;
use rapat_commands::EVENT_TYPES_HEADER;
use uuid::Uuid;

pub struct SessionCache {
    verified: Mutex<LruCache<Uuid, Instant>>,
    ttl: Duration,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
        Self { verified: Mutex::new(LruCache::new(capacity)), ttl }
    }

    /// True when `session` was seen active less than `ttl` ago.
    pub fn is_fresh(&self, session: Uuid) -> bool {
        !self.ttl.is_zero() && self.lock().get(&session).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn remember(&self, session: Uuid) {
        if !self.ttl.is_zero() {
            self.lock().put(session, Instant::now());
        }
    }

    pub fn forget(&self, session: Uuid) {
        self.lock().pop(&session);
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<Uuid, Instant>> {
        self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops sessions from the cache as their `SessionRevoked` events are stored,
    /// whichever gateway wrote them. Runs until the subscription ends.
    pub async fn follow_revocations(self: Arc<Self>, nats: async_nats::Client, session_subjects: String) {
        let mut messages = match nats.subscribe(session_subjects.clone()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, subject = %session_subjects, "cannot follow session revocations; relying on the cache TTL");
                return;
            }
        };
        while let Some(message) = messages.next().await {
            let revoked = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(EVENT_TYPES_HEADER))
                .is_some_and(|types| types.as_str().split(',').any(|t| t == "SessionRevoked"));
            let session = message.subject.rsplit('.').next().and_then(|id| Uuid::parse_str(id).ok());
            if revoked && let Some(session) = session {
                self.forget(session);
            }
        }
    }
}
