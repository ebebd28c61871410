//! The delivery channels' workers (SPEC §7), started next to the projector that
//! fills their outboxes. Any number of processes may run them: they share the
//! work through the outbox's leases.

use std::sync::Arc;

use anyhow::Context as _;
use rapat_commands::EventStoreConfig;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Starts a worker for every channel that is configured; each says at start
/// when it is off and why.
pub async fn spawn(
    settings: &Settings,
    nats: &async_nats::Client,
    event_store: &EventStoreConfig,
    db: &PgPool,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    // Webhooks have a queue of their own: per endpoint, in stream order.
    let webhooks = rapat_delivery::webhooks::WebhookWorker::new(db.clone(), settings.webhooks())
        .context("starting the webhook worker")?;
    let stop_webhooks = stop.clone();
    tasks.spawn(async move {
        webhooks.run(stop_webhooks).await;
        Ok(())
    });
    let config = settings.delivery();
    // Each outbox channel's sender (email, push).
    let mut senders: Vec<Arc<dyn rapat_delivery::Sender>> = Vec::new();
    if let Some(email) = settings.email()? {
        senders.push(Arc::new(rapat_delivery::email::EmailSender::new(db.clone(), email)?));
    }
    // Web push needs nothing configured: the VAPID key is made and kept when none is.
    let push = rapat_delivery::push::PushSender::open(nats.clone(), event_store.clone(), db.clone(), settings.push()?)
        .await
        .context("opening the event store for the push channel")?;
    senders.push(Arc::new(push));
    for sender in senders {
        let worker = rapat_delivery::OutboxWorker::new(db.clone(), sender, config);
        let stop = stop.clone();
        tasks.spawn(async move {
            worker.run(stop).await;
            Ok(())
        });
    }
    Ok(())
}
