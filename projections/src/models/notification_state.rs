//! The state the notifications projection folds to decide recipients: rooms,
//! invitees, settings and reminder timers (its own tables, written in the same
//! transaction as the notifications, so a rebuild gives the same rows).

use chrono::{DateTime, Utc};
use rapat_domain::settings::ReminderMinutes;
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApplyError;
use crate::queries::reminders::TIMERS_CHANGED_CHANNEL;

/// An invitation counts for reminders, `meeting_rescheduled` and
/// `meeting_cancelled` while it is in one of these states.
pub(super) const ACTIVE_STATUSES: &str = "('pending', 'accepted')";

/// A room as the notifications name it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(super) struct RoomState {
    pub(super) room_id: Uuid,
    pub(super) host_id: Uuid,
    pub(super) name: String,
    pub(super) scheduled_at: Option<DateTime<Utc>>,
}

pub(super) async fn room(tx: &mut PgConnection, room: Uuid) -> Result<Option<RoomState>, ApplyError> {
    let row = sqlx::query_as("SELECT room_id, host_id, name, scheduled_at FROM notification_rooms WHERE room_id = $1")
        .bind(room)
        .fetch_optional(tx)
        .await?;
    Ok(row)
}

/// The invitees of `room` with an account, in one of `statuses` (an SQL list).
pub(super) async fn invitees(tx: &mut PgConnection, room: Uuid, statuses: &str) -> Result<Vec<Uuid>, ApplyError> {
    let sql = format!(
        "SELECT DISTINCT invitee_id FROM notification_invitees \
         WHERE room_id = $1 AND invitee_id IS NOT NULL AND status IN {statuses} ORDER BY invitee_id"
    );
    let rows = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(room).fetch_all(tx).await?;
    Ok(rows)
}

/// Is `user` the host of `room` or an invitee whose invitation is active?
pub(super) async fn is_host_or_active_invitee(
    tx: &mut PgConnection,
    room: Uuid,
    user: Uuid,
) -> Result<bool, ApplyError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM notification_rooms WHERE room_id = $1 AND host_id = $2) \
         OR EXISTS (SELECT 1 FROM notification_invitees WHERE room_id = $1 AND invitee_id = $2 \
         AND status IN {ACTIVE_STATUSES})"
    );
    let found = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(room).bind(user).fetch_one(tx).await?;
    Ok(found)
}

/// Brings `reminder_timers` of `room` in line with its schedule, people and their
/// reminder leads: one row per recipient (host and active invitees) of the current
/// schedule, none for an ended or unscheduled room, none for a reminder that
/// already fired. NOTIFYs the reminder loop when a row changed.
/// `at` is the applied event's time: a timer it sets or moves is armed then.
pub(super) async fn arm_reminders(tx: &mut PgConnection, room: Uuid, at: DateTime<Utc>) -> Result<(), ApplyError> {
    let sql = format!(
        "WITH room AS ( \
             SELECT room_id, schedule_sequence, scheduled_at FROM notification_rooms \
             WHERE room_id = $1 AND scheduled_at IS NOT NULL AND NOT ended), \
         people AS ( \
             SELECT host_id AS user_id FROM notification_rooms WHERE room_id = $1 \
             UNION SELECT invitee_id FROM notification_invitees \
             WHERE room_id = $1 AND invitee_id IS NOT NULL AND status IN {ACTIVE_STATUSES}), \
         wanted AS ( \
             SELECT r.room_id, r.schedule_sequence, p.user_id, \
             r.scheduled_at - make_interval(mins => COALESCE(s.reminder_minutes, $2)) AS due_at \
             FROM room r CROSS JOIN people p LEFT JOIN notification_settings s ON s.user_id = p.user_id \
             WHERE NOT EXISTS (SELECT 1 FROM reminders_fired f WHERE f.room_id = r.room_id \
             AND f.schedule_sequence = r.schedule_sequence AND f.recipient_id = p.user_id)), \
         removed AS ( \
             DELETE FROM reminder_timers t WHERE t.room_id = $1 AND NOT EXISTS (SELECT 1 FROM wanted w \
             WHERE w.schedule_sequence = t.schedule_sequence AND w.user_id = t.recipient_id) RETURNING 1), \
         upserted AS ( \
             INSERT INTO reminder_timers (room_id, schedule_sequence, recipient_id, due_at, armed_at) \
             SELECT room_id, schedule_sequence, user_id, due_at, $3 FROM wanted \
             ON CONFLICT (room_id, schedule_sequence, recipient_id) \
             DO UPDATE SET due_at = EXCLUDED.due_at, armed_at = EXCLUDED.armed_at \
             WHERE reminder_timers.due_at IS DISTINCT FROM EXCLUDED.due_at RETURNING 1) \
         SELECT (SELECT count(*) FROM removed) + (SELECT count(*) FROM upserted)"
    );
    let default_minutes = i32::try_from(ReminderMinutes::DEFAULT.get()).unwrap_or(10);
    let changed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(room)
        .bind(default_minutes)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
    if changed > 0 {
        timers_changed(tx).await?;
    }
    Ok(())
}

/// Re-arms every room `user` may be reminded of (their reminder lead changed).
pub(super) async fn arm_reminders_of_user(
    tx: &mut PgConnection,
    user: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ApplyError> {
    let sql = format!(
        "SELECT room_id FROM notification_rooms WHERE host_id = $1 AND NOT ended AND scheduled_at IS NOT NULL \
         UNION SELECT i.room_id FROM notification_invitees i JOIN notification_rooms r ON r.room_id = i.room_id \
         WHERE i.invitee_id = $1 AND i.status IN {ACTIVE_STATUSES} AND NOT r.ended AND r.scheduled_at IS NOT NULL \
         ORDER BY 1"
    );
    let rooms: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user).fetch_all(&mut *tx).await?;
    for room in rooms {
        arm_reminders(tx, room, at).await?;
    }
    Ok(())
}

/// Records that the reminder of (room, schedule, recipient) fired and takes its
/// timer away, so nothing arms it again.
pub(super) async fn reminder_fired(
    tx: &mut PgConnection,
    room: Uuid,
    schedule_sequence: i64,
    recipient: Uuid,
) -> Result<(), ApplyError> {
    sqlx::query(
        "INSERT INTO reminders_fired (room_id, schedule_sequence, recipient_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(room)
    .bind(schedule_sequence)
    .bind(recipient)
    .execute(&mut *tx)
    .await?;
    let removed =
        sqlx::query("DELETE FROM reminder_timers WHERE room_id = $1 AND schedule_sequence = $2 AND recipient_id = $3")
            .bind(room)
            .bind(schedule_sequence)
            .bind(recipient)
            .execute(&mut *tx)
            .await?;
    if removed.rows_affected() > 0 {
        timers_changed(tx).await?;
    }
    Ok(())
}

async fn timers_changed(tx: &mut PgConnection) -> Result<(), ApplyError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(TIMERS_CHANGED_CHANNEL).execute(tx).await?;
    Ok(())
}
