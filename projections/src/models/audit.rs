//! `audit_events`: every event of the stream, envelope and payload, as stored but
//! with secrets redacted (`crate::redaction`): the audit trail is for people to read.

use rapat_domain::envelope::StoredEvent;
use sqlx::PgConnection;

use super::ApplyError;
use crate::redaction::redacted;
use crate::sql::to_i64;

pub(super) async fn apply(tx: &mut PgConnection, stream_sequence: u64, event: &StoredEvent) -> Result<(), ApplyError> {
    // No ON CONFLICT: an event id stored twice means the stream holds the same event
    // in two messages, which deserves a parked message rather than silence.
    sqlx::query(
        "INSERT INTO audit_events (event_id, stream_sequence, aggregate_type, aggregate_id, aggregate_version, \
         event_type, schema_version, actor, correlation_id, command_id, occurred_at, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event.event_id)
    .bind(to_i64(stream_sequence))
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(to_i64(event.aggregate_version))
    .bind(&event.event_type)
    .bind(i32::try_from(event.schema_version).unwrap_or(i32::MAX))
    .bind(&event.actor)
    .bind(&event.correlation_id)
    .bind(&event.command_id)
    .bind(event.timestamp)
    .bind(redacted(&event.payload))
    .execute(tx)
    .await?;
    Ok(())
}

/// Many events in one statement (arrays through UNNEST): what makes replaying the
/// audit trail fast. Same rows, same rule on duplicate event ids, as [`apply`].
pub(super) async fn apply_many(tx: &mut PgConnection, events: &[(u64, &StoredEvent)]) -> Result<(), ApplyError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_events (event_id, stream_sequence, aggregate_type, aggregate_id, aggregate_version, \
         event_type, schema_version, actor, correlation_id, command_id, occurred_at, payload) \
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], \
         $7::int4[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::jsonb[])",
    )
    .bind(events.iter().map(|(_, e)| e.event_id).collect::<Vec<_>>())
    .bind(events.iter().map(|(sequence, _)| to_i64(*sequence)).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.aggregate_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.aggregate_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| to_i64(e.aggregate_version)).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| i32::try_from(e.schema_version).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.actor.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.correlation_id.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.command_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.timestamp).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| redacted(&e.payload)).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}
