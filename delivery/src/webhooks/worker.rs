//! The webhook worker's loop: claims endpoints with a due delivery, drains each
//! (oldest pending first, one at a time, while holding its lease) and records
//! every attempt. Wakes on the projection's NOTIFY, when the next delivery is
//! due, when a drain ends, and at least every `poll_every`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rapat_domain::webhook::{WebhookSecret, WebhookUrl};
use rapat_projections::WEBHOOK_DELIVERIES_CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::queue::{self, Head, Recorded};
use super::{CHANNEL, PublicOnly, WebhookConfig, check_literal, signature_header};
use crate::{ChannelCounts, NextStep};

/// How often the gauges are refreshed.
const FIGURES_EVERY: Duration = Duration::from_secs(2);

/// Sends queued webhook deliveries; see the module's documentation.
pub struct WebhookWorker {
    db: PgPool,
    config: WebhookConfig,
    http: reqwest::Client,
    /// This worker's name on the leases it holds.
    holder: Uuid,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl WebhookWorker {
    pub fn new(db: PgPool, config: WebhookConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly { allow_private: config.allow_private }))
            .user_agent(concat!("rapat-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, config, http, holder: Uuid::new_v4() })
    }

    /// Runs until `shutdown`; outages are logged and retried. On shutdown the
    /// attempts in flight are dropped (they are sent again: at least once) and
    /// this worker's leases released, so another process takes over at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut listener = this.listen().await;
        let in_flight: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
        let mut drains = JoinSet::new();
        let mut figures_at = Instant::now();
        loop {
            if listener.is_none() {
                listener = this.listen().await;
            }
            let mut wait = this.config.poll_every;
            match this.claim_due(&in_flight, &mut drains, &shutdown).await {
                // Every slot busy: a drain that ends wakes the loop.
                Ok(()) if drains.len() >= this.config.concurrency => {}
                Ok(()) => {
                    if let Ok(Some(next)) = queue::until_next_due(&this.db).await {
                        wait = wait.min(next.max(Duration::from_millis(10)));
                    }
                }
                Err(error) => tracing::warn!(%error, "reading the webhook queue failed; trying again"),
            }
            if figures_at.elapsed() >= FIGURES_EVERY {
                this.export_figures().await;
                figures_at = Instant::now();
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                Some(_) = drains.join_next() => {}
                woken = next_notification(&mut listener) => {
                    if !woken {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        drains.abort_all();
        while drains.join_next().await.is_some() {}
        if let Err(error) = queue::release_all(&this.db, this.holder).await {
            tracing::warn!(%error, "releasing the webhook leases failed; they expire by themselves");
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.db).await.ok()?;
        listener.listen(WEBHOOK_DELIVERIES_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// Starts a drain for every due endpoint this worker can lease, up to its
    /// concurrency.
    async fn claim_due(
        self: &Arc<Self>,
        in_flight: &Arc<Mutex<HashSet<Uuid>>>,
        drains: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let room = self.config.concurrency.saturating_sub(drains.len());
        if room == 0 {
            return Ok(());
        }
        for endpoint in queue::due_endpoints(&self.db, room).await? {
            if lock(in_flight).contains(&endpoint) {
                continue;
            }
            if !queue::claim(&self.db, endpoint, self.holder, self.config.lease).await? {
                continue;
            }
            lock(in_flight).insert(endpoint);
            let (this, in_flight, shutdown) = (Arc::clone(self), Arc::clone(in_flight), shutdown.clone());
            drains.spawn(async move {
                this.drain(endpoint, &shutdown).await;
                if let Err(error) = queue::release(&this.db, endpoint, this.holder).await {
                    tracing::warn!(%error, %endpoint, "releasing a webhook lease failed; it expires by itself");
                }
                lock(&in_flight).remove(&endpoint);
            });
        }
        Ok(())
    }

    /// Sends the endpoint's due deliveries in order while the lease is held.
    async fn drain(&self, endpoint: Uuid, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            let head = match queue::head(&self.db, endpoint).await {
                Ok(Some(head)) if head.due => head,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, %endpoint, "reading a webhook delivery failed");
                    return;
                }
            };
            match queue::renew(&self.db, endpoint, self.holder, self.config.lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, %endpoint, "renewing a webhook lease failed");
                    return;
                }
            }
            let outcome = self.attempt(&head).await;
            let recorded = match &outcome {
                Ok(status_code) => Recorded::Delivered { status_code: *status_code },
                Err((status_code, error)) => {
                    let attempts = u32::try_from(head.attempts).unwrap_or(0).saturating_add(1);
                    let since_first = Duration::from_secs_f64(head.since_first_attempt.max(0.0));
                    match self.config.retry.after_failure(attempts, since_first) {
                        NextStep::RetryIn(after) => Recorded::Retry { status_code: *status_code, error, after },
                        NextStep::GiveUp => Recorded::Failed { status_code: *status_code, error },
                    }
                }
            };
            match &recorded {
                Recorded::Delivered { .. } => {
                    metrics::counter!("rapat_delivery_delivered_total", "channel" => CHANNEL).increment(1);
                }
                Recorded::Retry { error, after, .. } => {
                    tracing::info!(%endpoint, delivery = %head.id, %error, ?after, "webhook not delivered; retrying");
                }
                Recorded::Failed { error, .. } => {
                    tracing::warn!(%endpoint, delivery = %head.id, %error, "webhook delivery failed; giving up");
                }
            }
            if let Err(error) = queue::record(&self.db, &head, recorded).await {
                tracing::warn!(%error, %endpoint, "recording a webhook attempt failed; it will be sent again");
                return;
            }
        }
    }

    /// One POST: the status code of a 2xx, else the code (if any) and what went wrong.
    async fn attempt(&self, head: &Head) -> Result<u16, (Option<u16>, String)> {
        let url = WebhookUrl::parse(&head.url).map_err(|error| (None, error.to_string()))?;
        check_literal(&url, self.config.allow_private).map_err(|error| (None, error.to_string()))?;
        let secret = WebhookSecret::parse(&head.secret).map_err(|error| (None, error.to_string()))?;
        let previous = head.previous_secret.as_deref().and_then(|raw| WebhookSecret::parse(raw).ok());
        let secrets: Vec<&WebhookSecret> = std::iter::once(&secret).chain(previous.as_ref()).collect();
        let id = head.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(&secrets, &id, timestamp, head.body.as_bytes());
        let response = self
            .http
            .post(url.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(head.body.clone())
            .send()
            .await
            .map_err(|error| (None, error_chain(&error)))?;
        let status = response.status();
        // Read (a little of) the answer so the connection can be reused.
        let _ = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("the endpoint answered {status}")))
        }
    }

    async fn export_figures(&self) {
        match queue::figures(&self.db).await {
            Ok(figures) => {
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                let counts = ChannelCounts {
                    queued: count(figures.queued),
                    retrying: count(figures.retrying),
                    failed: count(figures.failed),
                    oldest_undelivered: (figures.oldest_undelivered_seconds > 0.0)
                        .then(|| Duration::from_secs_f64(figures.oldest_undelivered_seconds)),
                };
                counts.export(CHANNEL);
            }
            Err(error) => tracing::debug!(%error, "reading the webhook figures failed"),
        }
        if let Err(error) = queue::delete_delivered_before(&self.db, crate::KEEP_DELIVERED).await {
            tracing::debug!(%error, "deleting old delivered webhooks failed");
        }
    }
}

fn lock(set: &Mutex<HashSet<Uuid>>) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error with its causes, e.g. `error sending request: ... : 127.0.0.1 resolves only to ...`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// True when a notification came, false when the listener is gone (or was never
/// there): then the caller polls and makes a new one.
async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(connected) => match connected.recv().await {
            Ok(_) => true,
            Err(_) => {
                *listener = None;
                false
            }
        },
        None => std::future::pending().await,
    }
}
