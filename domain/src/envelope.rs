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
///
/// An event type `E` has no variant for fails, like any payload that does not fit;
/// a reader that must step over types a newer build added uses [`decode_known_event`].
pub fn decode_event<E: DeserializeOwned + Upcast>(stored: &StoredEvent) -> Result<E, EventCodecError> {
    let payload = E::upcast(&stored.event_type, stored.schema_version, stored.payload.clone())?;
    let mut tagged = serde_json::Map::with_capacity(1);
    tagged.insert(stored.event_type.clone(), payload);
    Ok(serde_json::from_value(Value::Object(tagged))?)
}

/// Like [`decode_event`], but `Ok(None)` for an event type `E` has no variant for: a
/// type a newer build added, which a reader (a projection, the SFU) logs and steps
/// over rather than treating as a broken event. A known type that does not decode
/// (bad payload, newer schema version) is still an error.
pub fn decode_known_event<E: DeserializeOwned + Upcast>(stored: &StoredEvent) -> Result<Option<E>, EventCodecError> {
    // Known types, nearly every event, decode without listing the variants first.
    match decode_event(stored) {
        Ok(event) => Ok(Some(event)),
        Err(_) if !event_types::<E>().contains(&stored.event_type.as_str()) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The event types an event enum knows: its variant names as serde reads them, so
/// the list can never drift from the enum. Serde passes them to the deserializer
/// when it reads an enum; [`VariantNames`] is a deserializer that only keeps them.
pub fn event_types<E: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = VariantNames(&[]);
    // The probe always answers with an error: it reads nothing, only the names.
    let _ = E::deserialize(&mut probe);
    probe.0
}

struct VariantNames(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut VariantNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = variants;
        Err(serde::de::Error::custom("only the variant names were read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all_fields = "camelCase")]
    enum TestEvent {
        Opened { user_id: u32 },
        Closed {},
    }

    impl Upcast for TestEvent {
        fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
            refuse_newer(event_type, schema_version, 1)?;
            Ok(payload)
        }
    }

    fn stored(event_type: &str, schema_version: u32, payload: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::nil(),
            aggregate_type: "test".to_owned(),
            aggregate_id: "t1".to_owned(),
            aggregate_version: 1,
            event_type: event_type.to_owned(),
            schema_version,
            timestamp: DateTime::<Utc>::UNIX_EPOCH,
            actor: None,
            correlation_id: None,
            command_id: "c1".to_owned(),
            payload,
        }
    }

    #[test]
    fn an_enum_knows_exactly_its_variants() {
        assert_eq!(event_types::<TestEvent>(), ["Opened", "Closed"]);
    }

    #[test]
    fn known_types_decode_unknown_types_are_none_and_broken_ones_fail() {
        let decode =
            |event_type, version, payload| decode_known_event::<TestEvent>(&stored(event_type, version, payload));
        assert_eq!(decode("Opened", 1, json!({"userId": 7})).ok(), Some(Some(TestEvent::Opened { user_id: 7 })));
        assert_eq!(decode("Closed", 1, json!({})).ok(), Some(Some(TestEvent::Closed {})));
        assert_eq!(decode("Renamed", 3, json!({"name": "x"})).ok(), Some(None), "a newer build's type is skipped");
        assert!(matches!(decode("Opened", 1, json!({"userId": "x"})), Err(EventCodecError::Json(_))));
        assert!(matches!(decode("Opened", 2, json!({"userId": 7})), Err(EventCodecError::Upcast(_))));
    }
}
