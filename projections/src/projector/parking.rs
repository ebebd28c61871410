//! Messages a projection can never apply. They are recorded and stepped over, so one
//! bad message does not stop a read model for everyone.

use sqlx::PgConnection;

use super::Projection;
use crate::sql::to_i64;

/// Records a message the projection could not apply, in the batch's transaction.
pub(crate) async fn park(
    tx: &mut PgConnection,
    projection: Projection,
    stream_sequence: u64,
    subject: &str,
    error: &str,
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    tracing::error!(
        projection = projection.name(),
        stream_sequence,
        subject,
        error,
        "parking a message the projection cannot apply"
    );
    sqlx::query(
        "INSERT INTO parked_events (projection, stream_sequence, subject, error, payload) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(projection.name())
    .bind(to_i64(stream_sequence))
    .bind(subject)
    .bind(error)
    // Parked messages are read by people, like the audit trail: no secrets.
    .bind(crate::redaction::redacted_message(payload))
    .execute(tx)
    .await?;
    // Counted here, so that the live projector and a rebuild's replay both count:
    // `/readyz` names what is parked, this lets an alert fire when it happens.
    metrics::counter!("rapat_projection_parked_total", "projection" => projection.name()).increment(1);
    Ok(())
}
