//! Users (accounts and profiles).

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

/// A user as the read model holds it. Carries the password hash for login; the REST
/// layer never returns it.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct UserRow {
    #[sqlx(try_from = "Uuid")]
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub avatar: Option<String>,
    /// `active`, `away`, `busy` or `offline`.
    pub status: String,
    /// `member` or `admin`.
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The address was verified with the token emailed at registration.
    pub email_verified: bool,
}

pub async fn by_id(pool: &PgPool, id: UserId) -> Result<Option<UserRow>, QueryError> {
    let row = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at, u.email_verified FROM users u WHERE u.id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// `email` must already be normalised (trimmed, lowercased) by the caller.
pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, QueryError> {
    let row = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at, u.email_verified FROM users u WHERE u.email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// The users among `ids` that exist, in no particular order.
pub async fn by_ids(pool: &PgPool, ids: &[UserId]) -> Result<Vec<UserRow>, QueryError> {
    let ids: Vec<Uuid> = ids.iter().map(UserId::as_uuid).collect();
    let rows = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at, u.email_verified FROM users u WHERE u.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
