//! Web push: a user's subscriptions (`push_subscriptions`) and the deployment's
//! kept VAPID key (`push_vapid_key`).

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use sqlx::{FromRow, PgPool};

use super::QueryError;

/// One live subscription, with the keys a message is encrypted for.
#[derive(Clone, FromRow)]
pub struct PushSubscriptionRow {
    pub endpoint: String,
    /// Unpadded base64url, as the browser gave them.
    pub p256dh: String,
    pub auth_secret: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for PushSubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSubscriptionRow")
            .field("endpoint", &self.endpoint)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// `user`'s subscriptions, oldest first.
pub async fn subscriptions_of(pool: &PgPool, user: UserId) -> Result<Vec<PushSubscriptionRow>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT endpoint, p256dh, auth_secret, created_at FROM push_subscriptions \
         WHERE user_id = $1 ORDER BY created_at, endpoint",
    )
    .bind(user.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The deployment's kept VAPID private key: `candidate` if none was kept yet
/// (it is kept now), else the one kept first. Two processes starting together
/// both get the first one stored.
pub async fn kept_vapid_key(pool: &PgPool, candidate: &str) -> Result<String, QueryError> {
    sqlx::query("INSERT INTO push_vapid_key (id, private_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(candidate)
        .execute(pool)
        .await?;
    let kept: String =
        sqlx::query_scalar("SELECT private_key FROM push_vapid_key WHERE id = 1").fetch_one(pool).await?;
    Ok(kept)
}
