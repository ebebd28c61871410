//! The stored form of events (SPEC §2), shared by every reader of the stream: the
//! write side that replays an aggregate, the projections and the SFU.
//!
//! One JetStream message holds one [`StoredCommit`]: all events one command
//! produced, so they are appended atomically. Each [`StoredEvent`] is complete on
//! its own (envelope + payload), so an audit reader or an export needs nothing else.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event as stored: envelope and payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub event_id: Uuid,
    /// `Aggregate::TYPE`, e.g. `room`.
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1 for an aggregate's first event, gap-free after that.
    pub aggregate_version: u64,
    /// The event's variant name, e.g. `ParticipantJoined`.
    pub event_type: String,
    /// The version of the payload's shape when it was written; see [`Upcast`].
    pub schema_version: u32,
    pub timestamp: DateTime<Utc>,
    /// The user on whose behalf the command ran; `None` for the system itself.
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    /// The command that produced this event (also the message's `Nats-Msg-Id`).
    pub command_id: String,
    pub payload: Value,
}

/// The body of one stream message: every event of one command, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCommit {
    pub events: Vec<StoredEvent>,
}

/// Brings an old payload up to the shape the current code reads. Event enums whose
/// payloads never changed use the default, which returns the payload as it is.
pub trait Upcast {
    /// `schema_version` is the version the payload was written with.
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        let _ = (event_type, schema_version);
        Ok(payload)
    }
}

/// Refuses a payload written by a newer build than this one: reading it as the
/// current shape could silently drop fields the newer build relies on. Event enums
/// call this first in their [`Upcast`] impl.
pub fn refuse_newer(event_type: &str, schema_version: u32, current: u32) -> Result<(), UpcastError> {
    if schema_version > current {
        return Err(UpcastError::FromTheFuture { event_type: event_type.to_owned(), schema_version });
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("event {event_type} has schema version {schema_version}, newer than this build reads")]
    FromTheFuture { event_type: String, schema_version: u32 },
    #[error("event {event_type} v{schema_version} has an unexpected payload: {reason}")]
    Malformed { event_type: String, schema_version: u32, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum EventCodecError {
    #[error("an event must serialise as a struct variant, got {0}")]
    NotAStructVariant(String),
    #[error("event payload does not match its type: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("schema version {0:?} is not a number")]
    BadSchemaVersion(String),
}

/// Splits an event (an externally tagged enum of struct variants) into its type
/// name and payload.
pub fn split_event<E: Serialize>(event: &E) -> Result<(String, Value), EventCodecError> {
    match serde_json::to_value(event)? {
        Value::Object(map) if map.len() == 1 => {
            let (event_type, payload) = map.into_iter().next().expect("a map of length one has an entry");
            Ok((event_type, payload))
        }
        Value::String(unit_variant) => Ok((unit_variant, Value::Object(Default::default()))),
        other => Err(EventCodecError::NotAStructVariant(other.to_string())),
    }
}

/// The schema version an event is written with (its `DomainEvent::event_version`).
pub fn schema_version_of<E: DomainEvent>(event: &E) -> Result<u32, EventCodecError> {
    let version = event.event_version();
    version.parse().map_err(|_| EventCodecError::BadSchemaVersion(version))
}

/// Rebuilds a typed event from a stored one, upcasting an old payload first.
pub fn decode_event<E: DeserializeOwned + Upcast>(stored: &StoredEvent) -> Result<E, EventCodecError> {
    let payload = E::upcast(&stored.event_type, stored.schema_version, stored.payload.clone())?;
    let mut tagged = serde_json::Map::with_capacity(1);
    tagged.insert(stored.event_type.clone(), payload);
    Ok(serde_json::from_value(Value::Object(tagged))?)
}
