//! `rooms` and `participants`, from room events (and through `recordings.rs`
//! the room's recording flag and `track_recordings`). A participant row is one stay:
//! joining opens it, leaving, removal or the room's end closes it.
//!
//! A batch of events is folded in memory (`fold.rs`, no SQL) from the rows it
//! starts from, loaded with one query per table, and what it leaves is written
//! set-based, in one statement where the open-stay index allows (`write.rs`). The
//! live projector and a rebuild hand their batches to the same path, so they cannot
//! disagree on what an event does.

mod fold;
#[cfg(test)]
mod tests;
mod write;

use rapat_domain::envelope::StoredEvent;
use rapat_domain::room::RoomEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{ApplyError, aggregate_uuid, check_found, decode, recordings};
use fold::{Event, Loaded, RoomRow, Stay, fold, rooms_to_load, stays_to_load};
use write::write;

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    apply_many(tx, &[event]).await
}

/// Applies `events` (in stream order) as their statements one by one would, with a
/// handful of statements in all.
pub(super) async fn apply_many(tx: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ApplyError> {
    let mut decoded = Vec::with_capacity(events.len());
    let mut sources = Vec::with_capacity(events.len());
    for event in events {
        let Some(room_event) = decode::<RoomEvent>(event)? else { continue };
        decoded.push(Event { room: aggregate_uuid(event)?, at: event.timestamp, event: room_event });
        sources.push(*event);
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let loaded = load(tx, &decoded).await?;
    let folded = fold(loaded, &decoded)?;
    for &index in &folded.recordings {
        let Event { room, at, event } = &decoded[index];
        match event {
            RoomEvent::TrackRecordingFinished { recording } => recordings::finished(tx, *room, recording, *at).await?,
            RoomEvent::TrackRecordingExpired { track_recording_id } => {
                let rows = recordings::expired(tx, *room, *track_recording_id, *at).await?;
                check_found(rows.rows_affected(), sources[index]);
            }
            _ => {}
        }
    }
    write(tx, &folded).await?;
    for &index in &folded.unmatched {
        check_found(0, sources[index]);
    }
    Ok(())
}

const ROOM_COLUMNS: &str = "id, host_id, name, description, has_password, max_users, scheduled_at, status, \
     participant_count, created_at, updated_at, ended_at, duration_minutes, schedule_sequence, started_at, \
     cancelled_at, recording";

const STAY_COLUMNS: &str =
    "id, room_id, user_id, joined_at, left_at, left_reason, audio_muted, video_on, screen_sharing, muted_by_host";

/// The rows the batch starts from: one query for the rooms, one for the open stays.
async fn load(tx: &mut PgConnection, events: &[Event]) -> Result<Loaded, ApplyError> {
    let mut loaded = Loaded::default();
    let rooms = rooms_to_load(events);
    if !rooms.is_empty() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ANY($1)")))
            .bind(&rooms)
            .fetch_all(&mut *tx)
            .await?;
        loaded.rooms = rows.iter().map(room_row).collect::<Result<_, _>>()?;
    }
    let stays = stays_to_load(events);
    if !stays.is_empty() {
        // Both halves use the open-stay index (room_id, user_id) WHERE left_at IS NULL.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STAY_COLUMNS} FROM participants WHERE left_at IS NULL AND room_id = ANY($1) \
             UNION SELECT {STAY_COLUMNS} FROM participants \
             WHERE left_at IS NULL AND (room_id, user_id) IN (SELECT * FROM UNNEST($2::uuid[], $3::uuid[]))"
        )))
        .bind(&stays.rooms)
        .bind(&stays.rooms_of_pairs)
        .bind(&stays.users_of_pairs)
        .fetch_all(&mut *tx)
        .await?;
        loaded.open_stays = rows.iter().map(stay_row).collect::<Result<_, _>>()?;
    }
    Ok(loaded)
}

fn room_row(row: &PgRow) -> Result<RoomRow, sqlx::Error> {
    Ok(RoomRow {
        id: row.try_get("id")?,
        host_id: row.try_get("host_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        has_password: row.try_get("has_password")?,
        max_users: row.try_get("max_users")?,
        scheduled_at: row.try_get("scheduled_at")?,
        status: row.try_get("status")?,
        participant_count: row.try_get("participant_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        ended_at: row.try_get("ended_at")?,
        duration_minutes: row.try_get("duration_minutes")?,
        schedule_sequence: row.try_get("schedule_sequence")?,
        started_at: row.try_get("started_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        recording: row.try_get("recording")?,
    })
}

fn stay_row(row: &PgRow) -> Result<Stay, sqlx::Error> {
    Ok(Stay {
        id: Some(row.try_get("id")?),
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        joined_at: row.try_get("joined_at")?,
        left_at: row.try_get("left_at")?,
        left_reason: row.try_get("left_reason")?,
        audio_muted: row.try_get("audio_muted")?,
        video_on: row.try_get("video_on")?,
        screen_sharing: row.try_get("screen_sharing")?,
        muted_by_host: row.try_get("muted_by_host")?,
    })
}
