//! Running one projection: wait for the lock, (re)create the consumer from the
//! Postgres checkpoint, apply batches, ack after commit.
//!
//! Rules that make each message apply exactly once:
//! - the consumer always starts at `checkpoint + 1`, the checkpoint read from Postgres;
//! - a batch is one transaction that first locks the checkpoint row, skips every
//!   message at or below it, and moves it in the same commit;
//! - anything going wrong with a batch (other than a poison message) drops the
//!   consumer and starts again from the checkpoint, so messages are never applied
//!   out of order after a partial failure;
//! - acks come after the commit (one per batch, `AckPolicy::All`); a lost ack only
//!   means a redelivery, which is skipped;
//! - skipping is only right on the stream the checkpoint was written against, so
//!   that is checked (`stream_check.rs`) on start, every `stream_check`, after a NATS
//!   reconnect and before any batch that starts at or below the known position; a
//!   mismatch is recovered from by a rebuild (`recover.rs`), never skipped over.
//!
//! Outages (Postgres or NATS) are retried every `max_backoff` at most, and logged
//! once when they start and once when they end.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Message, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::checkpoint::{advance, announce, load_checkpoint, lock_for_batch};
use super::gather::{Gathered, gather, waited_for};
use super::lock::ProjectionLock;
use super::parking::park;
use super::recover::recover_from_mismatch;
use super::stream_check::{MessageMark, verify};
use super::{Projection, ProjectorConfig, ProjectorError};
use crate::models::{ApplyError, apply_batch as apply_batch_of, apply_message};
use crate::positions::{announce_locally, database_key};

/// Runs `projection` until `shutdown`: as the active instance while it holds the
/// projection's lock, as a standby retrying every `standby_retry` otherwise.
/// Outages of Postgres or NATS are retried with backoff; this returns an error only
/// for a configuration that can never work.
pub async fn run_projection(
    pool: PgPool,
    jetstream: jetstream::Context,
    config: ProjectorConfig,
    projection: Projection,
    shutdown: CancellationToken,
) -> Result<(), ProjectorError> {
    config.validate()?;
    let mut backoff = Backoff::new(config.max_backoff);
    let mut outage = Outage::new(projection);
    let mut standing_by = false;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let wait = match ProjectionLock::try_acquire(&pool, projection).await {
            Ok(Some(lock)) => {
                if outage.since.is_none() {
                    tracing::info!(%projection, "active instance for this projection");
                }
                standing_by = false;
                backoff.reset();
                match run_locked(&pool, &jetstream, &config, projection, lock, &shutdown, &mut outage).await {
                    Locked::Stopped => return Ok(()),
                    Locked::LockLost => {
                        outage.failed("lost the projection lock (its database connection)", &"connection closed");
                        continue;
                    }
                }
            }
            Ok(None) => {
                // The database answers; a standby has nothing else to wait for.
                outage.ended();
                if !standing_by {
                    tracing::info!(%projection, "another instance is active; standing by");
                    standing_by = true;
                }
                config.standby_retry
            }
            Err(error) => {
                outage.failed("cannot reach the read database for the projection lock", &error);
                backoff.next()
            }
        };
        if sleep_or_shutdown(wait, &shutdown).await {
            return Ok(());
        }
    }
}

pub(crate) enum Locked {
    /// `shutdown` was cancelled; the lock was released.
    Stopped,
    /// The lock's connection died: another instance may be active now.
    LockLost,
}

