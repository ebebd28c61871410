//! `rooms` and `participants`, from room events. A participant row is one stay:
//! joining opens it, leaving, removal or the room's end closes it.

use chrono::{DateTime, Utc};
use rapat_domain::envelope::StoredEvent;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, check_found, check_version, payload, unknown};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    host_id: Uuid,
    name: String,
    #[serde(default)]
    description: String,
    password_hash: Option<String>,
    max_users: i32,
    scheduled_at: Option<DateTime<Utc>>,
}

/// Only what changed is present.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsUpdated {
    name: Option<String>,
    description: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    password_cleared: bool,
    max_users: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Participant {
    user_id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Audio {
    user_id: Uuid,
    muted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Video {
    user_id: Uuid,
    on: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScreenShare {
    user_id: Uuid,
    sharing: bool,
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let room = aggregate_uuid(event)?;
    let at = event.timestamp;
    check_version(event, 1)?;
    let rows = match event.event_type.as_str() {
        "RoomCreated" => {
            let e: Created = payload(event)?;
            sqlx::query(
                "INSERT INTO rooms (id, host_id, name, description, has_password, max_users, scheduled_at, status, \
                 participant_count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', 0, $8, $8)",
            )
            .bind(room)
            .bind(e.host_id)
            .bind(e.name)
            .bind(e.description)
            .bind(e.password_hash.is_some())
            .bind(e.max_users)
            .bind(e.scheduled_at)
            .bind(at)
            .execute(tx)
            .await?
        }
        "RoomSettingsUpdated" => {
            let e: SettingsUpdated = payload(event)?;
            // A new password arrives as a hash; `passwordCleared` removes it.
            let has_password = match (e.password_hash.is_some(), e.password_cleared) {
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
            .bind(e.name)
            .bind(e.description)
            .bind(has_password)
            .bind(e.max_users)
            .bind(at)
            .execute(tx)
            .await?
        }
        "ParticipantJoined" => {
            let e: Participant = payload(event)?;
            // The aggregate never lets someone join twice; DO NOTHING keeps the
            // open stay (and the count) right if a hand-made stream ever does.
            let opened = sqlx::query(
                "INSERT INTO participants (room_id, user_id, joined_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (room_id, user_id) WHERE left_at IS NULL DO NOTHING",
            )
            .bind(room)
            .bind(e.user_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            adjust_count(tx, room, opened.rows_affected(), 1, at).await?
        }
        "ParticipantLeft" => {
            let e: Participant = payload(event)?;
            close_stay(tx, room, e.user_id, "left", at).await?
        }
        "ParticipantRemoved" => {
            let e: Participant = payload(event)?;
            close_stay(tx, room, e.user_id, "removed", at).await?
        }
        "ParticipantMutedByHost" => {
            let e: Participant = payload(event)?;
            sqlx::query(
                "UPDATE participants SET audio_muted = TRUE, muted_by_host = TRUE \
                 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(e.user_id)
            .execute(tx)
            .await?
        }
        "ParticipantUnmuteAllowed" => {
            let e: Participant = payload(event)?;
            // The microphone stays as it is: they unmute themselves.
            sqlx::query(
                "UPDATE participants SET muted_by_host = FALSE WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(e.user_id)
            .execute(tx)
            .await?
        }
        "ParticipantAudioChanged" => {
            let e: Audio = payload(event)?;
            // Unmuting ends the host's mute (the room refuses it while the host's
            // mute holds, but histories from before it held have it); muting
            // themselves keeps whatever the host did.
            sqlx::query(
                "UPDATE participants SET audio_muted = $3, muted_by_host = muted_by_host AND $3 \
                 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(e.user_id)
            .bind(e.muted)
            .execute(tx)
            .await?
        }
        "ParticipantVideoChanged" => {
            let e: Video = payload(event)?;
            sqlx::query("UPDATE participants SET video_on = $3 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL")
                .bind(room)
                .bind(e.user_id)
                .bind(e.on)
                .execute(tx)
                .await?
        }
        "ParticipantScreenShareChanged" => {
            let e: ScreenShare = payload(event)?;
            sqlx::query(
                "UPDATE participants SET screen_sharing = $3 WHERE room_id = $1 AND user_id = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(e.user_id)
            .bind(e.sharing)
            .execute(tx)
            .await?
        }
        "RoomEnded" => {
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
        _ => return unknown(event),
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
    let updated = sqlx::query("UPDATE rooms SET participant_count = participant_count + $2, updated_at = $3 WHERE id = $1")
        .bind(room)
        .bind(step)
        .bind(at)
        .execute(tx)
        .await?;
    Ok(updated)
}
