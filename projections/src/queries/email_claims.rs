//! Email claims (the `email_claims` read model), for the registration manager.

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

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

impl TryFrom<String> for ClaimState {
    type Error = String;

    fn try_from(state: String) -> Result<Self, Self::Error> {
        match state.as_str() {
            "pending" => Ok(Self::Pending),
            "confirmed" => Ok(Self::Confirmed),
            "released" => Ok(Self::Released),
            other => Err(format!("unknown claim state {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct ClaimRow {
    pub claim_id: Uuid,
    pub email: String,
    #[sqlx(try_from = "Uuid")]
    pub account_id: UserId,
    #[sqlx(try_from = "String")]
    pub state: ClaimState,
    pub claimed_at: DateTime<Utc>,
    /// The claim aggregate's version at this claim: one claim of the address.
    #[sqlx(try_from = "i64")]
    pub claim_version: u64,
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