/// Runs the projection while holding its lock, until `shutdown` or until the lock
/// is lost.
pub(crate) async fn run_locked(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    mut lock: ProjectionLock,
    shutdown: &CancellationToken,
    outage: &mut Outage,
) -> Locked {
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        let at = Consuming { pool, jetstream, config, projection };
        let outcome = consume(&at, &mut lock, shutdown, &mut backoff, outage).await;
        let error = match outcome {
            Ok(Consumed::Stopped) => {
                lock.release().await;
                return Locked::Stopped;
            }
            Ok(Consumed::LockLost) => return Locked::LockLost,
            Ok(Consumed::Mismatch(why)) => {
                // Holding the lock: no other instance applies batches meanwhile.
                match recover_from_mismatch(pool, jetstream, config, projection, &why).await {
                    Ok(()) => continue,
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        outage.failed("projection batch failed; restarting from the checkpoint", &error);
        if sleep_or_shutdown(backoff.next(), shutdown).await {
            lock.release().await;
            return Locked::Stopped;
        }
        if !lock.still_held().await {
            return Locked::LockLost;
        }
    }
}

enum Consumed {
    Stopped,
    LockLost,
    /// The read model holds messages the stream no longer has: why.
    Mismatch(String),
}

/// What `consume` works on.
struct Consuming<'a> {
    pool: &'a PgPool,
    jetstream: &'a jetstream::Context,
    config: &'a ProjectorConfig,
    projection: Projection,
}

impl Consuming<'_> {
    /// Compares the checkpoint as it is now with the stream; `Some(why)` on a
    /// mismatch. `created_ns` is the stream the consumer reads: another one means
    /// the consumer must be made again.
    async fn stream_mismatch(&self, created_ns: i64) -> Result<Option<String>, ProjectorError> {
        let checkpoint = load_checkpoint(self.pool, self.projection).await?;
        if let Some(why) = checkpoint.stream_mismatch {
            return Ok(Some(why));
        }
        let verified = verify(self.jetstream, self.config, &checkpoint).await?;
        if verified.mismatch.is_none() && verified.created_ns != created_ns {
            return Err(ProjectorError::Nats("the stream was replaced under the consumer".into()));
        }
        Ok(verified.mismatch)
    }
}

/// When the stream was last compared with the checkpoint, and whether NATS has
/// reconnected since (a restarted NATS may have lost the stream's tail without
/// breaking the pull subscription).
struct StreamWatch {
    connects: Arc<async_nats::Statistics>,
    connects_seen: u64,
    checked: Instant,
    every: Duration,
}

impl StreamWatch {
    fn new(jetstream: &jetstream::Context, every: Duration) -> Self {
        let connects = jetstream.client().statistics();
        let connects_seen = connects.connects.load(Ordering::Relaxed);
        Self { connects, connects_seen, checked: Instant::now(), every }
    }

    fn due(&self) -> bool {
        self.checked.elapsed() >= self.every || self.connects.connects.load(Ordering::Relaxed) != self.connects_seen
    }

    fn checked(&mut self) {
        self.connects_seen = self.connects.connects.load(Ordering::Relaxed);
        self.checked = Instant::now();
    }
}

enum Batch {
    /// Applied what followed stream sequence `after`, up to `up_to`.
    Committed { after: u64, up_to: u64 },
    /// A message could not be applied; the attempt was rolled back.
    Poisoned,
}

