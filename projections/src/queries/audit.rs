//! The audit trail: every event of the stream, as stored.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::{QueryError, page_bounds};
use crate::sql::{to_i64, to_u64};

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct AuditRow {
    #[sqlx(try_from = "i64")]
    pub stream_sequence: u64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    #[sqlx(try_from = "i64")]
    pub aggregate_version: u64,
    pub event_type: String,
    #[sqlx(try_from = "i32")]
    pub schema_version: u32,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub command_id: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: Value,
}

/// One page (1-based) of an aggregate's events in version order, and how many it
/// has in all.
pub async fn for_aggregate(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    page: u32,
    limit: u32,
) -> Result<(Vec<AuditRow>, u64), QueryError> {
    let (limit, offset) = page_bounds(page, limit);
    let mut tx = pool.begin().await?;
    // One snapshot for the page and the total, so they agree.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let rows = sqlx::query_as(
        "SELECT stream_sequence, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, schema_version, \
         actor, correlation_id, command_id, occurred_at, payload FROM audit_events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY aggregate_version, stream_sequence LIMIT $3 OFFSET $4",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE aggregate_type = $1 AND aggregate_id = $2")
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok((rows, to_u64(total)))
}

/// Where an event sits in the stream: its message's sequence, then its aggregate
/// version, since one message can hold several events of one aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditPosition {
    pub stream_sequence: u64,
    pub aggregate_version: u64,
}

impl AuditRow {
    pub fn position(&self) -> AuditPosition {
        AuditPosition { stream_sequence: self.stream_sequence, aggregate_version: self.aggregate_version }
    }
}

/// What the audit trail may be narrowed to; `None` leaves a field open.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub actor: Option<String>,
    pub event_type: Option<String>,
    /// Events that occurred at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events that occurred before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Up to `limit` events matching `filter` in stream order, after `after` when
/// given. Keyset pagination: a page never repeats or skips an event, however many
/// arrive while a client pages through.
pub async fn search(
    pool: &PgPool,
    filter: &AuditFilter,
    after: Option<AuditPosition>,
    limit: u32,
) -> Result<Vec<AuditRow>, QueryError> {
    let (after_sequence, after_version) = match after {
        Some(position) => (to_i64(position.stream_sequence), to_i64(position.aggregate_version)),
        None => (0, 0),
    };
    // Each filter is `$n IS NULL OR column = $n`, so one statement serves every
    // combination and Postgres still uses the position index to walk in order.
    let rows = sqlx::query_as(
        "SELECT stream_sequence, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, schema_version, \
         actor, correlation_id, command_id, occurred_at, payload FROM audit_events \
         WHERE (stream_sequence, aggregate_version) > ($1, $2) \
         AND ($3::text IS NULL OR aggregate_type = $3) AND ($4::text IS NULL OR aggregate_id = $4) \
         AND ($5::text IS NULL OR actor = $5) AND ($6::text IS NULL OR event_type = $6) \
         AND ($7::timestamptz IS NULL OR occurred_at >= $7) AND ($8::timestamptz IS NULL OR occurred_at < $8) \
         ORDER BY stream_sequence, aggregate_version LIMIT $9",
    )
    .bind(after_sequence)
    .bind(after_version)
    .bind(filter.aggregate_type.as_deref())
    .bind(filter.aggregate_id.as_deref())
    .bind(filter.actor.as_deref())
    .bind(filter.event_type.as_deref())
    .bind(filter.from)
    .bind(filter.to)
    .bind(i64::from(limit.max(1)))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
