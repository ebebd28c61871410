//! User settings, with the defaults filled in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use rapat_domain::settings::{
    Channels, EffectiveSettings, Locale, NotificationKind, ReminderMinutes, Timezone, UserSettings,
};
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};

use super::QueryError;

#[derive(Debug, FromRow)]
struct SettingsRow {
    timezone: Option<String>,
    locale: Option<String>,
    reminder_minutes: Option<i32>,
    notifications: Json<BTreeMap<NotificationKind, Channels>>,
    #[allow(dead_code)]
    updated_at: DateTime<Utc>,
}

/// `user`'s settings: what they set, and the defaults (SPEC §6) for the rest. A
/// stored value that no longer parses (a time zone the tz database dropped) reads
/// as the default.
pub async fn effective(pool: &PgPool, user: UserId) -> Result<EffectiveSettings, QueryError> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "SELECT timezone, locale, reminder_minutes, notifications, updated_at FROM user_settings WHERE user_id = $1",
    )
    .bind(user.as_uuid())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(UserSettings::default().effective()) };
    let set = |kind: &NotificationKind| row.notifications.0.get(kind).copied().unwrap_or(Channels::DEFAULT);
    Ok(EffectiveSettings {
        timezone: row.timezone.as_deref().and_then(|zone| Timezone::parse(zone).ok()).unwrap_or_else(Timezone::utc),
        locale: row.locale.as_deref().and_then(|locale| Locale::parse(locale).ok()).unwrap_or_else(Locale::english),
        reminder_minutes: row
            .reminder_minutes
            .and_then(|minutes| u32::try_from(minutes).ok())
            .and_then(|minutes| ReminderMinutes::parse(minutes).ok())
            .unwrap_or(ReminderMinutes::DEFAULT),
        notifications: NotificationKind::ALL.iter().map(|kind| (*kind, set(kind))).collect(),
    })
}