async fn consume(
    at: &Consuming<'_>,
    lock: &mut ProjectionLock,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
    outage: &mut Outage,
) -> Result<Consumed, ProjectorError> {
    let Consuming { pool, jetstream, config, projection } = *at;
    let checkpoint = load_checkpoint(pool, projection).await?;
    if let Some(why) = checkpoint.stream_mismatch {
        // Found before (perhaps by a process that died before it could rebuild).
        return Ok(Consumed::Mismatch(why));
    }
    let mut watch = StreamWatch::new(jetstream, config.stream_check);
    let verified = verify(jetstream, config, &checkpoint).await?;
    if let Some(why) = verified.mismatch {
        return Ok(Consumed::Mismatch(why));
    }
    let stream_created_ns = verified.created_ns;
    let consumer = recreate_consumer(jetstream, config, projection, checkpoint.last_sequence + 1).await?;
    let mut messages =
        consumer.stream().max_messages_per_batch(config.batch_size).messages().await.map_err(|error| {
            ProjectorError::Nats(format!("pulling from {}: {error}", config.consumer_name(projection)))
        })?;
    tracing::debug!(%projection, from = checkpoint.last_sequence + 1, "consuming");
    outage.ended();
    let mut lock_checked = Instant::now();
    let database = database_key(pool);
    // The last position this loop committed or started from: a message at or below
    // it is a redelivery, or a sign of a stream that lost its tail.
    let mut position = checkpoint.last_sequence;

    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(Consumed::Stopped),
            next = tokio::time::timeout(config.idle_check, messages.next()) => next,
        };
        let first = match next {
            Err(_idle) => {
                // Nothing to do: make sure we are still the active instance, and
                // that the stream is still the one the checkpoint stands for.
                if !lock.still_held().await {
                    return Ok(Consumed::LockLost);
                }
                lock_checked = Instant::now();
                if watch.due() {
                    if let Some(why) = at.stream_mismatch(stream_created_ns).await? {
                        return Ok(Consumed::Mismatch(why));
                    }
                    watch.checked();
                }
                continue;
            }
            Ok(None) => return Err(ProjectorError::Nats("the message stream ended".into())),
            Ok(Some(Err(error))) => return Err(ProjectorError::Nats(format!("receiving: {error}"))),
            Ok(Some(Ok(message))) => message,
        };
        // Take whatever else has already arrived, up to a batch: under load one
        // transaction carries many messages, when quiet a message a write waits for
        // waits for nothing. A batch no write waits for lingers (`gather.rs`).
        let Gathered { batch, failed } =
            gather(&mut messages, first, config.batch_size, config.linger, |message: &Message| {
                waited_for(projection, message.subject.as_str())
            })
            .await;
        // Stage timing for `gateway/benches/rest.rs` (off unless traced).
        tracing::trace!(target: "rapat::latency", projection = projection.name(), first = sequence_or_0(&batch[0]),
            last = batch.last().map_or(0, sequence_or_0), messages = batch.len(), "fetched");
        if lock_checked.elapsed() > config.idle_check {
            if !lock.still_held().await {
                return Ok(Consumed::LockLost);
            }
            lock_checked = Instant::now();
        }
        // Before anything in this batch is skipped as applied, or applied on top of
        // a checkpoint of another stream.
        if watch.due() || stream_sequence(&batch[0])? <= position {
            if let Some(why) = at.stream_mismatch(stream_created_ns).await? {
                return Ok(Consumed::Mismatch(why));
            }
            watch.checked();
        }

        match apply_batch(lock.connection(), projection, stream_created_ns, &batch).await? {
            Batch::Poisoned => return Err(ProjectorError::Task("a batch stayed poisoned message by message".into())),
            Batch::Committed { after, up_to } => {
                tracing::trace!(target: "rapat::latency", projection = projection.name(), first = sequence_or_0(&batch[0]),
                    last = batch.last().map_or(0, sequence_or_0), "committed");
                backoff.reset();
                outage.ended();
                // Wakes the writers waiting for this position: those of this process
                // at once, those of the others through a NOTIFY, sent aside so that
                // the next batch need not wait for it (the followers ignore a
                // position heard after a higher one). Lost, it costs them the
                // follower's next reload (100 ms), never a wrong answer.
                if up_to > after {
                    announce_locally(&database, projection, up_to);
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        if let Err(error) = announce(&pool, projection).await {
                            tracing::debug!(%projection, %error, "cannot announce the checkpoint");
                        }
                    });
                }
                if projection == Projection::Notifications && up_to > after {
                    // After the commit: a push lost to a crash here costs liveness only.
                    super::live::publish_added(pool, jetstream.client(), &config.namespace, after, up_to).await;
                }
                // With AckPolicy::All, acking the last message acks the whole batch.
                // A lost ack costs a redelivery, which the checkpoint skips.
                if let Some(last) = batch.last() {
                    position = position.max(stream_sequence(last)?);
                    if let Err(error) = last.ack().await {
                        tracing::debug!(%projection, %error, "ack failed");
                    }
                }
            }
        }
        if let Some(error) = failed {
            return Err(ProjectorError::Nats(format!("receiving: {error}")));
        }
    }
}

