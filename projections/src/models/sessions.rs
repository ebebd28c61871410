//! `sessions`, from session events (one aggregate per login session).

use chrono::{DateTime, Utc};
use rapat_domain::envelope::StoredEvent;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, check_found, check_version, payload, unknown};
use crate::sql::to_i64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    user_id: Uuid,
    refresh_hash: String,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refreshed {
    refresh_hash: String,
    expires_at: DateTime<Utc>,
    generation: u64,
}

#[derive(Deserialize)]
struct Revoked {
    reason: String,
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    check_version(event, 1)?;
    let rows = match event.event_type.as_str() {
        "SessionStarted" => {
            let e: Started = payload(event)?;
            sqlx::query(
                "INSERT INTO sessions (id, user_id, refresh_hash, started_at, expires_at, generation) \
                 VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(id)
            .bind(e.user_id)
            .bind(e.refresh_hash)
            .bind(at)
            .bind(e.expires_at)
            .execute(tx)
            .await?
        }
        "SessionRefreshed" => {
            let e: Refreshed = payload(event)?;
            sqlx::query(
                "UPDATE sessions SET refresh_hash = $2, expires_at = $3, generation = $4, refreshed_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(e.refresh_hash)
            .bind(e.expires_at)
            .bind(to_i64(e.generation))
            .bind(at)
            .execute(tx)
            .await?
        }
        "SessionRevoked" => {
            let e: Revoked = payload(event)?;
            // The first revocation is the one that counts.
            sqlx::query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2), revoked_reason = COALESCE(revoked_reason, $3) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(e.reason)
            .execute(tx)
            .await?
        }
        _ => return unknown(event),
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}
