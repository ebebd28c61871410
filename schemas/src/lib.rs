//! JSON Schemas of rapat's stored events (SPEC §2), embedded in the binary, and the
//! functions that check a payload or a whole stored event against them.
//!
//! The files under `events/` are the contract for anyone reading the stream
//! without this code (analytics, exports, other languages). The tests in
//! `tests/events_match_schemas.rs` keep them and the domain's event enums in step.
//!
//! This crate does not depend on `rapat-domain` (only its tests do), so a reader of
//! the stream can validate events without pulling in the aggregates.
//!
//! `ws/` holds the schemas of the WebSocket signaling messages (SPEC §4): see
//! [`validate_ws_message`].

mod ws;

pub use ws::{WS_ENVELOPE_SCHEMA, WS_SCHEMAS, WsDirection, WsSchema, validate_sfu_message, validate_ws_message};

use std::sync::LazyLock;

use jsonschema::{Validator, ValidatorMap};
use serde_json::Value;

/// One embedded event schema.
#[derive(Clone, Copy, Debug)]
pub struct EventSchema {
    /// `Aggregate::TYPE`, also the folder under `events/`.
    pub aggregate_type: &'static str,
    /// The event's variant name, also the file name.
    pub event_type: &'static str,
    pub source: &'static str,
}

macro_rules! event_schemas {
    ($($aggregate:literal => [$($event:literal),* $(,)?]),* $(,)?) => {
        /// Every event schema, in the order of the files' folders.
        pub const EVENT_SCHEMAS: &[EventSchema] = &[$($(EventSchema {
            aggregate_type: $aggregate,
            event_type: $event,
            source: include_str!(concat!("../events/", $aggregate, "/", $event, ".json")),
        },)*)*];
    };
}

event_schemas! {
    "room" => [
        "RoomCreated",
        "RoomSettingsUpdated",
        "ParticipantJoined",
        "ParticipantLeft",
        "ParticipantMutedByHost",
        "ParticipantUnmuteAllowed",
        "ParticipantRemoved",
        "ParticipantAudioChanged",
        "ParticipantVideoChanged",
        "ParticipantScreenShareChanged",
        "RoomEnded",
        "RoomRescheduled",
        "RoomCancelled",
        "MeetingReminderDue",
        "RecordingStarted",
        "RecordingStopped",
        "TrackRecordingFinished",
        "TrackRecordingExpired",
    ],
    "account" => [
        "AccountRegistered",
        "ProfileUpdated",
        "PasswordChanged",
        "StatusChanged",
        "RoleGranted",
        "RegistrationAbandoned",
        "EmailVerificationRequested",
        "EmailVerified",
        "PasswordResetRequested",
        "PasswordReset",
    ],
    "email" => ["EmailClaimed", "EmailClaimConfirmed", "EmailClaimReleased"],
    "contacts" => ["ContactAdded", "ContactRemoved"],
    "session" => ["SessionStarted", "SessionRefreshed", "SessionRevoked"],
    "invitation" => [
        "InvitationIssued",
        "InvitationAccepted",
        "InvitationDeclined",
        "InvitationRevoked",
        "InvitationBoundToAccount",
    ],
    "settings" => ["UserSettingsUpdated"],
    "inbox" => ["NotificationsRead", "AllNotificationsRead"],
    "webhook" => [
        "WebhookRegistered",
        "WebhookUpdated",
        "WebhookSecretRotated",
        "WebhookDeleted",
        "WebhookDeliveryRetried",
    ],
    "push" => ["PushSubscribed", "PushUnsubscribed"],
}

/// The schema of `rapat_domain::envelope::StoredEvent` at its root, and of a
/// `StoredCommit` (one stream message) at `#/$defs/StoredCommit`.
pub const ENVELOPE_SCHEMA: &str = include_str!("../events/envelope.json");

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("there is no schema for {aggregate_type} event {event_type}")]
    UnknownEvent { aggregate_type: String, event_type: String },
    #[error("there is no schema for a {direction} WebSocket message of type {message_type:?}")]
    UnknownMessage { direction: &'static str, message_type: String },
    /// A schema file itself is broken; the tests make sure this never ships.
    #[error("the schema {name} is not a valid JSON Schema: {reason}")]
    BadSchema { name: String, reason: String },
    #[error("{what} does not match its schema: {}", .problems.join("; "))]
    Invalid { what: String, problems: Vec<String> },
}

/// An event schema parsed (kept for [`event_schema`]) and compiled.
type CompiledEvent = Result<(Value, Validator), SchemaError>;

