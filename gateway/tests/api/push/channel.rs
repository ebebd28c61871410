//! The push channel of a test app as `rapat serve` runs it: the outbox worker
//! (`rapat_delivery::OutboxWorker`) over the `deliveries` rows the notifications
//! projection adds, sending through the push sender, on a schedule of
//! milliseconds.

use std::sync::Arc;
use std::time::Duration;

use rapat_delivery::push::{PushConfig, PushSender};
use rapat_delivery::{OutboxWorker, RetryPolicy, WorkerConfig};
use tokio_util::sync::CancellationToken;

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

pub async fn push_sender(app: &TestApp) -> PushSender {
    let nats = rapat_commands::connect(&app.nats_url).await.expect("NATS");
    PushSender::open(nats, app.event_store.clone(), app.db.clone(), push_config()).await.expect("opens")
}

impl PushChannel {
    pub async fn start(app: &TestApp) -> Self {
        let config = WorkerConfig {
            retry: RetryPolicy {
                base: Duration::from_millis(100),
                max_delay: Duration::from_millis(400),
                give_up_after: Duration::from_secs(120),
            },
            poll_every: Duration::from_millis(500),
            ..WorkerConfig::default()
        };
        let worker = OutboxWorker::new(app.db.clone(), Arc::new(push_sender(app).await), config);
        let stop = CancellationToken::new();
        tokio::spawn(worker.run(stop.clone()));
        Self { stop }
    }
}
