//! `push_subscriptions`, from the `push` aggregate's events: each user's live web
//! push subscriptions, which the push channel sends to.

use rapat_domain::envelope::StoredEvent;
use rapat_domain::push::PushEvent;
use sqlx::PgConnection;

use super::{ApplyError, decode};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<PushEvent>(event)? else { return Ok(()) };
    match decoded {
        PushEvent::PushSubscribed { user_id, endpoint, p256dh, auth_secret } => {
            sqlx::query(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth_secret, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (user_id, endpoint) DO UPDATE SET \
                 p256dh = EXCLUDED.p256dh, auth_secret = EXCLUDED.auth_secret, updated_at = EXCLUDED.updated_at",
            )
            .bind(user_id.as_uuid())
            .bind(endpoint.as_str())
            .bind(p256dh.as_str())
            .bind(auth_secret.expose())
            .bind(event.timestamp)
            .execute(tx)
            .await?;
        }
        PushEvent::PushUnsubscribed { user_id, endpoint, .. } => {
            sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                .bind(user_id.as_uuid())
                .bind(endpoint.as_str())
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}
