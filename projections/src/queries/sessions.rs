//! Login sessions.

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// Hash of the session's current refresh token.
    pub refresh_hash: String,
    pub started_at: DateTime<Utc>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// How many times the session was refreshed.
    #[sqlx(try_from = "i64")]
    pub generation: u64,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `logout`, `refresh_reuse` or `password_reset`.
    pub revoked_reason: Option<String>,
}

impl SessionRow {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<SessionRow>, QueryError> {
    let row = sqlx::query_as(
        "SELECT id, user_id, refresh_hash, started_at, refreshed_at, expires_at, generation, revoked_at, revoked_reason \
         FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// The ids of `user`'s sessions neither revoked nor expired at `now`.
pub async fn active_of_user(pool: &PgPool, user: UserId, now: DateTime<Utc>) -> Result<Vec<Uuid>, QueryError> {
    let ids =
        sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2")
            .bind(user.as_uuid())
            .bind(now)
            .fetch_all(pool)
            .await?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn active_means_neither_revoked_nor_expired() {
        let at = |s| Utc.timestamp_opt(s, 0).single().unwrap_or_default();
        let session = SessionRow {
            id: Uuid::nil(),
            user_id: UserId::from_uuid(Uuid::nil()),
            refresh_hash: String::new(),
            started_at: at(0),
            refreshed_at: None,
            expires_at: at(100),
            generation: 0,
            revoked_at: None,
            revoked_reason: None,
        };
        assert!(session.is_active(at(99)));
        assert!(!session.is_active(at(100)));
        let revoked = SessionRow { revoked_at: Some(at(50)), revoked_reason: Some("logout".into()), ..session };
        assert!(!revoked.is_active(at(60)));
    }
}
