//! `email_claims`, from email claim events: who holds each address, and whether
//! the registration that claimed it completed (`confirmed`), was undone
//! (`released`) or has not finished yet (`pending`).

use chrono::{DateTime, Utc};
use rapat_domain::envelope::StoredEvent;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, check_found, check_version, payload, unknown};
use crate::sql::to_i64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claimed {
    email: String,
    account_id: Uuid,
    /// Absent in version 1, whose claims predate confirmation and count as confirmed.
    claimed_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settled {
    account_id: Uuid,
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let rows = match event.event_type.as_str() {
        "EmailClaimed" => {
            check_version(event, 2)?;
            let e: Claimed = payload(event)?;
            let state = if e.claimed_at.is_some() { "pending" } else { "confirmed" };
            sqlx::query(
                "INSERT INTO email_claims (claim_id, email, account_id, state, claimed_at, claim_version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (claim_id) DO UPDATE SET email = $2, account_id = $3, state = $4, claimed_at = $5, \
                 claim_version = $6, updated_at = $7",
            )
            .bind(id)
            .bind(e.email)
            .bind(e.account_id)
            .bind(state)
            .bind(e.claimed_at.unwrap_or(at))
            .bind(to_i64(event.aggregate_version))
            .bind(at)
            .execute(tx)
            .await?
        }
        "EmailClaimConfirmed" | "EmailClaimReleased" => {
            check_version(event, 1)?;
            let e: Settled = payload(event)?;
            let state = if event.event_type == "EmailClaimConfirmed" { "confirmed" } else { "released" };
            sqlx::query("UPDATE email_claims SET state = $3, updated_at = $4 WHERE claim_id = $1 AND account_id = $2")
                .bind(id)
                .bind(e.account_id)
                .bind(state)
                .bind(at)
                .execute(tx)
                .await?
        }
        _ => return unknown(event),
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}