struct Compiled {
    /// In the order of [`EVENT_SCHEMAS`]; a scan of a few dozen entries beats hashing.
    events: Vec<(&'static EventSchema, CompiledEvent)>,
    envelope: Result<ValidatorMap, SchemaError>,
}

/// Compiled once: projections may validate every event they read.
static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    events: EVENT_SCHEMAS
        .iter()
        .map(|schema| {
            let name = format!("{}/{}", schema.aggregate_type, schema.event_type);
            let compiled = parse(&name, schema.source)
                .and_then(|value| Ok((value.clone(), options().build(&value).map_err(|e| bad(&name, e))?)));
            (schema, compiled)
        })
        .collect(),
    envelope: parse("envelope", ENVELOPE_SCHEMA)
        .and_then(|value| options().build_map(&value).map_err(|e| bad("envelope", e))),
});

pub(crate) fn options() -> jsonschema::ValidationOptions<'static> {
    // Formats (uuid, date-time, email) are only annotations in 2020-12 unless asked
    // for, and a malformed id is exactly what these schemas should catch.
    jsonschema::options().with_draft(jsonschema::Draft::Draft202012).should_validate_formats(true)
}

pub(crate) fn parse(name: &str, source: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(source).map_err(|e| bad(name, e))
}

pub(crate) fn bad(name: &str, reason: impl ToString) -> SchemaError {
    SchemaError::BadSchema { name: name.to_owned(), reason: reason.to_string() }
}

pub(crate) fn check(validator: &Validator, what: String, instance: &Value) -> Result<(), SchemaError> {
    let problems: Vec<String> =
        validator.iter_errors(instance).map(|error| format!("at '{}': {error}", error.instance_path())).collect();
    if problems.is_empty() { Ok(()) } else { Err(SchemaError::Invalid { what, problems }) }
}

fn compiled_event(aggregate_type: &str, event_type: &str) -> Result<&'static (Value, Validator), SchemaError> {
    let compiled = (COMPILED.events.iter())
        .find(|(schema, _)| schema.aggregate_type == aggregate_type && schema.event_type == event_type);
    match compiled {
        Some((_, Ok(compiled))) => Ok(compiled),
        Some((_, Err(error))) => Err(error.clone()),
        None => Err(SchemaError::UnknownEvent {
            aggregate_type: aggregate_type.to_owned(),
            event_type: event_type.to_owned(),
        }),
    }
}

/// The parsed schema of one event type's payload.
pub fn event_schema(aggregate_type: &str, event_type: &str) -> Result<&'static Value, SchemaError> {
    compiled_event(aggregate_type, event_type).map(|(schema, _)| schema)
}

/// The payload version the schema describes (`x-schema-version`).
pub fn schema_version(aggregate_type: &str, event_type: &str) -> Result<u64, SchemaError> {
    let schema = event_schema(aggregate_type, event_type)?;
    let version = schema.get("x-schema-version").and_then(Value::as_u64);
    version.ok_or_else(|| bad(&format!("{aggregate_type}/{event_type}"), "x-schema-version is missing"))
}

/// Checks an event's payload (the inside of the externally tagged enum, as
/// `envelope::split_event` returns it) against its type's schema.
pub fn validate_event(aggregate_type: &str, event_type: &str, payload: &Value) -> Result<(), SchemaError> {
    let (_, validator) = compiled_event(aggregate_type, event_type)?;
    check(validator, format!("the payload of {aggregate_type} event {event_type}"), payload)
}

fn envelope_validator(pointer: &str) -> Result<&'static Validator, SchemaError> {
    let map = COMPILED.envelope.as_ref().map_err(Clone::clone)?;
    map.get(pointer).ok_or_else(|| bad("envelope", format!("{pointer} is missing")))
}

/// Checks a stored event: its envelope, then its payload against the schema its
/// `aggregateType` and `eventType` name.
pub fn validate_stored_event(stored: &Value) -> Result<(), SchemaError> {
    check(envelope_validator("#")?, "the stored event".to_owned(), stored)?;
    let field = |name: &str| stored.get(name).and_then(Value::as_str).unwrap_or_default();
    validate_event(field("aggregateType"), field("eventType"), &stored["payload"])
}

/// Checks a stored commit (one stream message) and every event in it.
pub fn validate_commit(commit: &Value) -> Result<(), SchemaError> {
    check(envelope_validator("#/$defs/StoredCommit")?, "the stored commit".to_owned(), commit)?;
    let events = commit.get("events").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    events.iter().try_for_each(validate_stored_event)
}
