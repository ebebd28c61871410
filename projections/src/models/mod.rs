//! The read models: how each projection turns one stored event into rows.
//!
//! Every model decodes events one way, the way the write side replays them:
//! envelope → upcast → the domain's typed event enum ([`decode`]), then matches on
//! its variants. Renaming a field in the domain therefore breaks the build here,
//! not a read model at run time. A payload a newer build wrote with an extra field
//! still applies (the event enums ignore unknown fields), an event type a newer
//! build added is logged and skipped, and an event that does not decode (a payload
//! that does not fit, a schema version newer than this build reads) is poison.

mod accounts;
mod analytics;
mod audit;
mod contacts;
mod email_claims;
mod invitations;
mod mail;
mod notification_state;
mod notifications;
mod push_subscriptions;
mod recordings;
mod rooms;
mod sessions;
mod settings;
mod webhooks;

use rapat_domain::envelope::{StoredCommit, StoredEvent, Upcast, decode_known_event};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projector::Projection;
use crate::sql::is_transient;

pub use notifications::notification_id;
pub use webhooks::{WEBHOOK_DELIVERIES_CHANNEL, webhook_body, webhook_delivery_id};

/// Why a message was not applied.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The message can never be applied as it is: park it and move on.
    Poison(String),
    /// The database is unavailable: retry the whole batch later.
    Transient(sqlx::Error),
}

impl From<sqlx::Error> for ApplyError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) { Self::Transient(error) } else { Self::Poison(format!("database refused: {error}")) }
    }
}

/// Applies one stream message (one command's events) to `projection`'s read model.
/// Returns how many events were applied. The runner applies a batch without
/// savepoints, and redoes it one message at a time, each in a savepoint, only
/// when it meets a poison message.
pub(crate) async fn apply_message(
    tx: &mut PgConnection,
    projection: Projection,
    stream_sequence: u64,
    body: &[u8],
) -> Result<u64, ApplyError> {
    let commit: StoredCommit =
        serde_json::from_slice(body).map_err(|error| ApplyError::Poison(format!("not a stored commit: {error}")))?;
    let mut applied = 0;
    for (event_index, event) in commit.events.iter().enumerate() {
        // The subject filter already selects the aggregate type; an envelope that
        // disagrees with its subject is not this projection's to read.
        if projection.aggregate_type().is_some_and(|expected| expected != event.aggregate_type) {
            tracing::warn!(%projection, stream_sequence, aggregate_type = %event.aggregate_type, "event of another aggregate type on this subject; skipped");
            continue;
        }
        match projection {
            Projection::Accounts => accounts::apply(tx, event).await?,
            Projection::Sessions => sessions::apply(tx, event).await?,
            Projection::Contacts => contacts::apply(tx, event).await?,
            Projection::Rooms => rooms::apply(tx, event).await?,
            Projection::Audit => audit::apply(tx, stream_sequence, event).await?,
            Projection::Analytics => analytics::apply(tx, event).await?,
            Projection::EmailClaims => email_claims::apply(tx, event).await?,
            Projection::Invitations => invitations::apply(tx, event).await?,
            Projection::Settings => settings::apply(tx, event).await?,
            Projection::Notifications => notifications::apply(tx, stream_sequence, event).await?,
            Projection::Webhooks => webhooks::apply(tx, stream_sequence, event_index, event).await?,
            Projection::PushSubscriptions => push_subscriptions::apply(tx, event).await?,
        }
        applied += 1;
    }
    Ok(applied)
}

/// Applies many messages to the audit read model in one statement. Any message that
/// is not a stored commit fails the whole call as poison; the caller then falls
/// back to [`apply_message`] one message at a time to find and park it.
pub(crate) async fn apply_audit_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let commits = stored_commits(messages)?;
    let events = sequenced_events(&commits);
    audit::apply_many(tx, &events).await?;
    Ok(events.len() as u64)
}

/// Every event of `commits` in stream order, each with its commit's stream sequence.
fn sequenced_events(commits: &[(u64, StoredCommit)]) -> Vec<(u64, &StoredEvent)> {
    commits.iter().flat_map(|(sequence, commit)| commit.events.iter().map(move |event| (*sequence, event))).collect()
}

/// The messages' stored commits, with their stream sequences; a message that is
/// not one is poison.
fn stored_commits(messages: &[(u64, &[u8])]) -> Result<Vec<(u64, StoredCommit)>, ApplyError> {
    messages
        .iter()
        .map(|(sequence, body)| {
            serde_json::from_slice(body)
                .map(|commit| (*sequence, commit))
                .map_err(|error| ApplyError::Poison(format!("not a stored commit: {error}")))
        })
        .collect()
}

