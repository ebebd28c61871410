//! Notifications (SPEC §6): a user's in-app list and unread count, and the rows a
//! batch of the projection added (live delivery). The reminder timers it keeps are
//! read in `reminders.rs`.

use chrono::{DateTime, Utc};
use rapat_domain::ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::QueryError;
use crate::sql::to_i64;

pub use crate::models::notification_id;

/// One notification as the read model holds it; also the body of the live
/// message the projector publishes for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRow {
    pub id: Uuid,
    pub recipient_id: Uuid,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub payload: Value,
}

/// Where a page of notifications ends: the next page starts after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationPosition {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl NotificationRow {
    pub fn position(&self) -> NotificationPosition {
        NotificationPosition { created_at: self.created_at, id: self.id }
    }
}

const COLUMNS: &str = "id, recipient_id, kind, created_at, read_at, payload";

/// The recipient's in-app notifications, newest first, after `after` (a page's
/// last row), at most `limit`; only unread ones if `unread_only`.
pub async fn list(
    pool: &PgPool,
    recipient: UserId,
    unread_only: bool,
    after: Option<NotificationPosition>,
    limit: u32,
) -> Result<Vec<NotificationRow>, QueryError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = $1 AND in_app \
         AND (NOT $2 OR read_at IS NULL) \
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(recipient.as_uuid())
        .bind(unread_only)
        .bind(after.map(|position| position.created_at))
        .bind(after.map(|position| position.id))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// How many in-app notifications the recipient has not read.
pub async fn unread_count(pool: &PgPool, recipient: UserId) -> Result<u64, QueryError> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE recipient_id = $1 AND in_app AND read_at IS NULL")
            .bind(recipient.as_uuid())
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The recipient's in-app notification `id`, if it is theirs.
pub async fn find(pool: &PgPool, recipient: UserId, id: Uuid) -> Result<Option<NotificationRow>, QueryError> {
    let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id = $1 AND recipient_id = $2 AND in_app");
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(recipient.as_uuid()).fetch_optional(pool).await?;
    Ok(row)
}

/// The in-app notifications caused by events after stream sequence `after` up to
/// `up_to`: what one projector batch added, for live delivery.
pub async fn added_between<'e>(
    executor: impl PgExecutor<'e>,
    after: u64,
    up_to: u64,
) -> Result<Vec<NotificationRow>, QueryError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE stream_sequence > $1 AND stream_sequence <= $2 AND in_app \
         ORDER BY stream_sequence, id"
    );
    let rows =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(to_i64(after)).bind(to_i64(up_to)).fetch_all(executor).await?;
    Ok(rows)
}