/// Applies `batch` in one transaction, moving the checkpoint before the commit.
/// The common case runs without savepoints (two round trips fewer per message);
/// only a batch that meets a poison message is redone message by message, so that
/// the poison can be parked and the rest applied.
///
/// It runs on the connection that holds the projection's lock, not on one from
/// the pool: a pooled connection is pinged when taken and again when given back
/// (a round trip each, the first on the batch's path), and under load the batch
/// would queue for one behind the gateway's reads. That connection lost, the
/// batch fails and the lock with it, as when the pool's connection is lost.
async fn apply_batch(
    connection: &mut PgConnection,
    projection: Projection,
    stream_created_ns: i64,
    batch: &[Message],
) -> Result<Batch, ProjectorError> {
    // A span per traced message, open while its batch is applied, so the trace of
    // the request that caused an event shows the projections that applied it.
    let spans: Vec<tracing::Span> = batch
        .iter()
        .filter(|message| message.headers.as_ref().is_some_and(|headers| headers.get("traceparent").is_some()))
        .map(|message| {
            let span =
                tracing::info_span!("projection.apply", projection = projection.name(), subject = %message.subject);
            rapat_telemetry::continue_nats_trace(&span, message.headers.as_ref());
            span
        })
        .collect();
    let applied = match apply_batch_as(connection, projection, stream_created_ns, batch, Isolation::Together).await? {
        Batch::Poisoned => {
            apply_batch_as(connection, projection, stream_created_ns, batch, Isolation::PerMessage).await
        }
        done => Ok(done),
    };
    drop(spans);
    applied
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// All messages in one transaction; any poison aborts the attempt.
    Together,
    /// A savepoint around each message, so a poison one can be rolled back and parked.
    PerMessage,
}

async fn apply_batch_as(
    connection: &mut PgConnection,
    projection: Projection,
    stream_created_ns: i64,
    batch: &[Message],
    isolation: Isolation,
) -> Result<Batch, ProjectorError> {
    // The commit waits for its WAL flush (the database's `synchronous_commit`, `on`
    // by default): a writer is answered once this commit is visible, and a read model
    // that a Postgres crash rolled back would show that writer its write gone until
    // the replay repairs it. Skipping the flush saved about 2 ms of a 10 ms
    // read-your-writes wait (README, "Read side").
    // Stage timing inside the batch for `gateway/benches/rest.rs` (off unless traced).
    // The fields are read only when traced: nothing on the batch's path otherwise.
    let stage = |name: &str| {
        tracing::trace!(target: "rapat::latency", projection = projection.name(), first = sequence_or_0(&batch[0]),
            last = batch.last().map_or(0, sequence_or_0), "{name}");
    };
    let mut tx = connection.begin().await?;
    stage("begun");
    let mut last = lock_for_batch(&mut tx, projection).await?;
    stage("locked");
    let after = last;
    // The message that moves the checkpoint: its mark is recorded with it.
    let mut last_message = None;
    let mut applied_events = 0;
    if isolation == Isolation::Together {
        // Every new message in one call (`models::apply_batch`): the audit trail
        // appends them in one statement, rooms fold them in memory and write
        // set-based, the others go message by message; any poison aborts the attempt.
        let mut fresh = Vec::with_capacity(batch.len());
        for message in batch {
            let sequence = stream_sequence(message)?;
            if sequence > last {
                fresh.push((sequence, message.payload.as_ref()));
                last = sequence;
                last_message = Some(message);
            }
        }
        match apply_batch_of(&mut tx, projection, &fresh).await {
            Ok(events) => applied_events = events,
            Err(ApplyError::Poison(_)) => {
                tx.rollback().await?;
                return Ok(Batch::Poisoned);
            }
            Err(ApplyError::Transient(error)) => return Err(error.into()),
        }
        stage("applied");
    } else {
        for message in batch {
            let sequence = stream_sequence(message)?;
            if sequence <= last {
                // Applied by an earlier transaction: a redelivery, or a batch of an
                // instance that was active a moment ago.
                continue;
            }
            sqlx::query("SAVEPOINT message").execute(&mut *tx).await?;
            match apply_message(&mut tx, projection, sequence, &message.payload).await {
                Ok(events) => applied_events += events,
                Err(ApplyError::Poison(reason)) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT message").execute(&mut *tx).await?;
                    park(&mut tx, projection, sequence, message.subject.as_str(), &reason, &message.payload).await?;
                }
                Err(ApplyError::Transient(error)) => return Err(error.into()),
            }
            sqlx::query("RELEASE SAVEPOINT message").execute(&mut *tx).await?;
            last = sequence;
            last_message = Some(message);
        }
    }
    if let Some(message) = last_message {
        advance(&mut tx, projection, &mark(message)?, stream_created_ns, applied_events).await?;
        stage("advanced");
    }
    tx.commit().await?;
    record_progress(projection, last, applied_events);
    Ok(Batch::Committed { after, up_to: last })
}

