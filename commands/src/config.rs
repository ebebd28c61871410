//! Where the event store lives on NATS (its namespace) and how it uses it.

use std::time::Duration;

use rapat_wire::Namespace;

/// The namespace and limits of one event store. The stream, its subjects and the
/// snapshot bucket are the namespace's names (`rapat_wire::Namespace`); every test
/// gets its own namespace, so tests share a NATS server without sharing a stream.
#[derive(Clone, Debug)]
pub struct EventStoreConfig {
    pub namespace: Namespace,
    /// A snapshot is written each time an aggregate's version crosses a multiple of
    /// this. 0 turns snapshots off.
    pub snapshot_every: u64,
    /// How many aggregates are kept in memory with their last subject sequence.
    pub cache_capacity: usize,
    /// How long a publish waits for the server's acknowledgement.
    pub publish_timeout: Duration,
    /// Oldest event the stream keeps. `None` (production) keeps events forever.
    pub max_age: Option<Duration>,
    pub replicas: usize,
}

impl EventStoreConfig {
    /// The store of `namespace`, with the production limits: `rapat` gives stream
    /// `RAPAT_EVENTS`, subjects `rapat.events.>` and bucket `RAPAT_SNAPSHOTS`.
    pub fn for_namespace(namespace: Namespace) -> Self {
        Self {
            namespace,
            snapshot_every: 100,
            cache_capacity: 10_000,
            publish_timeout: Duration::from_secs(5),
            max_age: None,
            replicas: 1,
        }
    }
}
