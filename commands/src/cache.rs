//! In-memory state of hot aggregates, and per-aggregate command serialisation.
//!
//! The cache is only an optimisation: every entry records the subject sequence it
//! was built from, and a commit states that sequence as its expectation. If another
//! process (a second gateway) wrote in between, the server refuses the commit, the
//! entry is evicted and the command retried on fresh state. So a stale entry can
//! cost a retry, never a wrong decision.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

/// An aggregate as of a known point of its subject.
#[derive(Clone, Debug)]
pub struct Cached<A> {
    pub aggregate: A,
    /// Number of events applied (the last event's aggregate version).
    pub version: u64,
    /// Stream sequence of the subject's last message; 0 when it has none.
    pub subject_sequence: u64,
}

pub struct AggregateCache<A> {
    entries: Mutex<LruCache<String, Cached<A>>>,
}

impl<A: Clone> AggregateCache<A> {
    /// A capacity of 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { entries: Mutex::new(LruCache::new(capacity)) }
    }

    pub fn get(&self, aggregate_id: &str) -> Option<Cached<A>> {
        self.lock().get(aggregate_id).cloned()
    }

    /// Removes the entry and hands it over with its key: a command works on it
    /// in place and puts it back after its append, so the aggregate is not
    /// cloned on the way in.
    pub fn take(&self, aggregate_id: &str) -> Option<(String, Cached<A>)> {
        self.lock().pop_entry(aggregate_id)
    }

    pub fn put(&self, aggregate_id: &str, entry: Cached<A>) {
        self.put_owned(aggregate_id.to_string(), entry);
    }

    /// [`Self::put`] with a key the caller already owns (the one [`Self::take`] gave).
    pub fn put_owned(&self, aggregate_id: String, entry: Cached<A>) {
        self.lock().put(aggregate_id, entry);
    }

    pub fn evict(&self, aggregate_id: &str) {
        self.lock().pop(aggregate_id);
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Cached<A>>> {
        // A panic while holding this lock cannot leave an entry half-written (every
        // operation is a single LRU call), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One async lock per aggregate id, so commands on the same aggregate inside one
/// process queue up instead of racing each other into conflicts. Entries are
/// dropped as soon as nobody holds or waits for them.
#[derive(Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct KeyedGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        let lock = {
            let mut locks = self.map();
            Arc::clone(locks.entry(key.to_string()).or_default())
        };
        let guard = lock.lock_owned().await;
        KeyedGuard { owner: self, key: key.to_string(), guard: Some(guard) }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.owner.map();
        // Only the map itself still holds the lock: nobody waits, forget it.
        if locks.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_serialise_one_key_and_are_forgotten_after_use() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("room-1").await;
        let other_key = locks.lock("room-2").await;
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _guard = locks.lock("room-1").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a second holder of room-1 must wait");
        drop(first);
        waiter.await.expect("waiter finishes");
        drop(other_key);
        assert_eq!(locks.len(), 0);
    }

    #[test]
    fn cache_keeps_the_most_recent_entries() {
        let cache = AggregateCache::new(2);
        for id in ["a", "b", "c"] {
            cache.put(id, Cached { aggregate: id.to_string(), version: 1, subject_sequence: 1 });
        }
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("c").map(|c| c.aggregate), Some("c".to_string()));
        cache.evict("c");
        assert!(cache.get("c").is_none());
        let (key, taken) = cache.take("b").expect("b is cached");
        assert_eq!((key.as_str(), taken.aggregate.as_str()), ("b", "b"));
        assert!(cache.get("b").is_none(), "a taken entry is out of the cache until put back");
        cache.put_owned(key, taken);
        assert!(cache.get("b").is_some());
    }
}
