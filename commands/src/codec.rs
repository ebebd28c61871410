//! Turning a command's events into one stream message and back.

use chrono::Utc;
use cqrs_es::Aggregate;
use rapat_domain::envelope::{StoredCommit, StoredEvent, Upcast, decode_event, schema_version_of, split_event};
use uuid::Uuid;

use crate::error::StoreError;
use crate::metadata::CommandMetadata;

/// Header listing the event types in a message, so a subscriber (the SFU) can skip
/// messages it does not care about without parsing them.
pub const EVENT_TYPES_HEADER: &str = "Rapat-Event-Types";

/// Builds the stored form of `events`, numbered from `first_version`.
pub fn encode_commit<A: Aggregate>(
    aggregate_id: &str,
    first_version: u64,
    events: &[A::Event],
    metadata: &CommandMetadata,
) -> Result<StoredCommit, StoreError> {
    // A generated history's command says when it happened (see `simulated_at`).
    let timestamp = metadata.simulated_at.unwrap_or_else(Utc::now);
    let mut stored = Vec::with_capacity(events.len());
    for (offset, event) in events.iter().enumerate() {
        let (event_type, payload) = split_event(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        let schema_version = schema_version_of(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        stored.push(StoredEvent {
            event_id: event_id(metadata, offset),
            aggregate_type: A::TYPE.to_string(),
            aggregate_id: aggregate_id.to_string(),
            aggregate_version: first_version + offset as u64,
            event_type,
            schema_version,
            timestamp,
            actor: metadata.actor.clone(),
            correlation_id: metadata.correlation_id.clone(),
            command_id: metadata.command_id.to_string(),
            payload,
        });
    }
    Ok(StoredCommit { events: stored })
}

/// A fresh random id, or for a simulated command one derived from its command id
/// and the event's place in it, so that a generated history is reproducible.
fn event_id(metadata: &CommandMetadata, offset: usize) -> Uuid {
    match metadata.simulated_at {
        Some(_) => Uuid::new_v5(&metadata.command_id, &(offset as u64).to_be_bytes()),
        None => Uuid::new_v4(),
    }
}

/// Reads one stream message back into a commit, refusing anything that is not one.
pub fn decode_commit(subject: &str, sequence: u64, payload: &[u8]) -> Result<StoredCommit, StoreError> {
    serde_json::from_slice(payload).map_err(|error| StoreError::Corrupt {
        subject: subject.to_string(),
        sequence,
        reason: error.to_string(),
    })
}

/// The typed event of a stored one, upcast to the current schema.
pub fn decode_typed<A>(subject: &str, sequence: u64, stored: &StoredEvent) -> Result<A::Event, StoreError>
where
    A: Aggregate,
    A::Event: Upcast,
{
    decode_event::<A::Event>(stored).map_err(|error| StoreError::Corrupt {
        subject: subject.to_string(),
        sequence,
        reason: format!("{} v{}: {error}", stored.event_type, stored.schema_version),
    })
}
