//! Filling the email and push outbox (`deliveries`, SPEC §7) from a projection's
//! batch transaction. The channel workers that drain it live in the delivery
//! crate; this side only decides, exactly once, that a message is owed.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::sql::to_i64;

/// What `pg_notify`s the channel workers when rows were added (at commit).
pub const DELIVERIES_ADDED_CHANNEL: &str = "rapat_deliveries";

/// The namespace of delivery ids. Fixed forever: receivers recognise a repeated
/// message by the id it gives (email `Message-ID`, push topic).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x7d1e_42c9_0b5f_4a83_9e6d_28c1_f3a0_5b17);

/// The id of the delivery of `source` (a notification, or an event) on `channel`.
pub fn delivery_id(source: Uuid, channel: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + channel.len());
    name.extend_from_slice(source.as_bytes());
    name.extend_from_slice(channel.as_bytes());
    Uuid::new_v5(&ID_NAMESPACE, &name)
}

/// One message owed on one channel.
#[derive(Clone, Debug)]
pub struct NewDelivery<'a> {
    pub id: Uuid,
    /// `email` or `push`.
    pub channel: &'a str,
    pub kind: &'a str,
    pub recipient_id: Option<Uuid>,
    /// An address without an account; for an account, the worker looks it up at send time.
    pub address: Option<&'a str>,
    pub notification_id: Option<Uuid>,
    pub payload: &'a serde_json::Value,
    pub event_id: Uuid,
    pub stream_sequence: u64,
    /// The causing event's time.
    pub created_at: DateTime<Utc>,
}

/// Adds `row` unless it is there already.
pub async fn enqueue(tx: &mut PgConnection, row: &NewDelivery<'_>) -> Result<(), sqlx::Error> {
    enqueue_all(tx, std::slice::from_ref(row)).await
}

/// Adds the rows not there already, in one statement (a fan-out to many
/// recipients is one round trip). In a rebuild's shadow schema it adds nothing:
/// a rebuild replays history, which was delivered (or failed) when it happened,
/// and the outbox itself is never rebuilt.
pub async fn enqueue_all(tx: &mut PgConnection, rows: &[NewDelivery<'_>]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let channels: Vec<&str> = rows.iter().map(|row| row.channel).collect();
    let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
    let recipients: Vec<Option<Uuid>> = rows.iter().map(|row| row.recipient_id).collect();
    let addresses: Vec<Option<&str>> = rows.iter().map(|row| row.address).collect();
    let notifications: Vec<Option<Uuid>> = rows.iter().map(|row| row.notification_id).collect();
    let payloads: Vec<&serde_json::Value> = rows.iter().map(|row| row.payload).collect();
    let events: Vec<Uuid> = rows.iter().map(|row| row.event_id).collect();
    let sequences: Vec<i64> = rows.iter().map(|row| to_i64(row.stream_sequence)).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|row| row.created_at).collect();
    let added = sqlx::query(
        "INSERT INTO public.deliveries (id, channel, kind, recipient_id, address, notification_id, payload, \
         event_id, stream_sequence, created_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::uuid[], \
         $7::jsonb[], $8::uuid[], $9::bigint[], $10::timestamptz[]) \
         WHERE current_schema() NOT LIKE 'rebuild\\_%' \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&channels)
    .bind(&kinds)
    .bind(&recipients)
    .bind(&addresses)
    .bind(&notifications)
    .bind(&payloads)
    .bind(&events)
    .bind(&sequences)
    .bind(&times)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if added > 0 {
        sqlx::query("SELECT pg_notify($1, '')").bind(DELIVERIES_ADDED_CHANNEL).execute(&mut *tx).await?;
    }
    Ok(())
}
