//! The read models: how each projection turns one stored event into rows.
//!
//! Every model reads the stored form (`StoredEvent`: envelope + JSON payload) and
//! decodes payloads into small private structs of its own, so a read model depends
//! on the stored contract (`schemas/events/`) and not on the domain's types: a
//! payload a newer build wrote with an extra field still applies.

mod accounts;
mod analytics;
mod audit;
mod contacts;
mod email_claims;
mod rooms;
mod sessions;

use rapat_domain::envelope::{StoredCommit, StoredEvent};
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projector::Projection;
use crate::sql::is_transient;

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
/// Returns how many events were applied. The caller wraps this in a savepoint.
pub(crate) async fn apply_message(
    tx: &mut PgConnection,
    projection: Projection,
    stream_sequence: u64,
    body: &[u8],
) -> Result<u64, ApplyError> {
    let commit: StoredCommit =
        serde_json::from_slice(body).map_err(|error| ApplyError::Poison(format!("not a stored commit: {error}")))?;
    let mut applied = 0;
    for event in &commit.events {
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
        }
        applied += 1;
    }
    Ok(applied)
}

/// Applies many messages to the audit read model in one statement. Any message that
/// is not a stored commit fails the whole call as poison; the caller then falls
/// back to [`apply_message`] one message at a time to find and park it.
pub(crate) async fn apply_audit_batch(tx: &mut PgConnection, messages: &[(u64, &[u8])]) -> Result<u64, ApplyError> {
    let mut commits = Vec::with_capacity(messages.len());
    for (sequence, body) in messages {
        let commit: StoredCommit = serde_json::from_slice(body)
            .map_err(|error| ApplyError::Poison(format!("not a stored commit: {error}")))?;
        commits.push((*sequence, commit));
    }
    let events: Vec<(u64, &StoredEvent)> =
        commits.iter().flat_map(|(sequence, commit)| commit.events.iter().map(move |event| (*sequence, event))).collect();
    audit::apply_many(tx, &events).await?;
    Ok(events.len() as u64)
}

/// The payload as `T`, or a poison error naming the event.
fn payload<T: DeserializeOwned>(event: &StoredEvent) -> Result<T, ApplyError> {
    serde_json::from_value(event.payload.clone()).map_err(|error| {
        ApplyError::Poison(format!("{} v{} payload: {error}", event.event_type, event.schema_version))
    })
}

/// Refuses a payload written by a newer build than this one: reading it in an older
/// shape could silently drop what the newer shape means.
fn check_version(event: &StoredEvent, newest_known: u32) -> Result<(), ApplyError> {
    if event.schema_version > newest_known {
        return Err(ApplyError::Poison(format!(
            "{} has schema version {}, newer than this build reads ({newest_known})",
            event.event_type, event.schema_version
        )));
    }
    Ok(())
}

fn aggregate_uuid(event: &StoredEvent) -> Result<Uuid, ApplyError> {
    Uuid::parse_str(&event.aggregate_id)
        .map_err(|_| ApplyError::Poison(format!("aggregate id {:?} is not a UUID", event.aggregate_id)))
}

/// An event type this build does not know: newer builds may add types, and an older
/// projector should keep going rather than stop, so it is logged and skipped.
fn unknown(event: &StoredEvent) -> Result<(), ApplyError> {
    tracing::warn!(
        aggregate_type = %event.aggregate_type,
        event_type = %event.event_type,
        "unknown event type; skipped"
    );
    Ok(())
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
