//! The email and push outbox's worker: leases due rows of one channel, hands
//! each to that channel's [`Sender`], and records the outcome. At least once: a
//! row is marked delivered only after its send returned, so a crash in between
//! sends it again when the lease runs out; receivers recognise the repeat by the
//! delivery id. Any number of workers of one channel may run, in any processes:
//! `FOR UPDATE SKIP LOCKED` and the lease keep them off each other's rows.

mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapat_projections::listen::ChangeListener;
use rapat_projections::outbox::DELIVERIES_ADDED_CHANNEL;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::retry::{NextStep, RetryPolicy};

/// The channels the outbox feeds (webhooks have a pipeline of their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Push => "push",
        }
    }
}

/// One message to send, as leased.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: Uuid,
    pub channel: Channel,
    /// A notification kind (SPEC §6) or a message of its own (`password_reset`, ...).
    pub kind: String,
    pub recipient_id: Option<Uuid>,
    /// An address without an account; `None` means the recipient's own.
    pub address: Option<String>,
    pub notification_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub event_id: Uuid,
    /// The causing event's time.
    pub created_at: DateTime<Utc>,
    /// When it was first due: the retry schedule counts from here.
    pub enqueued_at: DateTime<Utc>,
    /// Attempts started, this one included.
    pub attempts: u32,
}

/// Why a send did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (the receiver is down, busy, or said so).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (the address is refused, the message cannot be built).
    #[error("{0}")]
    Permanent(String),
}

/// A channel's way of sending one delivery.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + 'static {
    fn channel(&self) -> Channel;
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError>;
}

/// How a worker paces itself.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    pub retry: RetryPolicy,
    /// How long a leased row is this worker's. A send taking longer is cut off
    /// at half of it, so a live worker never loses a row it is sending.
    pub lease: Duration,
    /// Rows leased at a time, and sent concurrently.
    pub batch: u32,
    /// The longest sleep between looks at the table (NOTIFY usually wakes it sooner).
    pub poll_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(60),
            batch: 16,
            poll_every: Duration::from_secs(5),
        }
    }
}

/// How often a worker deletes old delivered rows and refreshes its gauges.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

pub struct OutboxWorker {
    db: PgPool,
    sender: Arc<dyn Sender>,
    config: WorkerConfig,
}

impl OutboxWorker {
    pub fn new(db: PgPool, sender: Arc<dyn Sender>, config: WorkerConfig) -> Self {
        Self { db, sender, config }
    }

    /// Sends until `shutdown`; an outage of the database is logged and waited out.
    pub async fn run(self, shutdown: CancellationToken) {
        let channel = self.sender.channel();
        tracing::info!(channel = channel.as_str(), "delivery worker started");
        let mut listener = ChangeListener::connect(&self.db, DELIVERIES_ADDED_CHANNEL).await;
        let mut housekeeping_at = Instant::now();
        loop {
            if housekeeping_at <= Instant::now() {
                self.housekeeping(channel).await;
                housekeeping_at = Instant::now() + HOUSEKEEPING_EVERY;
            }
            let wait = match self.send_due(channel, &shutdown).await {
                Ok(true) => continue,
                Ok(false) => self.until_next_due(channel).await,
                Err(error) => {
                    tracing::warn!(%error, channel = channel.as_str(), "cannot read the outbox; trying again");
                    self.config.poll_every
                }
            };
            let wait = wait.min(housekeeping_at.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = listener.changed() => {}
            }
        }
    }

    /// Sends one batch of due rows; `true` when the batch was full (more may be due).
    async fn send_due(&self, channel: Channel, shutdown: &CancellationToken) -> Result<bool, sqlx::Error> {
        let leased = store::lease_due(&self.db, channel, self.config.batch, self.config.lease).await?;
        let full = leased.len() >= self.config.batch as usize;
        let send_timeout = self.config.lease / 2;
        futures::stream::iter(leased)
            .for_each_concurrent(None, |delivery| async move {
                let outcome = tokio::select! {
                    // Left leased: another worker (or this one after a restart) sends it.
                    () = shutdown.cancelled() => return,
                    outcome = tokio::time::timeout(send_timeout, self.sender.send(&delivery)) => outcome,
                };
                let outcome = outcome.unwrap_or_else(|_| Err(SendError::Retry("the send took too long".into())));
                self.record(&delivery, outcome).await;
            })
            .await;
        Ok(full)
    }

    async fn record(&self, delivery: &Delivery, outcome: Result<(), SendError>) {
        let channel = delivery.channel.as_str();
        let recorded = match outcome {
            Ok(()) => {
                metrics::counter!("rapat_delivery_delivered_total", "channel" => channel).increment(1);
                store::mark_delivered(&self.db, delivery.id).await
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(delivery = %delivery.id, channel, %error, "delivery failed for good");
                store::mark_failed(&self.db, delivery.id, &error).await
            }
            Err(SendError::Retry(error)) => {
                let since_first_due = (Utc::now() - delivery.enqueued_at).to_std().unwrap_or_default();
                match self.config.retry.after_failure(delivery.attempts, since_first_due) {
                    NextStep::RetryIn(delay) => {
                        tracing::info!(delivery = %delivery.id, channel, %error, ?delay, "delivery will be retried");
                        store::mark_retry(&self.db, delivery.id, delay, &error).await
                    }
                    NextStep::GiveUp => {
                        tracing::warn!(delivery = %delivery.id, channel, %error, "delivery failed after its retries");
                        store::mark_failed(&self.db, delivery.id, &error).await
                    }
                }
            }
        };
        // The lease runs out and the row is sent again: at least once still holds.
        if let Err(error) = recorded {
            tracing::warn!(delivery = %delivery.id, channel, %error, "cannot record a delivery's outcome");
        }
    }

    async fn until_next_due(&self, channel: Channel) -> Duration {
        match store::next_due(&self.db, channel).await {
            Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or_default().min(self.config.poll_every),
            Ok(None) => self.config.poll_every,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox's next due row");
                self.config.poll_every
            }
        }
    }

    async fn housekeeping(&self, channel: Channel) {
        match store::counts(&self.db, channel).await {
            Ok(counts) => counts.export(channel.as_str()),
            Err(error) => tracing::warn!(%error, "cannot count the outbox"),
        }
        if let Err(error) = store::delete_delivered_before(&self.db, crate::KEEP_DELIVERED).await {
            tracing::warn!(%error, "cannot delete old delivered rows");
        }
    }
}
