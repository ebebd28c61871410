//! The projector: one durable JetStream consumer per projection, applying the stream
//! to Postgres read models.
//!
//! - `lock.rs`: one active instance per projection across processes.
//! - `checkpoint.rs`: the position of each projection, Postgres being its truth.
//! - `runner.rs`: consume, apply a batch in one transaction, ack.
//! - `gather.rs`: what one batch holds, and which batches linger to grow.
//! - `live.rs`: after a notifications batch commits, push its new rows on core NATS.
//! - `parking.rs`: messages that can never be applied.
//! - `stream_check.rs`: is the stream still the one the checkpoint was written on?
//! - `recover.rs`: when it is not, rebuild the read model from the stream.

mod checkpoint;
mod gather;
mod live;
mod lock;
mod parking;
mod recover;
mod runner;
mod stream_check;

use std::fmt;
use std::time::Duration;

use async_nats::jetstream;
use rapat_wire::Namespace;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{CHECKPOINT_CHANNEL, Checkpoint, load_checkpoint};
pub use gather::read_models_of;
pub use lock::AdvisoryLock;
pub use runner::run_projection;
pub use stream_check::MessageMark;

pub(crate) use checkpoint::{MISMATCH, ensure_row, lock_for_batch, set_rebuilt};
pub(crate) use parking::park;

/// A read model fed by the stream, and so one consumer and one checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projection {
    Accounts,
    Sessions,
    Contacts,
    Rooms,
    Audit,
    Analytics,
    EmailClaims,
    Invitations,
    Settings,
    Notifications,
    Webhooks,
    PushSubscriptions,
}

impl Projection {
    pub const ALL: [Projection; 12] = [
        Self::Accounts,
        Self::Sessions,
        Self::Contacts,
        Self::Rooms,
        Self::Audit,
        Self::Analytics,
        Self::EmailClaims,
        Self::Invitations,
        Self::Settings,
        Self::Notifications,
        Self::Webhooks,
        Self::PushSubscriptions,
    ];

    /// Stable name: the checkpoint row, the consumer name and the lock key.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Sessions => "sessions",
            Self::Contacts => "contacts",
            Self::Rooms => "rooms",
            Self::Audit => "audit",
            Self::Analytics => "analytics",
            Self::EmailClaims => "email_claims",
            Self::Invitations => "invitations",
            Self::Settings => "settings",
            Self::Notifications => "notifications",
            Self::Webhooks => "webhooks",
            Self::PushSubscriptions => "push_subscriptions",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|projection| projection.name() == name)
    }

    /// The subjects this projection reads: one aggregate type, or all of them for
    /// the audit trail. (NATS 2.9 consumers take a single filter.)
    pub fn filter_subject(self, namespace: &Namespace) -> String {
        match self.aggregate_type() {
            Some(aggregate_type) => namespace.event_subjects_of(aggregate_type),
            None => namespace.all_event_subjects(),
        }
    }

    /// The aggregate type whose events this projection reads; `None` for all.
    pub fn aggregate_type(self) -> Option<&'static str> {
        match self {
            Self::Accounts => Some("account"),
            Self::Sessions => Some("session"),
            Self::Contacts => Some("contacts"),
            Self::Rooms | Self::Analytics => Some("room"),
            Self::EmailClaims => Some("email"),
            Self::Invitations => Some("invitation"),
            Self::Settings => Some("settings"),
            Self::PushSubscriptions => Some("push"),
            // Notifications follow rooms, invitations, settings, contacts and
            // inboxes; webhooks may want any event.
            Self::Audit | Self::Notifications | Self::Webhooks => None,
        }
    }

    /// The read-model tables this projection owns (replaced by a rebuild).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Accounts => &["users"],
            Self::Sessions => &["sessions"],
            Self::Contacts => &["contacts"],
            Self::Rooms => &["rooms", "participants", "track_recordings"],
            Self::Audit => &["audit_events"],
            Self::Analytics => &[
                "analytics_room_days",
                "analytics_room_participants",
                "analytics_open_stays",
                "analytics_open_meetings",
            ],
            Self::EmailClaims => &["email_claims"],
            Self::Invitations => &["invitations"],
            Self::Settings => &["user_settings"],
            Self::Notifications => &[
                "notifications",
                "notification_rooms",
                "notification_invitees",
                "notification_settings",
                "notification_users",
                "reminder_timers",
                "reminders_fired",
            ],
            // Not `webhook_deliveries` nor `webhook_leases`: the delivery queue is
            // never rebuilt (see `models/webhooks.rs`).
            Self::Webhooks => &["webhook_endpoints"],
            Self::PushSubscriptions => &["push_subscriptions"],
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Accounts => 0,
            Self::Sessions => 1,
            Self::Contacts => 2,
            Self::Rooms => 3,
            Self::Audit => 4,
            Self::Analytics => 5,
            Self::EmailClaims => 6,
            Self::Invitations => 7,
            Self::Settings => 8,
            Self::Notifications => 9,
            Self::Webhooks => 10,
            Self::PushSubscriptions => 11,
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the projector finds the stream (its namespace) and how it consumes it.
#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    /// The stream, its subjects and the durable consumers are this namespace's
    /// names: `rapat` gives stream `RAPAT_EVENTS`, subjects `rapat.events.>` and
    /// consumers `rapat_projection_<name>`, the stream the write side keeps.
    pub namespace: Namespace,
    /// Most messages applied in one Postgres transaction.
    pub batch_size: usize,
    /// How long a batch that no write waits for (`read_models_of`) goes on
    /// gathering messages before it is applied; zero applies every batch at once.
    pub linger: Duration,
    /// How long to wait for a message before checking that the lock is still held.
    pub idle_check: Duration,
    /// How often a standby instance tries to take over.
    pub standby_retry: Duration,
    /// Longest pause between retries after a database or NATS outage: how late,
    /// at most, a projection notices that they are back.
    pub max_backoff: Duration,
    /// How often a running projection compares its checkpoint with the stream
    /// (besides on start, after a NATS reconnect and before a batch that starts at
    /// or below its position), to find a stream that lost its tail or was replaced.
    pub stream_check: Duration,
    /// How long JetStream waits for an ack before delivering a message again.
    /// Redeliveries are harmless (the checkpoint skips them), so this only needs to
    /// be longer than a batch usually takes.
    pub ack_wait: Duration,
}

