//! `audit_events`: every event of the stream, envelope and payload, as stored.

use rapat_domain::envelope::StoredEvent;
use sqlx::PgConnection;

use super::ApplyError;
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
    .bind(&event.payload)
    .execute(tx)
    .await?;
    Ok(())
}
