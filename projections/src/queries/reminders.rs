//! Reminder timers (SPEC §6), kept by the notifications projection: one row per
//! room schedule and recipient, due `reminderMinutes` before the meeting. The
//! reminder scheduler reads them here and fires each through the room aggregate.

use chrono::{DateTime, Utc};
use rapat_domain::ids::{RoomId, UserId};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

/// What the projection `pg_notify`s when it adds, moves or removes a timer.
pub const TIMERS_CHANGED_CHANNEL: &str = "rapat_reminder_timers";

#[derive(Clone, Debug, PartialEq, Eq, Hash, FromRow)]
pub struct DueTimer {
    #[sqlx(try_from = "Uuid")]
    pub room_id: RoomId,
    pub schedule_sequence: i64,
    #[sqlx(try_from = "Uuid")]
    pub recipient_id: UserId,
    /// When the reminder is to go out: `reminderMinutes` before the meeting, or
    /// when that moment was set if it had passed by then (a meeting scheduled
    /// inside its reminder window is reminded at once, and not late).
    pub due_at: DateTime<Utc>,
}

/// The moment a timer fires; `reminder_timers_fire_at` indexes it.
const FIRE_AT: &str = "GREATEST(due_at, armed_at)";

/// Timers due at `now` or before, the oldest first, at most `limit`.
pub async fn due(pool: &PgPool, now: DateTime<Utc>, limit: u32) -> Result<Vec<DueTimer>, QueryError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT room_id, schedule_sequence, recipient_id, {FIRE_AT} AS due_at FROM reminder_timers \
         WHERE {FIRE_AT} <= $1 ORDER BY {FIRE_AT} LIMIT $2"
    )))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The earliest timer due after `now`, if any.
pub async fn next_due_after(pool: &PgPool, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, QueryError> {
    let next = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT min({FIRE_AT}) FROM reminder_timers WHERE {FIRE_AT} > $1"
    )))
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(next)
}
