//! `rooms` and `participants`, from room events (and through `recordings.rs`
//! the room's recording flag and `track_recordings`). A participant row is one stay:
//! joining opens it, leaving, removal or the room's end closes it.

use chrono::{DateTime, Utc};
use rapat_domain::envelope::StoredEvent;
use rapat_domain::room::RoomEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, check_found, decode, recordings};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<RoomEvent>(event)? else { return Ok(()) };
    let room = aggregate_uuid(event)?;
    let at = event.timestamp;
    let rows = match decoded {
        RoomEvent::RoomCreated {
            host_id,
            name,
            description,
            password_hash,
            max_users,
            scheduled_at,
            duration_minutes,
        } => {
            sqlx::query(
                "INSERT INTO rooms (id, host_id, name, description, has_password, max_users, scheduled_at, status, \
                 participant_count, created_at, updated_at, duration_minutes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', 0, $8, $8, $9)",
            )
            .bind(room)
            .bind(host_id.as_uuid())
            .bind(String::from(name))
            .bind(String::from(description))
            .bind(password_hash.is_some())
            .bind(max_users_column(max_users.get())?)
            .bind(scheduled_at)
            .bind(at)
            .bind(duration_minutes.map(|minutes| i32::from(minutes.get())))
            .execute(tx)
            .await?
        }
        RoomEvent::RoomRescheduled { scheduled_at, duration_minutes, schedule_sequence, .. } => {
            sqlx::query(
                "UPDATE rooms SET scheduled_at = $2, duration_minutes = $3, schedule_sequence = $4, updated_at = $5 \
                 WHERE id = $1",
            )
            .bind(room)
            .bind(scheduled_at)
            .bind(duration_minutes.map(|minutes| i32::from(minutes.get())))
            .bind(i64::from(schedule_sequence))
            .bind(at)
            .execute(tx)
            .await?
        }
        // `RoomEnded` follows in the same commit and ends the room.
        RoomEvent::RoomCancelled { .. } => {
            sqlx::query("UPDATE rooms SET cancelled_at = $2, updated_at = $2 WHERE id = $1")
                .bind(room)
                .bind(at)
                .execute(tx)
                .await?
        }
        // A notification's business (SPEC §6), not the room's row.
        RoomEvent::MeetingReminderDue { .. } => return Ok(()),
        RoomEvent::RecordingStarted { .. } => recordings::set_recording(tx, room, true, at).await?,
        RoomEvent::RecordingStopped { .. } => recordings::set_recording(tx, room, false, at).await?,
        RoomEvent::TrackRecordingFinished { recording } => return recordings::finished(tx, room, &recording, at).await,
        RoomEvent::TrackRecordingExpired { track_recording_id } => {
            recordings::expired(tx, room, track_recording_id, at).await?
        }
        RoomEvent::RoomSettingsUpdated { name, description, password_hash, password_cleared, max_users } => {
            // A new password arrives as a hash; `passwordCleared` removes it.
            let has_password = match (password_hash.is_some(), password_cleared) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            sqlx::query(
                "UPDATE rooms SET name = COALESCE($2, name), description = COALESCE($3, description), \
                 has_password = COALESCE($4, has_password), max_users = COALESCE($5, max_users), updated_at = $6 \
                 WHERE id = $1",
            )
            .bind(room)
            .bind(name.map(String::from))
            .bind(description.map(String::from))
            .bind(has_password)
            .bind(max_users.map(|max| max_users_column(max.get())).transpose()?)
            .bind(at)
            .execute(tx)
            .await?
        }
        RoomEvent::ParticipantJoined { user_id } => {
            // The aggregate never lets someone join twice; DO NOTHING keeps the
            // open stay (and the count) right if a hand-made stream ever does.
            let opened = sqlx::query(
                "INSERT INTO participants (room_id, user_id, joined_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (room_id, user_id) WHERE left_at IS NULL DO NOTHING",
            )
            .bind(room)
            .bind(user_id.as_uuid())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE rooms SET started_at = $2 WHERE id = $1 AND started_at IS NULL")
                .bind(room)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            adjust_count(tx, room, opened.rows_affected(), 1, at).await?
        }
        RoomEvent::ParticipantLeft { user_id } => close_stay(tx, room, user_id.as_uuid(), "left", at).await?,
        RoomEvent::ParticipantRemoved { user_id, .. } => close_stay(tx, room, user_id.as_uuid(), "removed", at).await?,
        RoomEvent::ParticipantMutedByHost { user_id, .. } => {
            sqlx::query(
                "UPDATE participants SET audio_muted = TRUE, muted_by_host = TRUE \
                 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(user_id.as_uuid())
            .execute(tx)
            .await?
        }
        RoomEvent::ParticipantUnmuteAllowed { user_id, .. } => {
            // The microphone stays as it is: they unmute themselves.
            sqlx::query(
                "UPDATE participants SET muted_by_host = FALSE WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(user_id.as_uuid())
            .execute(tx)
            .await?
        }
        RoomEvent::ParticipantAudioChanged { user_id, muted } => {
            // Unmuting ends the host's mute (the room refuses it while the host's
            // mute holds, but histories from before it held have it); muting
            // themselves keeps whatever the host did.
            sqlx::query(
                "UPDATE participants SET audio_muted = $3, muted_by_host = muted_by_host AND $3 \
                 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(user_id.as_uuid())
            .bind(muted)
            .execute(tx)
            .await?
        }
        RoomEvent::ParticipantVideoChanged { user_id, on } => {
            sqlx::query("UPDATE participants SET video_on = $3 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL")
                .bind(room)
                .bind(user_id.as_uuid())
                .bind(on)
                .execute(tx)
                .await?
        }
        RoomEvent::ParticipantScreenShareChanged { user_id, sharing } => {
            sqlx::query(
                "UPDATE participants SET screen_sharing = $3 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(user_id.as_uuid())
            .bind(sharing)
            .execute(tx)
            .await?
        }
        RoomEvent::RoomEnded {} => {
            // Ending disconnects everyone still in the room.
            sqlx::query(
                "UPDATE participants SET left_at = $2, left_reason = 'room_ended' WHERE room_id = $1 AND left_at IS NULL",
            )
            .bind(room)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE rooms SET status = 'ended', ended_at = $2, participant_count = 0, updated_at = $2 WHERE id = $1",
            )
            .bind(room)
            .bind(at)
            .execute(tx)
            .await?
        }
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}

async fn close_stay(
    tx: &mut PgConnection,
    room: Uuid,
    user: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<sqlx::postgres::PgQueryResult, ApplyError> {
    let closed = sqlx::query(
        "UPDATE participants SET left_at = $3, left_reason = $4 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
    )
    .bind(room)
    .bind(user)
    .bind(at)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    adjust_count(tx, room, closed.rows_affected(), -1, at).await
}

/// Moves the room's participant count by `step` when a stay was really opened or
/// closed (`changed` rows), so the count always equals the open stays.
async fn adjust_count(
    tx: &mut PgConnection,
    room: Uuid,
    changed: u64,
    step: i32,
    at: DateTime<Utc>,
) -> Result<sqlx::postgres::PgQueryResult, ApplyError> {
    if changed == 0 {
        return Ok(Default::default());
    }
    let updated =
        sqlx::query("UPDATE rooms SET participant_count = participant_count + $2, updated_at = $3 WHERE id = $1")
            .bind(room)
            .bind(step)
            .bind(at)
            .execute(tx)
            .await?;
    Ok(updated)
}

/// `max_users` is an `INTEGER` column; the domain's limit is far below `i32::MAX`.
fn max_users_column(max_users: u32) -> Result<i32, ApplyError> {
    i32::try_from(max_users).map_err(|_| ApplyError::Poison(format!("maxUsers {max_users} does not fit the column")))
}
