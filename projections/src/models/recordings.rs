//! Recording, from room events (part of the `rooms` projection, SPEC §10): one
//! `track_recordings` row per finished file (the room's `recording` flag is a
//! column of its row, folded with the rest of it in `rooms/fold.rs`).
//! Every statement is idempotent in effect (the checkpoint already keeps a
//! message from being applied twice; a rebuild replays the same rows).

use chrono::{DateTime, Utc};
use rapat_domain::ids::TrackRecordingId;
use rapat_domain::room::TrackRecording;
use sqlx::PgConnection;
use sqlx::postgres::PgQueryResult;
use uuid::Uuid;

use super::ApplyError;

pub(super) async fn finished(
    tx: &mut PgConnection,
    room: Uuid,
    recording: &TrackRecording,
    at: DateTime<Utc>,
) -> Result<(), ApplyError> {
    // A repeat (which the aggregate never emits) changes nothing.
    sqlx::query(
        "INSERT INTO track_recordings (id, room_id, user_id, codec, started_at, duration_ms, bytes, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(recording.id.as_uuid())
    .bind(room)
    .bind(recording.user_id.as_uuid())
    .bind(recording.codec.as_str())
    .bind(recording.started_at)
    .bind(bigint(recording.duration_ms, "durationMs")?)
    .bind(bigint(recording.bytes, "bytes")?)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

pub(super) async fn expired(
    tx: &mut PgConnection,
    room: Uuid,
    track: TrackRecordingId,
    at: DateTime<Utc>,
) -> Result<PgQueryResult, ApplyError> {
    let rows =
        sqlx::query("UPDATE track_recordings SET expired_at = COALESCE(expired_at, $3) WHERE id = $1 AND room_id = $2")
            .bind(track.as_uuid())
            .bind(room)
            .bind(at)
            .execute(tx)
            .await?;
    Ok(rows)
}

fn bigint(value: u64, field: &str) -> Result<i64, ApplyError> {
    i64::try_from(value).map_err(|_| ApplyError::Poison(format!("{field} {value} does not fit the column")))
}
