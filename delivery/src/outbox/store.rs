//! The outbox worker's statements on `deliveries`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Channel, Delivery};
use crate::metrics::ChannelCounts;

#[derive(sqlx::FromRow)]
struct LeasedRow {
    id: Uuid,
    kind: String,
    recipient_id: Option<Uuid>,
    address: Option<String>,
    notification_id: Option<Uuid>,
    payload: serde_json::Value,
    event_id: Uuid,
    created_at: DateTime<Utc>,
    enqueued_at: DateTime<Utc>,
    attempts: i32,
}

/// Takes up to `batch` due rows of `channel` for `lease`, oldest due first,
/// skipping rows another worker holds, and counts the attempt.
pub(super) async fn lease_due(
    db: &PgPool,
    channel: Channel,
    batch: u32,
    lease: Duration,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let rows: Vec<LeasedRow> = sqlx::query_as(
        "UPDATE deliveries d SET leased_until = now() + make_interval(secs => $3), attempts = d.attempts + 1 \
         FROM (SELECT id FROM deliveries \
               WHERE channel = $1 AND state = 'pending' AND next_attempt_at <= now() \
               AND (leased_until IS NULL OR leased_until <= now()) \
               ORDER BY next_attempt_at, stream_sequence LIMIT $2 FOR UPDATE SKIP LOCKED) due \
         WHERE d.id = due.id \
         RETURNING d.id, d.kind, d.recipient_id, d.address, d.notification_id, d.payload, d.event_id, \
         d.created_at, d.enqueued_at, d.attempts",
    )
    .bind(channel.as_str())
    .bind(i64::from(batch))
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Delivery {
            id: row.id,
            channel,
            kind: row.kind,
            recipient_id: row.recipient_id,
            address: row.address,
            notification_id: row.notification_id,
            payload: row.payload,
            event_id: row.event_id,
            created_at: row.created_at,
            enqueued_at: row.enqueued_at,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        })
        .collect())
}

pub(super) async fn mark_delivered(db: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET state = 'delivered', delivered_at = now(), leased_until = NULL, last_error = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn mark_retry(db: &PgPool, id: Uuid, delay: Duration, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $2), leased_until = NULL, \
         last_error = $3 WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

pub(super) async fn mark_failed(db: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deliveries SET state = 'failed', leased_until = NULL, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// When the next row of `channel` falls due (or its lease runs out), if any is pending.
pub(super) async fn next_due(db: &PgPool, channel: Channel) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(GREATEST(next_attempt_at, COALESCE(leased_until, next_attempt_at))) FROM deliveries \
         WHERE channel = $1 AND state = 'pending'",
    )
    .bind(channel.as_str())
    .fetch_one(db)
    .await
}

pub(super) async fn counts(db: &PgPool, channel: Channel) -> Result<ChannelCounts, sqlx::Error> {
    let (queued, retrying, failed, oldest): (i64, i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'pending' AND attempts = 0), \
         count(*) FILTER (WHERE state = 'pending' AND attempts > 0), \
         count(*) FILTER (WHERE state = 'failed'), \
         EXTRACT(EPOCH FROM now() - min(enqueued_at) FILTER (WHERE state = 'pending'))::float8 \
         FROM deliveries WHERE channel = $1 AND state <> 'delivered'",
    )
    .bind(channel.as_str())
    .fetch_one(db)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(ChannelCounts {
        queued: count(queued),
        retrying: count(retrying),
        failed: count(failed),
        oldest_undelivered: oldest.map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
    })
}

pub(super) async fn delete_delivered_before(db: &PgPool, age: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM deliveries WHERE state = 'delivered' AND delivered_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}
