//! `user_settings`, from settings events: what each user set, and only that (the
//! defaults are filled in when read, `queries::settings`).

use rapat_domain::envelope::StoredEvent;
use rapat_domain::settings::SettingsEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::{ApplyError, decode};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<SettingsEvent>(event)? else { return Ok(()) };
    let SettingsEvent::UserSettingsUpdated { user_id, timezone, locale, reminder_minutes, notifications } = decoded;
    // An event carries only what changed: keep the rest, merge the kinds.
    sqlx::query(
        "INSERT INTO user_settings (user_id, timezone, locale, reminder_minutes, notifications, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id) DO UPDATE SET \
         timezone = COALESCE($2, user_settings.timezone), locale = COALESCE($3, user_settings.locale), \
         reminder_minutes = COALESCE($4, user_settings.reminder_minutes), \
         notifications = user_settings.notifications || $5, updated_at = $6",
    )
    .bind(user_id.as_uuid())
    .bind(timezone.map(String::from))
    .bind(locale.map(String::from))
    .bind(reminder_minutes.map(|minutes| i32::try_from(minutes.get()).unwrap_or(i32::MAX)))
    .bind(Json(notifications))
    .bind(event.timestamp)
    .execute(tx)
    .await?;
    Ok(())
}
