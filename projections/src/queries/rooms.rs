//! Rooms and who is in them.

use chrono::{DateTime, Utc};
use rapat_domain::ids::{RoomId, UserId};
use sqlx::{FromRow, PgPool, Row as _};
use uuid::Uuid;

use super::{QueryError, page_bounds};
use crate::sql::to_u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomStatus {
    Active,
    Ended,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
        }
    }
}

impl TryFrom<String> for RoomStatus {
    type Error = String;

    fn try_from(status: String) -> Result<Self, Self::Error> {
        match status.as_str() {
            "active" => Ok(Self::Active),
            "ended" => Ok(Self::Ended),
            other => Err(format!("unknown room status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct RoomRow {
    #[sqlx(try_from = "Uuid")]
    pub id: RoomId,
    #[sqlx(try_from = "Uuid")]
    pub host_id: UserId,
    pub name: String,
    pub description: String,
    /// A room's password (hash) never leaves the event stream.
    pub has_password: bool,
    #[sqlx(try_from = "i32")]
    pub max_users: u32,
    pub scheduled_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub status: RoomStatus,
    #[sqlx(try_from = "i32")]
    pub participant_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Planned length in minutes (1..=1440), when given.
    pub duration_minutes: Option<i32>,
    /// 0 at creation, one more per reschedule (a calendar's `SEQUENCE`).
    pub schedule_sequence: i64,
    /// The first join: the meeting began.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended without ever starting.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The host is recording the room (SPEC §10).
    pub recording: bool,
}

/// Someone currently in a room, with their media state.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct ParticipantRow {
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// `None` while the accounts projection has not caught up with this user.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub joined_at: DateTime<Utc>,
    pub audio_muted: bool,
    pub video_on: bool,
    pub screen_sharing: bool,
    /// The audio is off because the host muted it (until the user unmutes).
    pub muted_by_host: bool,
}

pub async fn by_id(pool: &PgPool, id: RoomId) -> Result<Option<RoomRow>, QueryError> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1")))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// One page (1-based) of the rooms not ended that `user` hosts or is in now,
/// newest first, and how many there are in all.
pub async fn active_page_for(
    pool: &PgPool,
    user: UserId,
    page: u32,
    limit: u32,
) -> Result<(Vec<RoomRow>, u64), QueryError> {
    page_of(pool, ACTIVE_FOR_USER, "r.created_at DESC, r.id", user, page, limit).await
}

/// One page (1-based) of the ended rooms `user` hosted or ever joined, most
/// recently ended first, and how many there are in all.
pub async fn history_for(
    pool: &PgPool,
    user: UserId,
    page: u32,
    limit: u32,
) -> Result<(Vec<RoomRow>, u64), QueryError> {
    const MINE: &str = "r.status = 'ended' AND (r.host_id = $1 OR EXISTS ( \
                        SELECT 1 FROM participants p WHERE p.room_id = r.id AND p.user_id = $1))";
    page_of(pool, MINE, "r.ended_at DESC, r.id", user, page, limit).await
}

/// How many rooms `host` created at or after `since` (ended ones too), and when
/// the oldest of them was created.
pub async fn created_by_since(
    pool: &PgPool,
    host: UserId,
    since: DateTime<Utc>,
) -> Result<(u64, Option<DateTime<Utc>>), QueryError> {
    let (count, oldest): (i64, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT count(*), min(created_at) FROM rooms WHERE host_id = $1 AND created_at >= $2")
            .bind(host.as_uuid())
            .bind(since)
            .fetch_one(pool)
            .await?;
    Ok((to_u64(count), oldest))
}

const ROOM_COLUMNS: &str = "r.id, r.host_id, r.name, r.description, r.has_password, r.max_users, r.scheduled_at, r.status, \
                            r.participant_count, r.created_at, r.updated_at, r.ended_at, r.duration_minutes, \
                            r.schedule_sequence, r.started_at, r.cancelled_at, r.recording";

/// Not ended, and `$1` hosts it or is in it now.
const ACTIVE_FOR_USER: &str = "r.status = 'active' AND (r.host_id = $1 OR EXISTS ( \
                               SELECT 1 FROM participants p WHERE p.room_id = r.id AND p.user_id = $1 AND p.left_at IS NULL))";

/// One page of the rooms matching `condition` (on `$1`, the user), in `order`,
/// with their total: one snapshot for both, so they agree.
async fn page_of(
    pool: &PgPool,
    condition: &str,
    order: &str,
    user: UserId,
    page: u32,
    limit: u32,
) -> Result<(Vec<RoomRow>, u64), QueryError> {
    let (limit, offset) = page_bounds(page, limit);
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r WHERE {condition} ORDER BY {order} LIMIT $2 OFFSET $3"
    )))
    .bind(user.as_uuid())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM rooms r WHERE {condition}")))
        .bind(user.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((rows, to_u64(total)))
}

/// Who is in the room now, in the order they joined.
pub async fn current_participants(pool: &PgPool, room: RoomId) -> Result<Vec<ParticipantRow>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT p.user_id, u.first_name, u.last_name, p.joined_at, p.audio_muted, p.video_on, p.screen_sharing, \
         p.muted_by_host FROM participants p LEFT JOIN users u ON u.id = p.user_id \
         WHERE p.room_id = $1 AND p.left_at IS NULL ORDER BY p.joined_at, p.id",
    )
    .bind(room.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// `user`'s latest stay in the room, current or ended: what a write on that
/// participant left, even when they have left since (a host's mute racing the
/// participant's own leave).
pub async fn latest_stay(pool: &PgPool, room: RoomId, user: UserId) -> Result<Option<ParticipantRow>, QueryError> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(latest_stay_of("$1", "$2")))
        .bind(room.as_uuid())
        .bind(user.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// The room and `user`'s latest stay in it (as [`latest_stay`]), read in one
/// statement: one snapshot, one round trip. What a join answers. `None` when there
/// is no such room; the stay is `None` when the user was never in it.
pub async fn with_latest_stay(
    pool: &PgPool,
    room: RoomId,
    user: UserId,
) -> Result<Option<(RoomRow, Option<ParticipantRow>)>, QueryError> {
    let stay = latest_stay_of("r.id", "$2");
    let sql = format!("SELECT {ROOM_COLUMNS}, s.* FROM rooms r LEFT JOIN LATERAL ({stay}) s ON TRUE WHERE r.id = $1");
    let Some(row) =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(room.as_uuid()).bind(user.as_uuid()).fetch_optional(pool).await?
    else {
        return Ok(None);
    };
    let room = RoomRow::from_row(&row)?;
    // The stay's columns are all NULL when the lateral join found none.
    let stayed: Option<Uuid> = row.try_get("user_id")?;
    let stay = stayed.map(|_| ParticipantRow::from_row(&row)).transpose()?;
    Ok(Some((room, stay)))
}

/// The query of a participant's latest stay (a [`ParticipantRow`]), with the room
/// and user given as SQL expressions (parameters or columns), never as text.
fn latest_stay_of(room: &str, user: &str) -> String {
    format!(
        "SELECT p.user_id, u.first_name, u.last_name, p.joined_at, p.audio_muted, p.video_on, p.screen_sharing, \
         p.muted_by_host FROM participants p LEFT JOIN users u ON u.id = p.user_id \
         WHERE p.room_id = {room} AND p.user_id = {user} ORDER BY p.joined_at DESC, p.id DESC LIMIT 1"
    )
}

/// True if `user` was ever in the room (now or before).
pub async fn has_ever_joined(pool: &PgPool, room: RoomId, user: UserId) -> Result<bool, QueryError> {
    let joined = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM participants WHERE room_id = $1 AND user_id = $2)")
        .bind(room.as_uuid())
        .bind(user.as_uuid())
        .fetch_one(pool)
        .await?;
    Ok(joined)
}

/// The rooms not ended that `user` hosts or has accepted an invitation to, by
/// `scheduledAt` (unscheduled last), at most `limit`. With a bound (`from`, `to`,
/// inclusive) only scheduled rooms within it.
pub async fn upcoming_for(
    pool: &PgPool,
    user: UserId,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<Vec<RoomRow>, QueryError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.status = 'active' \
         AND (r.host_id = $1 OR EXISTS (SELECT 1 FROM invitations i \
              WHERE i.room_id = r.id AND i.invitee_id = $1 AND i.status = 'accepted')) \
         AND (($2::timestamptz IS NULL AND $3::timestamptz IS NULL) OR r.scheduled_at IS NOT NULL) \
         AND ($2::timestamptz IS NULL OR r.scheduled_at >= $2) AND ($3::timestamptz IS NULL OR r.scheduled_at <= $3) \
         ORDER BY r.scheduled_at ASC NULLS LAST, r.created_at, r.id LIMIT $4"
    )))
    .bind(user.as_uuid())
    .bind(from)
    .bind(to)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
