//! Webhook endpoints and their delivery log, for administrators.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

/// An endpoint, without its secrets (those are read by the delivery worker only).
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Until when a rotated-out secret still signs beside the current one.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, event_types, description, enabled, created_by, created_at, updated_at, previous_secret_expires_at";

/// Every endpoint not deleted, oldest first.
pub async fn list(db: &PgPool) -> Result<Vec<WebhookRow>, QueryError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY created_at, id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(db).await?)
}

/// One endpoint, unless it is unknown or deleted.
pub async fn find(db: &PgPool, id: Uuid) -> Result<Option<WebhookRow>, QueryError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

/// One delivery to an endpoint and where it stands.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_sequence: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, stream_sequence, status, attempts, created_at, \
     CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, last_attempt_at, last_status_code, \
     last_error, delivered_at";

/// Which deliveries of an endpoint to list.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    /// Only deliveries of events before this stream position (the previous page's last).
    pub before: Option<(i64, i32)>,
    pub limit: u32,
}

/// An endpoint's deliveries, newest event first, with the position to continue from.
pub async fn deliveries(
    db: &PgPool,
    endpoint: Uuid,
    filter: &DeliveryFilter,
) -> Result<(Vec<DeliveryRow>, Option<(i64, i32)>), QueryError> {
    let (before_sequence, before_index) = filter.before.unwrap_or((i64::MAX, i32::MAX));
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, event_index FROM webhook_deliveries WHERE endpoint_id = $1 \
         AND ($2::text IS NULL OR status = $2) AND (stream_sequence, event_index) < ($3, $4) \
         ORDER BY stream_sequence DESC, event_index DESC LIMIT $5"
    );
    let found: Vec<DeliveryRowWithIndex> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(endpoint)
        .bind(filter.status.as_deref())
        .bind(before_sequence)
        .bind(before_index)
        .bind(i64::from(filter.limit.max(1)) + 1)
        .fetch_all(db)
        .await?;
    let limit = filter.limit.max(1) as usize;
    let more = found.len() > limit;
    let page: Vec<DeliveryRowWithIndex> = found.into_iter().take(limit).collect();
    let next = if more { page.last().map(|row| (row.row.stream_sequence, row.event_index)) } else { None };
    Ok((page.into_iter().map(|row| row.row).collect(), next))
}

#[derive(FromRow)]
struct DeliveryRowWithIndex {
    #[sqlx(flatten)]
    row: DeliveryRow,
    event_index: i32,
}

/// One delivery of an endpoint.
pub async fn delivery(db: &PgPool, endpoint: Uuid, id: Uuid) -> Result<Option<DeliveryRow>, QueryError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(endpoint).bind(id).fetch_optional(db).await?)
}
