//! Aggregate snapshots in a JetStream key-value bucket.
//!
//! A snapshot is a cache of a replay, never a source of truth: it records the
//! subject sequence it covers, loading replays everything after it, and a snapshot
//! that cannot be read (an aggregate type that changed shape) is ignored with a
//! warning and the aggregate replayed from its first event.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::Cached;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotRecord<A> {
    aggregate_type: String,
    version: u64,
    subject_sequence: u64,
    aggregate: A,
}

#[derive(Clone)]
pub struct Snapshots {
    bucket: kv::Store,
    every: u64,
}

impl Snapshots {
    pub fn new(bucket: kv::Store, every: u64) -> Self {
        Self { bucket, every }
    }

    /// Whether a commit that took the aggregate from `old` to `new` versions
    /// crossed a snapshot boundary.
    pub fn is_due(&self, old_version: u64, new_version: u64) -> bool {
        self.every > 0 && old_version / self.every != new_version / self.every
    }

    pub async fn load<A: DeserializeOwned>(&self, aggregate_type: &str, aggregate_id: &str) -> Option<Cached<A>> {
        let key = key(aggregate_type, aggregate_id);
        let bytes = match self.bucket.get(&key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%key, %error, "snapshot read failed; replaying from the first event");
                return None;
            }
        };
        match serde_json::from_slice::<SnapshotRecord<A>>(&bytes) {
            Ok(record) if record.aggregate_type == aggregate_type => Some(Cached {
                aggregate: record.aggregate,
                version: record.version,
                subject_sequence: record.subject_sequence,
            }),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%key, %error, "snapshot unreadable; replaying from the first event");
                None
            }
        }
    }

    pub async fn save<A: Serialize>(&self, aggregate_type: &str, aggregate_id: &str, state: &Cached<A>) {
        let key = key(aggregate_type, aggregate_id);
        let record = SnapshotRecord {
            aggregate_type: aggregate_type.to_string(),
            version: state.version,
            subject_sequence: state.subject_sequence,
            aggregate: &state.aggregate,
        };
        let bytes = match serde_json::to_vec(&record) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => {
                tracing::warn!(%key, %error, "snapshot not written: aggregate does not serialise");
                return;
            }
        };
        // A lost snapshot only costs a longer replay later, so failure is a warning.
        if let Err(error) = self.bucket.put(&key, bytes).await {
            tracing::warn!(%key, %error, "snapshot write failed");
        }
    }
}

fn key(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type}.{aggregate_id}")
}
