//! A short memory of sessions seen active, so that an authenticated request does
//! not cost a read-model query every time.
//!
//! Revocation must still bite at once, on every gateway. So an entry is dropped
//! (1) by the gateway that revokes a session, before it answers; (2) on every
//! gateway, by following the session subjects `<prefix>.session.<id>` on the
//! event stream, where the `Rapat-Event-Types` header names `SessionRevoked`; the
//! follower keeps its position across NATS restarts, so a revocation stored while
//! this gateway was cut off arrives when it is back; (3) after `ttl` in any case,
//! which bounds how long a revoked session is trusted while this gateway is cut off.
//!
//! An entry remembers the session's user too, so a token whose `sub` is not its
//! session's user never passes on the strength of the cache.
//!
//! The same two paths close WebSockets: each socket registers its session here
//! ([`SessionCache::watch`]), and forgetting a session cancels every socket of it
//! on this gateway, which then closes with 4401. Since every gateway follows the
//! revocations, a logout (or a refresh-token reuse) closes the session's sockets
//! everywhere at once.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use rapat_commands::{EVENT_TYPES_HEADER, Follow};
use rapat_domain::ids::UserId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct SessionCache {
    /// Session id → when it was seen active, and its user.
    verified: Mutex<LruCache<Uuid, (Instant, UserId)>>,
    ttl: Duration,
    /// Session id → this gateway's open sockets of it (connection id → what
    /// cancels the socket).
    sockets: Mutex<HashMap<Uuid, HashMap<Uuid, CancellationToken>>>,
}

/// A socket's registration with its session; unregisters on drop.
pub struct SessionWatch {
    cache: Arc<SessionCache>,
    session: Uuid,
    connection: Uuid,
    /// Cancelled when the session is revoked.
    pub revoked: CancellationToken,
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut sockets = lock(&self.cache.sockets);
        if let Some(of_session) = sockets.get_mut(&self.session) {
            of_session.remove(&self.connection);
            if of_session.is_empty() {
                sockets.remove(&self.session);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN);
        Self { verified: Mutex::new(LruCache::new(capacity)), ttl, sockets: Mutex::new(HashMap::new()) }
    }

    /// True when `session` was seen active, as `user`'s, less than `ttl` ago.
    pub fn is_fresh(&self, session: Uuid, user: UserId) -> bool {
        !self.ttl.is_zero()
            && lock(&self.verified).get(&session).is_some_and(|(at, owner)| *owner == user && at.elapsed() < self.ttl)
    }

    pub fn remember(&self, session: Uuid, user: UserId) {
        if !self.ttl.is_zero() {
            lock(&self.verified).put(session, (Instant::now(), user));
        }
    }

    /// Drops `session` from the cache and closes this gateway's sockets of it.
    pub fn forget(&self, session: Uuid) {
        lock(&self.verified).pop(&session);
        let sockets = lock(&self.sockets).remove(&session).unwrap_or_default();
        for revoked in sockets.into_values() {
            revoked.cancel();
        }
    }

    /// Registers an open socket of `session`: its `revoked` token is cancelled
    /// when the session is revoked.
    pub fn watch(self: &Arc<Self>, session: Uuid, connection: Uuid) -> SessionWatch {
        let revoked = CancellationToken::new();
        lock(&self.sockets).entry(session).or_default().insert(connection, revoked.clone());
        SessionWatch { cache: Arc::clone(self), session, connection, revoked }
    }

    /// Drops sessions from the cache, and closes their sockets, as their
    /// `SessionRevoked` events are stored, whichever gateway wrote them, until
    /// `stop`. Follows the event stream from its own position
    /// (`rapat_commands::follow`), so a revocation stored while this gateway was
    /// cut off from NATS still arrives once it is back.
    pub async fn follow_revocations(
        self: Arc<Self>,
        nats: async_nats::Client,
        stream: String,
        session_subjects: String,
        stop: CancellationToken,
    ) {
        let what = Follow { name: "gateway_session_revocations", stream, filter_subject: session_subjects };
        let follow = rapat_commands::follow(nats, what, |message| {
            let revoked = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(EVENT_TYPES_HEADER))
                .is_some_and(|types| types.as_str().split(',').any(|t| t == "SessionRevoked"));
            let session = message.subject.rsplit('.').next().and_then(|id| Uuid::parse_str(id).ok());
            if revoked && let Some(session) = session {
                self.forget(session);
            }
        });
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = follow => {}
        }
    }
}