/// Applies many messages to `projection`'s read model, with as few statements as the
/// model allows: the audit trail in one insert, rooms and analytics folded in memory
/// and written set-based, the notifications' runs of joins with one statement each
/// (`notifications.rs`), any other projection one message after another. Any message that is
/// poison fails the whole call; the caller then falls back to [`apply_message`] one
/// message at a time to find and park it.
pub(crate) async fn apply_batch(
    tx: &mut PgConnection,
    projection: Projection,
    messages: &[(u64, &[u8])],
) -> Result<u64, ApplyError> {
    match projection {
        Projection::Audit => apply_audit_batch(tx, messages).await,
        Projection::Rooms => apply_rooms_batch(tx, messages).await,
        Projection::Analytics => apply_analytics_batch(tx, messages).await,
        Projection::Notifications => apply_notifications_batch(tx, messages).await,
        Projection::Webhooks => apply_webhooks_batch(tx, messages).await,
        _ => {
            let mut events = 0;
            for (sequence, body) in messages {
                events += apply_message(tx, projection, *sequence, body).await?;
            }
            Ok(events)
        }
    }
}

/// Many messages of room events to the rooms read model: the events of the whole
/// batch are folded together (`rooms/fold.rs`), as [`apply_message`] one by one
/// would have applied them.
pub(crate) async fn apply_rooms_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let commits = stored_commits(messages)?;
    let events = events_of(Projection::Rooms, &commits);
    rooms::apply_many(tx, &events).await?;
    Ok(events.len() as u64)
}

/// Many messages of room events to the analytics read model, folded together
/// (`analytics/fold.rs`) as [`apply_message`] one by one would have applied them.
async fn apply_analytics_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let commits = stored_commits(messages)?;
    let events = events_of(Projection::Analytics, &commits);
    analytics::apply_many(tx, &events).await?;
    Ok(events.len() as u64)
}

/// Many messages of every aggregate type the notifications read, in stream order
/// (`notifications::apply_many`).
async fn apply_notifications_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let commits = stored_commits(messages)?;
    let events = sequenced_events(&commits);
    notifications::apply_many(tx, &events).await?;
    Ok(events.len() as u64)
}

/// The events of `commits` in stream order, but those of an aggregate type the
/// projection does not read (an envelope that disagrees with its subject), which
/// are logged and skipped as [`apply_message`] skips them.
fn events_of(projection: Projection, commits: &[(u64, StoredCommit)]) -> Vec<&StoredEvent> {
    let mut events = Vec::new();
    for (sequence, commit) in commits {
        for event in &commit.events {
            if projection.aggregate_type().is_some_and(|expected| expected != event.aggregate_type) {
                tracing::warn!(%projection, stream_sequence = sequence, aggregate_type = %event.aggregate_type, "event of another aggregate type on this subject; skipped");
                continue;
            }
            events.push(event);
        }
    }
    events
}

/// Many messages to the webhooks projection. It reads every event of the stream,
/// and message by message asks for the endpoints each one goes to; with no endpoint
/// enabled (a deployment without webhooks) and no endpoint event in the batch,
/// nothing would be queued, so one query answers for the whole batch.
pub(crate) async fn apply_webhooks_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let commits = stored_commits(messages)?;
    let changes_endpoints =
        commits.iter().any(|(_, commit)| commit.events.iter().any(|event| event.aggregate_type == webhooks::AGGREGATE));
    if !changes_endpoints && !webhooks::any_enabled(tx).await? {
        return Ok(commits.iter().map(|(_, commit)| commit.events.len() as u64).sum());
    }
    let mut events = 0;
    for (sequence, body) in messages {
        events += apply_message(tx, Projection::Webhooks, *sequence, body).await?;
    }
    Ok(events)
}

/// The stored event as the domain's typed event `E`, upcast from an older schema
/// version first. `None` for an event type this build does not know: newer builds
/// may add types, and an older projector should keep going rather than stop, so
/// it is logged and skipped.
fn decode<E: DeserializeOwned + Upcast>(event: &StoredEvent) -> Result<Option<E>, ApplyError> {
    let decoded = decode_known_event::<E>(event)
        .map_err(|error| ApplyError::Poison(format!("{} v{}: {error}", event.event_type, event.schema_version)))?;
    if decoded.is_none() {
        tracing::warn!(
            aggregate_type = %event.aggregate_type,
            event_type = %event.event_type,
            "unknown event type; skipped"
        );
    }
    Ok(decoded)
}

/// The name a unit enum of the domain (a role, a status, a reason) is stored with
/// in events, which is also how the read model stores it.
fn stored_name<T: Serialize>(value: &T) -> Result<String, ApplyError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        other => Err(ApplyError::Poison(format!("expected a name, got {other:?}"))),
    }
}

fn aggregate_uuid(event: &StoredEvent) -> Result<Uuid, ApplyError> {
    Uuid::parse_str(&event.aggregate_id)
        .map_err(|_| ApplyError::Poison(format!("aggregate id {:?} is not a UUID", event.aggregate_id)))
}

/// An update that found no row: the row's creating event was parked or is missing.
/// Not an error of this event, so it is logged rather than parked.
fn check_found(rows_affected: u64, event: &StoredEvent) {
    if rows_affected == 0 {
        tracing::warn!(
            aggregate_type = %event.aggregate_type,
            aggregate_id = %event.aggregate_id,
            event_type = %event.event_type,
            "no read-model row to update"
        );
    }
}