impl ProjectorConfig {
    /// `linger` unless set otherwise (`RAPAT_PROJECTION_LINGER_MS`).
    pub const DEFAULT_LINGER_MS: u64 = 50;
    /// The longest `linger` the `rapat` binary takes: longer, those read models
    /// would lag by more than anyone reading them would wait.
    pub const MAX_LINGER_MS: u64 = 10_000;

    /// The projector of `namespace`, with the production settings.
    pub fn for_namespace(namespace: Namespace) -> Self {
        Self {
            namespace,
            batch_size: 500,
            linger: Duration::from_millis(Self::DEFAULT_LINGER_MS),
            idle_check: Duration::from_millis(500),
            standby_retry: Duration::from_secs(1),
            max_backoff: Duration::from_millis(500),
            stream_check: Duration::from_secs(5),
            ack_wait: Duration::from_secs(60),
        }
    }

    pub fn consumer_name(&self, projection: Projection) -> String {
        self.namespace.projection_consumer(projection.name())
    }

    /// The names need no check: a `Namespace` parses only if every name derived from it is valid.
    fn validate(&self) -> Result<(), ProjectorError> {
        if self.batch_size == 0 {
            return Err(ProjectorError::Config("batch_size must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The configuration can never work; retrying would not help.
    #[error("projector configuration: {0}")]
    Config(String),
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("projection task failed: {0}")]
    Task(String),
}

/// Runs every projection as its own task until `shutdown` is cancelled. Each task
/// retries outages by itself, so this returns early only when one fails for good.
pub async fn run_all(
    pool: PgPool,
    jetstream: jetstream::Context,
    config: ProjectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProjectorError> {
    config.validate()?;
    let mut tasks = tokio::task::JoinSet::new();
    for projection in Projection::ALL {
        let (pool, jetstream, config, shutdown) = (pool.clone(), jetstream.clone(), config.clone(), shutdown.clone());
        tasks.spawn(async move { run_projection(pool, jetstream, config, projection, shutdown).await });
    }
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|error| ProjectorError::Task(error.to_string())).and_then(|result| result);
        if let Err(error) = result {
            tracing::error!(%error, "a projection stopped");
            // One broken projection stops the others: a process half-projecting
            // would look healthy while serving stale reads.
            shutdown.cancel();
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_filters_follow_the_namespace() {
        for projection in Projection::ALL {
            assert_eq!(Projection::parse(projection.name()), Some(projection));
            assert_eq!(Projection::ALL[projection.index()], projection);
        }
        assert_eq!(Projection::parse("nope"), None);
        let namespace = Namespace::parse("rapat").expect("valid");
        assert_eq!(Projection::Rooms.filter_subject(&namespace), "rapat.events.room.>");
        assert_eq!(Projection::Audit.filter_subject(&namespace), "rapat.events.>");
        let config = ProjectorConfig::for_namespace(namespace);
        assert_eq!(config.consumer_name(Projection::Sessions), "rapat_projection_sessions");
        assert!(config.validate().is_ok());
        assert!(ProjectorConfig { batch_size: 0, ..config }.validate().is_err());
    }
}