/// Exposed at `/metrics`: how far each projection is, and how fast it moves.
fn record_progress(projection: Projection, last_sequence: u64, applied_events: u64) {
    metrics::counter!("rapat_projection_events_total", "projection" => projection.name()).increment(applied_events);
    metrics::gauge!("rapat_projection_position", "projection" => projection.name()).set(last_sequence as f64);
}

fn mark(message: &Message) -> Result<MessageMark, ProjectorError> {
    MessageMark::of(message).map_err(ProjectorError::Nats)
}

fn stream_sequence(message: &Message) -> Result<u64, ProjectorError> {
    message
        .info()
        .map(|info| info.stream_sequence)
        .map_err(|error| ProjectorError::Nats(format!("message without JetStream metadata: {error}")))
}

fn sequence_or_0(message: &Message) -> u64 {
    stream_sequence(message).unwrap_or(0)
}

/// Replaces the projection's durable consumer with one starting at `start_sequence`.
/// The old one is deleted first: JetStream cannot move an existing consumer's start.
async fn recreate_consumer(
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    start_sequence: u64,
) -> Result<jetstream::consumer::Consumer<pull::Config>, ProjectorError> {
    let stream_name = config.namespace.events_stream();
    let stream = jetstream
        .get_stream(&stream_name)
        .await
        .map_err(|error| ProjectorError::Nats(format!("stream {stream_name}: {error}")))?;
    let name = config.consumer_name(projection);
    if let Err(error) = stream.delete_consumer(&name).await {
        // Usually "not found"; if it is an outage the create below fails too.
        tracing::debug!(%projection, %error, "deleting the old consumer");
    }
    let consumer_config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("rapat projection {}", projection.name())),
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
        ack_policy: AckPolicy::All,
        ack_wait: config.ack_wait,
        filter_subject: projection.filter_subject(&config.namespace),
        max_ack_pending: i64::try_from(config.batch_size.saturating_mul(4)).unwrap_or(i64::MAX).max(1000),
        ..Default::default()
    };
    stream
        .create_consumer(consumer_config)
        .await
        .map_err(|error| ProjectorError::Nats(format!("creating consumer {name}: {error}")))
}

/// True if `shutdown` was cancelled before `duration` passed.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// An outage of the read database or NATS as this projection meets it: logged
/// once when it starts and once when it ends, each retry in between at debug
/// level, so a long outage does not flood the log.
pub(crate) struct Outage {
    projection: Projection,
    since: Option<Instant>,
}

impl Outage {
    fn new(projection: Projection) -> Self {
        Self { projection, since: None }
    }

    fn failed(&mut self, what: &str, error: &dyn Display) {
        let projection = self.projection;
        if self.since.is_none() {
            tracing::warn!(%projection, %error, "{what}; retrying until it works");
            self.since = Some(Instant::now());
        } else {
            tracing::debug!(%projection, %error, "{what}; still retrying");
        }
    }

    fn ended(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(projection = %self.projection, after = ?since.elapsed(), "read database and NATS reachable again after an outage");
        }
    }
}

/// Doubling pauses between retries, from 100 ms up to a ceiling.
struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(max: Duration) -> Self {
        Self { current: Self::FIRST, max }
    }

    fn next(&mut self) -> Duration {
        let wait = self.current.min(self.max);
        self.current = (self.current * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.current = Self::FIRST;
    }
}
