//! Rebuilding a projection from the stream: empty it, then replay every message.
//!
//! The reset starts a new epoch in the same transaction that empties the tables, so
//! whichever instance is active notices it and replays from the start. If no
//! instance is active (or the active one dies on the way) the rebuild takes the
//! projection's lock and replays it itself, until the position the stream had when
//! the rebuild began.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::projector::{
    Locked, Projection, ProjectionLock, ProjectorConfig, load_checkpoint, reset_projection, run_locked,
};

/// How far a rebuild is, reported while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildProgress {
    pub projection: Projection,
    /// Stream sequence the projection has applied up to.
    pub applied_sequence: u64,
    /// Stream sequence of the projection's last message when the rebuild began.
    pub target_sequence: u64,
    /// Events applied since the reset.
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RebuildReport {
    pub projection: Projection,
    pub target_sequence: u64,
    /// Events applied by the replay (parked ones excluded).
    pub events: u64,
    pub elapsed: Duration,
    pub events_per_second: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    Nats(String),
}

/// How often the rebuild looks at the checkpoint (and reports progress).
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Empties `projection`'s read model and replays the stream into it, reporting
/// progress until the projection has reached the stream's position at the start.
pub async fn rebuild(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    progress: impl Fn(RebuildProgress),
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    reset_projection(pool, projection).await?;
    let target_sequence = last_sequence(jetstream, config, projection).await?;
    tracing::info!(%projection, target_sequence, "rebuilding");

    // Set when this call replays the projection itself.
    let mut own_run: Option<(CancellationToken, tokio::task::JoinHandle<Locked>)> = None;
    let outcome: Result<u64, RebuildError> = loop {
        let checkpoint = match load_checkpoint(pool, projection).await {
            Ok(checkpoint) => checkpoint,
            Err(error) => break Err(error.into()),
        };
        progress(RebuildProgress {
            projection,
            applied_sequence: checkpoint.last_sequence,
            target_sequence,
            events: checkpoint.applied_events,
        });
        if checkpoint.last_sequence >= target_sequence {
            break Ok(checkpoint.applied_events);
        }
        let running = own_run.as_ref().is_some_and(|(_, task)| !task.is_finished());
        if !running {
            // Nobody may be replaying (no projector runs, or the active one died):
            // take over whenever the lock is free.
            match ProjectionLock::try_acquire(pool, projection).await {
                Ok(Some(lock)) => {
                    tracing::info!(%projection, "no active instance; the rebuild replays the projection itself");
                    own_run = Some(spawn_run(pool, jetstream, config, projection, lock));
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%projection, %error, "cannot try the projection lock"),
            }
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    };
    if let Some((stop, task)) = own_run {
        // Hand the projection back: the lock is released and a standby takes over.
        stop.cancel();
        let _ = task.await;
    }
    let events = outcome?;
    let elapsed = started.elapsed();
    let events_per_second = if elapsed.as_secs_f64() > 0.0 { events as f64 / elapsed.as_secs_f64() } else { 0.0 };
    Ok(RebuildReport { projection, target_sequence, events, elapsed, events_per_second })
}

fn spawn_run(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    lock: ProjectionLock,
) -> (CancellationToken, tokio::task::JoinHandle<Locked>) {
    let stop = CancellationToken::new();
    let (pool, jetstream, config, token) = (pool.clone(), jetstream.clone(), config.clone(), stop.clone());
    let task =
        tokio::spawn(async move { run_locked(&pool, &jetstream, &config, projection, lock, &token).await });
    (stop, task)
}

/// Stream sequence of the last message the projection reads (0 if none): read with
/// a short-lived consumer delivering the last message matching the filter, since a
/// filtered projection never reaches the stream's own last sequence.
async fn last_sequence(
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
) -> Result<u64, RebuildError> {
    let nats = |what: &str, error: &dyn std::fmt::Display| RebuildError::Nats(format!("{what}: {error}"));
    let stream = jetstream.get_stream(&config.stream).await.map_err(|e| nats("stream", &e))?;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::Last,
            ack_policy: AckPolicy::None,
            filter_subject: projection.filter_subject(&config.subject_prefix),
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| nats("creating a probe consumer", &e))?;
    let mut last = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .map_err(|e| nats("fetching the last message", &e))?;
    let sequence = match last.next().await {
        Some(Ok(message)) => message.info().map_err(|e| nats("message metadata", &e))?.stream_sequence,
        Some(Err(error)) => return Err(nats("fetching the last message", &error)),
        // No message matches the filter: nothing to replay.
        None => 0,
    };
    let name = consumer.cached_info().name.clone();
    if let Err(error) = stream.delete_consumer(&name).await {
        // It expires on its own after `inactive_threshold`.
        tracing::debug!(%error, "deleting the probe consumer");
    }
    Ok(sequence)
}
