//! Where the event store lives on NATS: stream, subjects and snapshot bucket.

use std::time::Duration;

/// Names and limits of one event store. Every test gets its own namespace, so tests
/// share a NATS server without sharing a stream.
#[derive(Clone, Debug)]
pub struct EventStoreConfig {
    /// JetStream stream holding every domain event.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<aggregate type>.<aggregate id>`.
    pub subject_prefix: String,
    /// JetStream key-value bucket holding aggregate snapshots.
    pub snapshot_bucket: String,
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
    /// A store whose stream, subjects and bucket are all derived from `namespace`:
    /// `rapat` gives stream `RAPAT_EVENTS`, subjects `rapat.events.>` and bucket
    /// `RAPAT_SNAPSHOTS`.
    pub fn for_namespace(namespace: &str) -> Self {
        let upper = namespace.to_ascii_uppercase();
        Self {
            stream: format!("{upper}_EVENTS"),
            subject_prefix: format!("{namespace}.events"),
            snapshot_bucket: format!("{upper}_SNAPSHOTS"),
            snapshot_every: 100,
            cache_capacity: 10_000,
            publish_timeout: Duration::from_secs(5),
            max_age: None,
            replicas: 1,
        }
    }

    pub fn subject_for(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{}.{}.{}", self.subject_prefix, aggregate_type, aggregate_id)
    }

    /// Every subject of the stream, for stream creation and for consumers.
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}

impl Default for EventStoreConfig {
    fn default() -> Self {
        Self::for_namespace("rapat")
    }
}
