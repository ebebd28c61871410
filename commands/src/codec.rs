//! Turning a command's events into one stream message and back.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use rapat_domain::envelope::{StoredCommit, StoredEvent, Upcast, decode_event, schema_version_of, split_event};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::metadata::CommandMetadata;

/// Header listing the event types in a message, so a subscriber (the SFU) can skip
/// messages it does not care about without parsing them.
pub const EVENT_TYPES_HEADER: &str = "Rapat-Event-Types";

/// A command's events as one stream message: the body (a [`StoredCommit`] in
/// JSON) and the value of [`EVENT_TYPES_HEADER`].
pub struct EncodedCommit {
    pub body: Vec<u8>,
    pub event_types: String,
}

/// One event's envelope borrowed from the command, so encoding copies no string
/// into an owned [`StoredEvent`] first. Same fields, order and serialisers as
/// [`StoredEvent`]: the bytes are the same (the `same_bytes_as_stored_commit` test).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRef<'a> {
    event_id: Uuid,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    aggregate_version: u64,
    event_type: &'a str,
    schema_version: u32,
    timestamp: DateTime<Utc>,
    actor: &'a Option<String>,
    correlation_id: &'a Option<String>,
    command_id: &'a str,
    payload: &'a Value,
}

#[derive(Serialize)]
struct CommitRef<'a> {
    events: &'a [EventRef<'a>],
}

/// Encodes `events`, numbered from `first_version`, as one message body.
pub fn encode_commit<A: Aggregate>(
    aggregate_id: &str,
    first_version: u64,
    events: &[A::Event],
    metadata: &CommandMetadata,
    command_id: &str,
) -> Result<EncodedCommit, StoreError> {
    // A generated history's command says when it happened (see `simulated_at`).
    let timestamp = metadata.simulated_at.unwrap_or_else(Utc::now);
    let mut split = Vec::with_capacity(events.len());
    for event in events {
        let (event_type, payload) = split_event(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        let schema_version = schema_version_of(event).map_err(|e| StoreError::Encode(e.to_string()))?;
        split.push((event_type, schema_version, payload));
    }
    let refs: Vec<EventRef<'_>> = split
        .iter()
        .enumerate()
        .map(|(offset, (event_type, schema_version, payload))| EventRef {
            event_id: event_id(metadata, offset),
            aggregate_type: A::TYPE,
            aggregate_id,
            aggregate_version: first_version + offset as u64,
            event_type,
            schema_version: *schema_version,
            timestamp,
            actor: &metadata.actor,
            correlation_id: &metadata.correlation_id,
            command_id,
            payload,
        })
        .collect();
    // Room for a typical commit, so the buffer is not grown three times on the way.
    let mut body = Vec::with_capacity(512);
    serde_json::to_writer(&mut body, &CommitRef { events: &refs })
        .map_err(|error| StoreError::Encode(error.to_string()))?;
    let event_types = refs.iter().map(|event| event.event_type).collect::<Vec<_>>().join(",");
    Ok(EncodedCommit { body, event_types })
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

#[cfg(test)]
mod tests {
    use rapat_domain::ids::UserId;
    use rapat_domain::room::{Room, RoomEvent};

    use super::*;

    /// What the store wrote before encoding went through borrowed fields: an
    /// owned `StoredCommit` serialised as it is.
    fn owned_encoding(
        aggregate_id: &str,
        first_version: u64,
        events: &[RoomEvent],
        metadata: &CommandMetadata,
    ) -> Vec<u8> {
        let timestamp = metadata.simulated_at.expect("a fixed time");
        let events = events
            .iter()
            .enumerate()
            .map(|(offset, event)| {
                let (event_type, payload) = split_event(event).expect("splits");
                StoredEvent {
                    event_id: event_id(metadata, offset),
                    aggregate_type: <Room as Aggregate>::TYPE.to_string(),
                    aggregate_id: aggregate_id.to_string(),
                    aggregate_version: first_version + offset as u64,
                    event_type,
                    schema_version: schema_version_of(event).expect("a number"),
                    timestamp,
                    actor: metadata.actor.clone(),
                    correlation_id: metadata.correlation_id.clone(),
                    command_id: metadata.command_id.to_string(),
                    payload,
                }
            })
            .collect();
        serde_json::to_vec(&StoredCommit { events }).expect("serialises")
    }

    #[test]
    fn same_bytes_as_stored_commit() {
        let user = UserId::new_random();
        let events = [
            RoomEvent::ParticipantAudioChanged { user_id: user, muted: true },
            RoomEvent::ParticipantVideoChanged { user_id: user, on: false },
        ];
        let at = "2026-03-01T10:15:30.123456789Z".parse().expect("a time");
        for metadata in [
            CommandMetadata::system().simulated_at(at),
            CommandMetadata::by("user \"quoted\"").with_correlation_id("corr-1").simulated_at(at),
        ] {
            let command_id = metadata.command_id.to_string();
            let encoded = encode_commit::<Room>("room-1", 7, &events, &metadata, &command_id).expect("encodes");
            assert_eq!(
                String::from_utf8(encoded.body).expect("utf-8"),
                String::from_utf8(owned_encoding("room-1", 7, &events, &metadata)).expect("utf-8")
            );
            assert_eq!(encoded.event_types, "ParticipantAudioChanged,ParticipantVideoChanged");
        }
    }
}
