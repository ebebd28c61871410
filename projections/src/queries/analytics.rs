//! Room analytics: per room and UTC day, and per day across rooms. What each number
//! means is written at the top of `models/analytics/mod.rs`.

use chrono::NaiveDate;
use rapat_domain::ids::RoomId;
use sqlx::{FromRow, PgPool, Row};

use super::QueryError;

/// One UTC day of one room, or of every room together.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct AnalyticsDay {
    pub day: NaiveDate,
    /// Rooms with a row that day (1 for a single room's days).
    #[sqlx(try_from = "i64")]
    pub rooms: u64,
    /// Meetings that started that day.
    #[sqlx(try_from = "i64")]
    pub meetings: u64,
    /// Of those, the ones that have ended, and their summed length.
    #[sqlx(try_from = "i64")]
    pub meetings_ended: u64,
    pub meeting_micros: i64,
    /// Time of closed stays inside the day.
    pub participant_micros: i64,
    /// For several rooms, the highest peak of any one room.
    #[sqlx(try_from = "i32")]
    pub peak_concurrency: u32,
    /// Users in the room (in any room, for several rooms) at some instant of the day.
    #[sqlx(try_from = "i64")]
    pub unique_participants: u64,
}

impl AnalyticsDay {
    pub fn participant_minutes(&self) -> f64 {
        micros_to_minutes(self.participant_micros)
    }

    /// Average length of the ended meetings, in minutes; `None` without any.
    pub fn average_meeting_minutes(&self) -> Option<f64> {
        average_minutes(self.meeting_micros, self.meetings_ended)
    }
}

/// A room's figures over its whole history.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomTotals {
    pub meetings: u64,
    pub meetings_ended: u64,
    pub meeting_micros: i64,
    pub participant_micros: i64,
    pub peak_concurrency: u32,
    /// Distinct users over every day.
    pub unique_participants: u64,
}

impl RoomTotals {
    pub fn participant_minutes(&self) -> f64 {
        micros_to_minutes(self.participant_micros)
    }

    pub fn average_meeting_minutes(&self) -> Option<f64> {
        average_minutes(self.meeting_micros, self.meetings_ended)
    }
}

/// The room's days, oldest first.
pub async fn room_days(pool: &PgPool, room: RoomId) -> Result<Vec<AnalyticsDay>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT d.day, 1::int8 AS rooms, d.meetings::int8 AS meetings, d.meetings_ended::int8 AS meetings_ended, \
         d.meeting_micros, d.participant_micros, d.peak_concurrency, \
         (SELECT count(*) FROM analytics_room_participants p WHERE p.room_id = d.room_id AND p.day = d.day) \
           AS unique_participants \
         FROM analytics_room_days d WHERE d.room_id = $1 ORDER BY d.day",
    )
    .bind(room.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The room's totals; all zero for a room without analytics yet.
pub async fn room_totals(pool: &PgPool, room: RoomId) -> Result<RoomTotals, QueryError> {
    let row = sqlx::query(
        "SELECT coalesce(sum(meetings), 0)::int8 AS meetings, coalesce(sum(meetings_ended), 0)::int8 AS meetings_ended, \
         coalesce(sum(meeting_micros), 0)::int8 AS meeting_micros, \
         coalesce(sum(participant_micros), 0)::int8 AS participant_micros, \
         coalesce(max(peak_concurrency), 0) AS peak_concurrency, \
         (SELECT count(DISTINCT user_id) FROM analytics_room_participants WHERE room_id = $1) AS unique_participants \
         FROM analytics_room_days WHERE room_id = $1",
    )
    .bind(room.as_uuid())
    .fetch_one(pool)
    .await?;
    Ok(RoomTotals {
        meetings: to_u64(row.try_get("meetings")?),
        meetings_ended: to_u64(row.try_get("meetings_ended")?),
        meeting_micros: row.try_get("meeting_micros")?,
        participant_micros: row.try_get("participant_micros")?,
        peak_concurrency: u32::try_from(row.try_get::<i32, _>("peak_concurrency")?).unwrap_or(0),
        unique_participants: to_u64(row.try_get("unique_participants")?),
    })
}

/// Every room together, one row per day from `from` to `to` (both included) that
/// has any room's row, oldest first.
pub async fn daily(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> Result<Vec<AnalyticsDay>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT d.day, count(*)::int8 AS rooms, sum(d.meetings)::int8 AS meetings, \
         sum(d.meetings_ended)::int8 AS meetings_ended, sum(d.meeting_micros)::int8 AS meeting_micros, \
         sum(d.participant_micros)::int8 AS participant_micros, max(d.peak_concurrency) AS peak_concurrency, \
         (SELECT count(DISTINCT p.user_id) FROM analytics_room_participants p WHERE p.day = d.day) \
           AS unique_participants \
         FROM analytics_room_days d WHERE d.day BETWEEN $1 AND $2 GROUP BY d.day ORDER BY d.day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn micros_to_minutes(micros: i64) -> f64 {
    micros as f64 / 60_000_000.0
}

fn average_minutes(total_micros: i64, count: u64) -> Option<f64> {
    (count > 0).then(|| micros_to_minutes(total_micros) / count as f64)
}
