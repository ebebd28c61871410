//! Users (accounts and profiles).

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use super::QueryError;

/// A user as the read model holds it. Carries the password hash for login; the REST
/// layer never returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRow {
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
}

impl FromRow<'_, PgRow> for UserRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: UserId::from_uuid(row.try_get("id")?),
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            avatar: row.try_get("avatar")?,
            status: row.try_get("status")?,
            role: row.try_get("role")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

pub async fn by_id(pool: &PgPool, id: UserId) -> Result<Option<UserRow>, QueryError> {
    let row = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at FROM users u WHERE u.id = $1",
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
         u.created_at, u.updated_at FROM users u WHERE u.email = $1",
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
         u.created_at, u.updated_at FROM users u WHERE u.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
