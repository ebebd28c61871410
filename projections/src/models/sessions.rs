//! `sessions`, from session events (one aggregate per login session).

use rapat_domain::envelope::StoredEvent;
use rapat_domain::session::SessionEvent;
use sqlx::PgConnection;

use super::{ApplyError, aggregate_uuid, check_found, decode, stored_name};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<SessionEvent>(event)? else { return Ok(()) };
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let rows = match decoded {
        SessionEvent::SessionStarted { user_id, refresh_hash, expires_at } => {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, refresh_hash, started_at, expires_at, generation) \
                 VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(id)
            .bind(user_id.as_uuid())
            .bind(refresh_hash.as_str())
            .bind(at)
            .bind(expires_at)
            .execute(tx)
            .await?
        }
        SessionEvent::SessionRefreshed { refresh_hash, expires_at, generation } => sqlx::query(
            "UPDATE sessions SET refresh_hash = $2, expires_at = $3, generation = $4, refreshed_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(refresh_hash.as_str())
        .bind(expires_at)
        .bind(i64::from(generation))
        .bind(at)
        .execute(tx)
        .await?,
        SessionEvent::SessionRevoked { reason } => {
            // The first revocation is the one that counts.
            sqlx::query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2), revoked_reason = COALESCE(revoked_reason, $3) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(stored_name(&reason)?)
            .execute(tx)
            .await?
        }
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}
