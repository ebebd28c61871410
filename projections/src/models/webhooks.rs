//! `webhooks` (SPEC §7): folds the endpoints from their own `webhook` events
//! (`webhook_endpoints`), and for every event of the stream that an enabled
//! endpoint's patterns match, stored after that endpoint's registration, inserts
//! one `webhook_deliveries` row: its id a UUIDv5 of (endpoint, event), ON CONFLICT
//! DO NOTHING, in the batch's transaction, so the checkpoint and the queue move
//! together and no process or redelivery queues an event twice.
//!
//! Delivery rows are not part of this projection's rebuild. A rebuild applies the
//! stream with its shadow schema first on the `search_path`; the endpoints then go
//! to the shadow's `webhook_endpoints`, and every statement on the delivery queue
//! is skipped (`current_schema()` is not `public`): the live projector keeps
//! queueing meanwhile, and nothing of history is queued again, so a rebuild
//! neither re-sends nor loses delivery state.

use rapat_domain::envelope::StoredEvent;
use rapat_domain::webhook::WebhookEvent;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, check_found, decode};
use crate::redaction::redacted;
use crate::sql::to_i64;

/// NOTIFY channel the delivery workers listen on: deliveries were queued.
pub const WEBHOOK_DELIVERIES_CHANNEL: &str = "rapat_webhook_deliveries";

/// The namespace of delivery ids. Fixed forever: changing it would queue every
/// (endpoint, event) a second time.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x7a41_0c2e_93d5_4b68_b1f0_52c8_e6a9_d304);

/// The id of the delivery of `event` to `endpoint`.
pub fn webhook_delivery_id(endpoint: Uuid, event: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(endpoint.as_bytes());
    name[16..].copy_from_slice(event.as_bytes());
    Uuid::new_v5(&ID_NAMESPACE, &name)
}

/// The body a webhook receives for `event` (SPEC §7), secrets redacted.
pub fn webhook_body(event: &StoredEvent) -> String {
    json!({
        "id": event.event_id,
        "type": event.event_type,
        "occurredAt": event.timestamp,
        "aggregateType": event.aggregate_type,
        "aggregateId": event.aggregate_id,
        "actor": event.actor,
        "data": redacted(&event.payload),
    })
    .to_string()
}

/// The aggregate type of the endpoints' own events.
pub(super) const AGGREGATE: &str = "webhook";

pub(super) async fn apply(
    tx: &mut PgConnection,
    stream_sequence: u64,
    event_index: usize,
    event: &StoredEvent,
) -> Result<(), ApplyError> {
    if event.aggregate_type == AGGREGATE {
        endpoint_event(tx, stream_sequence, event).await?;
    }
    enqueue(tx, stream_sequence, event_index, event).await
}

async fn endpoint_event(tx: &mut PgConnection, stream_sequence: u64, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<WebhookEvent>(event)? else { return Ok(()) };
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let patterns = |types: &[rapat_domain::webhook::EventTypePattern]| -> Vec<String> {
        types.iter().map(ToString::to_string).collect()
    };
    let result = match decoded {
        WebhookEvent::WebhookRegistered { url, event_types, description, secret } => {
            let created_by = event.actor.as_deref().and_then(|actor| Uuid::parse_str(actor).ok());
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, url, event_types, description, enabled, secret, created_by, \
                 created_at, updated_at, registered_sequence) VALUES ($1, $2, $3, $4, TRUE, $5, $6, $7, $7, $8) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(url.as_str())
            .bind(patterns(&event_types))
            .bind(description)
            .bind(secret.expose())
            .bind(created_by)
            .bind(at)
            .bind(to_i64(stream_sequence))
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        WebhookEvent::WebhookUpdated { url, event_types, enabled, description } => {
            sqlx::query(
                "UPDATE webhook_endpoints SET url = COALESCE($2, url), event_types = COALESCE($3, event_types), \
                 enabled = COALESCE($4, enabled), description = COALESCE($5, description), updated_at = $6 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(url.as_ref().map(|url| url.as_str()))
            .bind(event_types.as_deref().map(patterns))
            .bind(enabled)
            .bind(description)
            .bind(at)
            .execute(&mut *tx)
            .await?
        }
        WebhookEvent::WebhookSecretRotated { secret, previous_secret_expires_at } => {
            sqlx::query(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $3, \
                 secret = $2, updated_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(secret.expose())
            .bind(previous_secret_expires_at)
            .bind(at)
            .execute(&mut *tx)
            .await?
        }
        WebhookEvent::WebhookDeleted {} => {
            sqlx::query("UPDATE webhook_endpoints SET deleted_at = $2, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?
        }
        WebhookEvent::WebhookDeliveryRetried { delivery_id } => {
            // Queue state: live only (see the module doc).
            let requeued = sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, first_attempt_at = NULL, \
                 next_attempt_at = $3 WHERE id = $1 AND endpoint_id = $2 AND status = 'failed' \
                 AND current_schema() = 'public'",
            )
            .bind(delivery_id)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if requeued.rows_affected() > 0 {
                notify(tx).await?;
            }
            return Ok(());
        }
    };
    check_found(result.rows_affected(), event);
    Ok(())
}

/// Queues `event` for every enabled endpoint that wants it and was registered
/// before it.
/// Whether any endpoint could be sent an event now: if not, `enqueue` queues
/// nothing whatever the event. Like `enqueue`, false inside a rebuild's shadow schema.
pub(super) async fn any_enabled(tx: &mut PgConnection) -> Result<bool, ApplyError> {
    let any = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND deleted_at IS NULL) \
         AND current_schema() = 'public'",
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(any)
}

async fn enqueue(
    tx: &mut PgConnection,
    stream_sequence: u64,
    event_index: usize,
    event: &StoredEvent,
) -> Result<(), ApplyError> {
    let candidates = [event.event_type.clone(), format!("{}.*", event.aggregate_type), "*".to_owned()];
    let endpoints: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM webhook_endpoints WHERE enabled AND deleted_at IS NULL AND event_types && $1 \
         AND registered_sequence < $2 AND current_schema() = 'public'",
    )
    .bind(&candidates[..])
    .bind(to_i64(stream_sequence))
    .fetch_all(&mut *tx)
    .await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = endpoints.iter().map(|endpoint| webhook_delivery_id(*endpoint, event.event_id)).collect();
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, stream_sequence, event_index, body, \
         next_attempt_at) SELECT id, endpoint_id, $3, $4, $5, $6, $7, now() FROM UNNEST($1::uuid[], $2::uuid[]) \
         AS queued (id, endpoint_id) WHERE current_schema() = 'public' ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&endpoints)
    .bind(event.event_id)
    .bind(&event.event_type)
    .bind(to_i64(stream_sequence))
    .bind(i32::try_from(event_index).unwrap_or(i32::MAX))
    .bind(webhook_body(event))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() > 0 {
        notify(tx).await?;
    }
    Ok(())
}

/// Wakes the workers when the transaction commits (Postgres folds repeats).
async fn notify(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')").bind(WEBHOOK_DELIVERIES_CHANNEL).execute(&mut *tx).await.map(|_| ())
}
