//! The delivery queue's SQL: which endpoints have a delivery due, the endpoint
//! leases, an endpoint's next delivery, and recording an attempt. Rows are queued
//! by the webhooks projection (`rapat_projections`' `models/webhooks.rs`).

use std::time::Duration;

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// Endpoints whose oldest pending delivery is due and that no live lease holds.
pub(super) async fn due_endpoints(db: &PgPool, limit: usize) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT h.endpoint_id FROM ( \
           SELECT DISTINCT ON (endpoint_id) endpoint_id, next_attempt_at FROM webhook_deliveries \
           WHERE status = 'pending' ORDER BY endpoint_id, stream_sequence, event_index) h \
         JOIN webhook_endpoints e ON e.id = h.endpoint_id AND e.enabled AND e.deleted_at IS NULL \
         LEFT JOIN webhook_leases l ON l.endpoint_id = h.endpoint_id \
         WHERE h.next_attempt_at <= now() AND (l.leased_until IS NULL OR l.leased_until < now()) \
         ORDER BY h.next_attempt_at LIMIT $1",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await
}

/// How long until an endpoint's oldest pending delivery is due and its lease (if
/// any) has expired; `None` when nothing is pending.
pub(super) async fn until_next_due(db: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM min(GREATEST(h.next_attempt_at, COALESCE(l.leased_until, h.next_attempt_at))) \
           - now())::float8 FROM ( \
           SELECT DISTINCT ON (endpoint_id) endpoint_id, next_attempt_at FROM webhook_deliveries \
           WHERE status = 'pending' ORDER BY endpoint_id, stream_sequence, event_index) h \
         JOIN webhook_endpoints e ON e.id = h.endpoint_id AND e.enabled AND e.deleted_at IS NULL \
         LEFT JOIN webhook_leases l ON l.endpoint_id = h.endpoint_id",
    )
    .fetch_one(db)
    .await?;
    Ok(seconds.map(|seconds| Duration::from_secs_f64(seconds.max(0.0))))
}

/// Takes the endpoint's lease for `holder` (a process's worker), unless another
/// holder's lease is still live. Two workers racing for one expired lease: the
/// second's upsert waits for the first's, then sees it live and takes nothing.
pub(super) async fn claim(db: &PgPool, endpoint: Uuid, holder: Uuid, lease: Duration) -> Result<bool, sqlx::Error> {
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO webhook_leases (endpoint_id, holder, leased_until) \
         VALUES ($1, $2, now() + make_interval(secs => $3)) \
         ON CONFLICT (endpoint_id) DO UPDATE SET holder = EXCLUDED.holder, leased_until = EXCLUDED.leased_until \
         WHERE webhook_leases.leased_until < now() OR webhook_leases.holder = EXCLUDED.holder \
         RETURNING endpoint_id",
    )
    .bind(endpoint)
    .bind(holder)
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}

/// Extends a lease still held by `holder`; false when it was lost (expired and
/// taken by another worker).
pub(super) async fn renew(db: &PgPool, endpoint: Uuid, holder: Uuid, lease: Duration) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE webhook_leases SET leased_until = now() + make_interval(secs => $3) \
         WHERE endpoint_id = $1 AND holder = $2",
    )
    .bind(endpoint)
    .bind(holder)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

pub(super) async fn release(db: &PgPool, endpoint: Uuid, holder: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhook_leases WHERE endpoint_id = $1 AND holder = $2")
        .bind(endpoint)
        .bind(holder)
        .execute(db)
        .await
        .map(|_| ())
}

/// Every lease of `holder`: a stopping worker lets others take over at once.
pub(super) async fn release_all(db: &PgPool, holder: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhook_leases WHERE holder = $1").bind(holder).execute(db).await.map(|_| ())
}

/// An endpoint's oldest pending delivery, with what sending it takes.
#[derive(Clone, Debug, FromRow)]
pub(super) struct Head {
    pub id: Uuid,
    pub event_id: Uuid,
    pub body: String,
    pub attempts: i32,
    pub due: bool,
    /// Seconds since the first attempt (0 before it).
    pub since_first_attempt: f64,
    pub url: String,
    pub secret: String,
    /// The rotated-out secret while it still signs.
    pub previous_secret: Option<String>,
}

pub(super) async fn head(db: &PgPool, endpoint: Uuid) -> Result<Option<Head>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.event_id, d.body, d.attempts, d.next_attempt_at <= now() AS due, \
           COALESCE(EXTRACT(EPOCH FROM now() - d.first_attempt_at)::float8, 0) AS since_first_attempt, \
           e.url, e.secret, CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END \
           AS previous_secret \
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.endpoint_id = $1 AND d.status = 'pending' AND e.enabled AND e.deleted_at IS NULL \
         ORDER BY d.stream_sequence, d.event_index LIMIT 1",
    )
    .bind(endpoint)
    .fetch_optional(db)
    .await
}

/// How an attempt ended, to record.
pub(super) enum Recorded<'a> {
    Delivered { status_code: u16 },
    Retry { status_code: Option<u16>, error: &'a str, after: Duration },
    Failed { status_code: Option<u16>, error: &'a str },
}

/// Records an attempt on a delivery still pending with the attempts the sender
/// read (so an attempt is never recorded twice).
pub(super) async fn record(db: &PgPool, head: &Head, outcome: Recorded<'_>) -> Result<(), sqlx::Error> {
    let (status, status_code, error, after) = match outcome {
        Recorded::Delivered { status_code } => ("delivered", Some(status_code), None, Duration::ZERO),
        Recorded::Retry { status_code, error, after } => ("pending", status_code, Some(error), after),
        Recorded::Failed { status_code, error } => ("failed", status_code, Some(error), Duration::ZERO),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, last_attempt_at = now(), \
           first_attempt_at = COALESCE(first_attempt_at, now()), last_status_code = $4, last_error = $5, \
           next_attempt_at = now() + make_interval(secs => $6), \
           delivered_at = CASE WHEN $3 = 'delivered' THEN now() END \
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    )
    .bind(head.id)
    .bind(head.attempts)
    .bind(status)
    .bind(status_code.map(i32::from))
    .bind(error)
    .bind(after.as_secs_f64())
    .execute(db)
    .await
    .map(|_| ())
}

/// The figures behind the channel's gauges.
#[derive(Debug, Default, FromRow)]
pub(super) struct Figures {
    pub queued: i64,
    pub retrying: i64,
    pub failed: i64,
    pub oldest_undelivered_seconds: f64,
}

pub(super) async fn figures(db: &PgPool) -> Result<Figures, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE d.status = 'pending' AND d.attempts = 0) AS queued, \
           count(*) FILTER (WHERE d.status = 'pending' AND d.attempts > 0) AS retrying, \
           count(*) FILTER (WHERE d.status = 'failed') AS failed, \
           COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at) FILTER (WHERE d.status = 'pending'))::float8, 0) \
           AS oldest_undelivered_seconds \
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL \
         WHERE d.status <> 'delivered'",
    )
    .fetch_one(db)
    .await
}

/// Deletes deliveries delivered more than `age` ago. The projection queues a
/// delivery only when its event is new, so a deleted one never comes back.
pub(super) async fn delete_delivered_before(db: &PgPool, age: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE status = 'delivered' \
         AND delivered_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}
