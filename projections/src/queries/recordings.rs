//! Recorded track files (SPEC §10): what a host lists and downloads, and what the
//! retention loop expires. Expired files are never returned.

use chrono::{DateTime, Utc};
use rapat_domain::ids::{RoomId, TrackRecordingId, UserId};
use rapat_domain::room::RecordingCodec;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;
use crate::sql::to_u64;

/// One kept track file.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackRecordingRow {
    pub id: TrackRecordingId,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub codec: RecordingCodec,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub bytes: u64,
}

#[derive(FromRow)]
struct Stored {
    id: Uuid,
    room_id: Uuid,
    user_id: Uuid,
    codec: String,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    bytes: i64,
}

impl TryFrom<Stored> for TrackRecordingRow {
    type Error = QueryError;

    fn try_from(row: Stored) -> Result<Self, Self::Error> {
        let codec = match row.codec.as_str() {
            "opus" => RecordingCodec::Opus,
            "vp8" => RecordingCodec::Vp8,
            other => return Err(QueryError::Failed(sqlx::Error::Decode(format!("unknown codec {other:?}").into()))),
        };
        Ok(Self {
            id: TrackRecordingId::from_uuid(row.id),
            room_id: RoomId::from_uuid(row.room_id),
            user_id: UserId::from_uuid(row.user_id),
            codec,
            started_at: row.started_at,
            duration_ms: to_u64(row.duration_ms),
            bytes: to_u64(row.bytes),
        })
    }
}

const COLUMNS: &str = "id, room_id, user_id, codec, started_at, duration_ms, bytes";

fn convert(rows: Vec<Stored>) -> Result<Vec<TrackRecordingRow>, QueryError> {
    rows.into_iter().map(TrackRecordingRow::try_from).collect()
}

/// The room's kept files, oldest first.
pub async fn for_room(pool: &PgPool, room: RoomId) -> Result<Vec<TrackRecordingRow>, QueryError> {
    let rows: Vec<Stored> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM track_recordings WHERE room_id = $1 AND expired_at IS NULL ORDER BY started_at, id"
    )))
    .bind(room.as_uuid())
    .fetch_all(pool)
    .await?;
    convert(rows)
}

/// One kept file of the room; `None` when unknown, of another room or expired.
pub async fn by_id(pool: &PgPool, room: RoomId, id: TrackRecordingId) -> Result<Option<TrackRecordingRow>, QueryError> {
    let row: Option<Stored> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM track_recordings WHERE id = $1 AND room_id = $2 AND expired_at IS NULL"
    )))
    .bind(id.as_uuid())
    .bind(room.as_uuid())
    .fetch_optional(pool)
    .await?;
    row.map(TrackRecordingRow::try_from).transpose()
}

/// Kept files that started before `cutoff`, oldest first, at most `limit`.
pub async fn started_before(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<TrackRecordingRow>, QueryError> {
    let rows: Vec<Stored> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM track_recordings WHERE expired_at IS NULL AND started_at < $1 \
         ORDER BY started_at, id LIMIT $2"
    )))
    .bind(cutoff)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    convert(rows)
}
