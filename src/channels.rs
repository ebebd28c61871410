//! The delivery channels' workers (SPEC §7), started next to the projector that
//! fills their outboxes. Any number of processes may run them: they share the
//! work through the outbox's leases.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Starts a worker for every channel that is configured; each says at start
/// when it is off and why.
pub async fn spawn(
    settings: &Settings,
    db: &PgPool,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let config = settings.delivery();
    // Each channel's sender is added here (email, push); webhooks run a worker of their own.
    let senders: Vec<Arc<dyn rapat_delivery::Sender>> = Vec::new();
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
