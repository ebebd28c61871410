//! Email claims (the `email_claims` read model), for the registration manager.

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use super::QueryError;
use crate::sql::to_u64;

/// How a claim's registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimState {
    /// Claimed; the account's registration has not been seen to finish.
    Pending,
    /// The account was registered.
    Confirmed,
    /// The registration was abandoned and the address freed.
    Released,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRow {
    pub claim_id: Uuid,
    pub email: String,
    pub account_id: UserId,
    pub state: ClaimState,
    pub claimed_at: DateTime<Utc>,
    /// The claim aggregate's version at this claim: one claim of the address.
    pub claim_version: u64,
}

impl FromRow<'_, PgRow> for ClaimRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let state: String = row.try_get("state")?;
        let state = match state.as_str() {
            "pending" => ClaimState::Pending,
            "confirmed" => ClaimState::Confirmed,
            "released" => ClaimState::Released,
            other => return Err(sqlx::Error::Decode(format!("unknown claim state {other:?}").into())),
        };
        Ok(Self {
            claim_id: row.try_get("claim_id")?,
            email: row.try_get("email")?,
            account_id: UserId::from_uuid(row.try_get("account_id")?),
            state,
            claimed_at: row.try_get("claimed_at")?,
            claim_version: to_u64(row.try_get("claim_version")?),
        })
    }
}

/// The claim of one address (`Email::claim_id`).
pub async fn by_id(pool: &PgPool, claim_id: Uuid) -> Result<Option<ClaimRow>, QueryError> {
    let row = sqlx::query_as(
        "SELECT claim_id, email, account_id, state, claimed_at, claim_version FROM email_claims WHERE claim_id = $1",
    )
    .bind(claim_id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// Claims still pending that were made before `claimed_before`, oldest first, at
/// most `limit` of them.
pub async fn pending_before(
    pool: &PgPool,
    claimed_before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ClaimRow>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT claim_id, email, account_id, state, claimed_at, claim_version FROM email_claims \
         WHERE state = 'pending' AND claimed_at < $1 ORDER BY claimed_at LIMIT $2",
    )
    .bind(claimed_before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
