//! The push channel of a test app: the push sender, driven as the outbox
//! worker drives it, over the notifications whose push switch is on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rapat_delivery::outbox::{Channel, Delivery, SendError, Sender};
use rapat_delivery::push::{PushConfig, PushSender};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::TestApp;

pub struct PushChannel {
    stop: CancellationToken,
}

impl Drop for PushChannel {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn push_config() -> PushConfig {
    PushConfig { allow_insecure: true, request_timeout: Duration::from_secs(5), ..PushConfig::default() }
}

impl PushChannel {
    pub async fn start(app: &TestApp) -> Self {
        let nats = rapat_commands::connect(&app.nats_url).await.expect("NATS");
        let sender =
            PushSender::open(nats, app.event_store.clone(), app.db.clone(), push_config()).await.expect("opens");
        let sender = Arc::new(sender);
        let stop = CancellationToken::new();
        tokio::spawn(pump(app.db.clone(), Arc::clone(&sender), stop.clone()));
        Self { stop }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    recipient_id: Uuid,
    kind: String,
    payload: serde_json::Value,
    event_id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn pump(db: sqlx::PgPool, sender: Arc<PushSender>, stop: CancellationToken) {
    let mut done: HashSet<Uuid> = HashSet::new();
    let mut attempts: std::collections::HashMap<Uuid, u32> = Default::default();
    while !stop.is_cancelled() {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, recipient_id, kind, payload, event_id, created_at FROM notifications WHERE push ORDER BY created_at",
        )
        .fetch_all(&db)
        .await
        .unwrap_or_default();
        let rows: Vec<Row> = rows.into_iter().filter(|row| !done.contains(&row.id)).collect();
        for row in rows {
            let attempt = attempts.entry(row.id).or_default();
            *attempt += 1;
            let delivery = Delivery {
                id: row.id,
                channel: Channel::Push,
                kind: row.kind,
                recipient_id: Some(row.recipient_id),
                address: None,
                notification_id: Some(row.id),
                payload: row.payload,
                event_id: row.event_id,
                created_at: row.created_at,
                attempts: *attempt,
            };
            match sender.send(&delivery).await {
                Ok(()) | Err(SendError::Permanent(_)) => {
                    done.insert(delivery.id);
                }
                Err(SendError::Retry(_)) => {}
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
