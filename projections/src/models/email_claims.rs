//! `email_claims`, from email claim events: who holds each address, and whether
//! the registration that claimed it completed (`confirmed`), was undone
//! (`released`) or has not finished yet (`pending`).

use rapat_domain::account::EmailClaimEvent;
use rapat_domain::envelope::StoredEvent;
use sqlx::PgConnection;

use super::{ApplyError, aggregate_uuid, check_found, decode};
use crate::sql::to_i64;

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<EmailClaimEvent>(event)? else { return Ok(()) };
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let (account_id, state) = match decoded {
        EmailClaimEvent::EmailClaimed { email, account_id, claimed_at } => {
            // A version-1 claim (no `claimedAt`) predates confirmation and counts as confirmed.
            let state = if claimed_at.is_some() { "pending" } else { "confirmed" };
            sqlx::query(
                "INSERT INTO email_claims (claim_id, email, account_id, state, claimed_at, claim_version, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (claim_id) DO UPDATE SET email = $2, account_id = $3, state = $4, claimed_at = $5, \
                 claim_version = $6, updated_at = $7",
            )
            .bind(id)
            .bind(String::from(email))
            .bind(account_id.as_uuid())
            .bind(state)
            .bind(claimed_at.unwrap_or(at))
            .bind(to_i64(event.aggregate_version))
            .bind(at)
            .execute(tx)
            .await?;
            return Ok(());
        }
        EmailClaimEvent::EmailClaimConfirmed { account_id } => (account_id, "confirmed"),
        EmailClaimEvent::EmailClaimReleased { account_id } => (account_id, "released"),
    };
    let rows =
        sqlx::query("UPDATE email_claims SET state = $3, updated_at = $4 WHERE claim_id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id.as_uuid())
            .bind(state)
            .bind(at)
            .execute(tx)
            .await?;
    check_found(rows.rows_affected(), event);
    Ok(())
}
