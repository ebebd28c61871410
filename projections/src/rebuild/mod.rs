//! Rebuilding a projection from the stream without taking its read model away.
//!
//! The new read model is built in a shadow schema (`shadow.rs`) by replaying the
//! projection's messages from the first one with the projector's own model code
//! (`replay.rs`), while the live tables keep serving and the live projector keeps
//! moving them. Once the shadow is close to the live checkpoint, one transaction
//! locks the checkpoint row (waiting for the projector's current batch and holding
//! off its next one), applies what the shadow still lacks up to that checkpoint,
//! swaps the tables, and leaves the checkpoint at the shadow's position: the
//! projector goes on from there on the new tables, skipping whatever the rebuild
//! already applied.
//!
//! The shadow's position lives in memory only: a rebuild that dies starts over, and
//! drops the leftover shadow first.

mod replay;
mod shadow;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};

use crate::db::database_code;
use crate::projector::{Projection, ProjectorConfig, ensure_row, load_checkpoint, lock_for_batch, set_rebuilt};
use replay::{Position, Source, apply_to_shadow};
use shadow::Shadow;

/// How far a rebuild is, reported while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildProgress {
    pub projection: Projection,
    /// Stream sequence the new read model has applied up to.
    pub applied_sequence: u64,
    /// Stream sequence of the projection's last message when the rebuild began.
    pub target_sequence: u64,
    /// Events applied by the replay so far.
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RebuildReport {
    pub projection: Projection,
    /// Stream sequence of the projection's last message when the rebuild began.
    pub target_sequence: u64,
    /// Stream sequence the new read model had applied when it replaced the old one:
    /// `target_sequence`, or later if events kept coming during the rebuild.
    pub switched_at_sequence: u64,
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
    #[error("another rebuild of {0} is running")]
    AlreadyRunning(Projection),
}

/// Messages per shadow transaction at least: a replay is throughput, not latency.
/// (Not much more: updates of one hot row within one transaction leave a version
/// chain that every later update of it walks.)
const REBUILD_BATCH: usize = 2000;

/// Rounds of catching up with the live checkpoint before switching anyway. If the
/// replay cannot outrun the live write rate it would chase it forever; the switch
/// then applies the remaining gap itself, holding the projector back meanwhile
/// (readers keep reading the old tables until the commit).
const CATCH_UP_ROUNDS: u32 = 5;

/// The switch waits at most this long for a lock (the checkpoint row behind a slow
/// batch, a live table behind a long read). Readers queue behind a waiting table
/// lock, so a long wait would be an outage; a timed-out switch is tried again.
const SWITCH_LOCK_TIMEOUT: &str = "2s";

/// First half of the advisory lock key of a running rebuild: the projector's own
/// ("rapa"), with the key's other half hashed from a different name.
const REBUILD_LOCK_CLASS: i32 = 0x7261_7061;

/// Switch attempts that may fail on a lock before the rebuild gives up.
const SWITCH_ATTEMPTS: u32 = 10;

/// Builds `projection`'s read model again from the stream in a shadow schema and
/// puts it in place of the live one atomically, reporting progress as it goes. The
/// live tables serve reads, and a running projector keeps applying new events,
/// throughout.
pub async fn rebuild(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    progress: impl Fn(RebuildProgress) + Sync,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let target_sequence = last_sequence(jetstream, config, projection).await?;
    tracing::info!(%projection, target_sequence, "rebuilding in a shadow schema");
    let report = |position: &Position| {
        progress(RebuildProgress {
            projection,
            applied_sequence: position.last_sequence,
            target_sequence,
            events: position.events,
        });
    };
    // A connection of its own: the shadow's search_path and prepared statements
    // stay apart from the pool that readers and the projector use.
    let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
    // Two rebuilds of one projection would share (and drop) one shadow schema. The
    // lock is the connection's: it goes with it, however the rebuild ends.
    let exclusive: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
        .bind(REBUILD_LOCK_CLASS)
        .bind(format!("rapat.rebuild.{}", projection.name()))
        .fetch_one(&mut connection)
        .await?;
    if !exclusive {
        let _ = connection.close().await;
        return Err(RebuildError::AlreadyRunning(projection));
    }
    let shadow = Shadow::create(&mut connection, projection).await?;
    let outcome = build_and_switch(pool, &mut connection, jetstream, config, &shadow, target_sequence, &report).await;
    if outcome.is_err()
        && let Err(error) = shadow.discard(&mut connection).await
    {
        // The next rebuild drops it anyway.
        tracing::warn!(%projection, %error, "could not drop the shadow schema of a failed rebuild");
    }
    let _ = connection.close().await;
    let position = outcome?;
    report(&position);
    let elapsed = started.elapsed();
    let events_per_second =
        if elapsed.as_secs_f64() > 0.0 { position.events as f64 / elapsed.as_secs_f64() } else { 0.0 };
    tracing::info!(%projection, switched_at = position.last_sequence, events = position.events, "rebuilt in place");
    Ok(RebuildReport {
        projection,
        target_sequence,
        switched_at_sequence: position.last_sequence,
        events: position.events,
        elapsed,
        events_per_second,
    })
}

/// Fills the shadow up to `target_sequence`, follows the live checkpoint until it
/// is near, then switches. Returns the position the new read model took over at.
async fn build_and_switch(
    pool: &PgPool,
    connection: &mut PgConnection,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    shadow: &Shadow,
    target_sequence: u64,
    report: &(dyn Fn(&Position) + Sync),
) -> Result<Position, RebuildError> {
    let batch_size = config.batch_size.max(REBUILD_BATCH);
    let target = Target { projection: shadow.projection(), shadow, batch_size };
    let mut source = Source::open(jetstream, config, target.projection).await?;
    let mut position = Position::default();
    report(&position);
    position = catch_up(connection, &mut source, &target, position, target_sequence, report).await?;
    shadow.analyze(connection).await?;
    let (mut failed_switches, mut rounds) = (0, 0);
    loop {
        // A plain read: while the shadow is far behind, catch up without holding
        // the live projector back. A live checkpoint with a stream mismatch stands
        // for messages the stream lost: there is nothing to catch up with.
        let live = load_checkpoint(pool, target.projection).await?;
        if live.stream_mismatch.is_none()
            && live.last_sequence > position.last_sequence.saturating_add(batch_size as u64)
            && rounds < CATCH_UP_ROUNDS
        {
            rounds += 1;
            position = catch_up(connection, &mut source, &target, position, live.last_sequence, report).await?;
            continue;
        }
        let mut taken = Vec::new();
        match switch(connection, &mut source, &target, position.clone(), &mut taken).await {
            Ok(switched) => return Ok(switched),
            Err(RebuildError::Database(error)) if is_lock_conflict(&error) && failed_switches + 1 < SWITCH_ATTEMPTS => {
                failed_switches += 1;
                tracing::warn!(projection = %target.projection, %error, "switch did not get its locks; trying again");
                // The rolled-back transaction had applied these: apply them again.
                source.give_back(taken);
                shadow.reset_sequences(connection).await?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// What the replay needs to know about the projection it rebuilds.
struct Target<'a> {
    projection: Projection,
    shadow: &'a Shadow,
    batch_size: usize,
}

/// Applies messages to the shadow, one committed transaction per batch, until it
/// has reached `until`.
async fn catch_up(
    connection: &mut PgConnection,
    source: &mut Source,
    target: &Target<'_>,
    mut position: Position,
    until: u64,
    report: &(dyn Fn(&Position) + Sync),
) -> Result<Position, RebuildError> {
    while position.last_sequence < until {
        let batch = source.next_batch(target.batch_size).await?;
        let mut tx = connection.begin().await?;
        // The shadow is thrown away if Postgres crashes, as for the live batches.
        sqlx::query("SET LOCAL synchronous_commit TO OFF").execute(&mut *tx).await?;
        sqlx::query(sqlx::AssertSqlSafe(target.shadow.search_path())).execute(&mut *tx).await?;
        position = apply_to_shadow(&mut tx, target.projection, position, &batch).await?;
        tx.commit().await?;
        report(&position);
    }
    Ok(position)
}

/// One transaction: lock the live checkpoint, bring the shadow to it, put the
/// shadow in place, leave the checkpoint at the shadow's position. The messages it
/// applied are left in `taken`, for a retry if it rolls back.
async fn switch(
    connection: &mut PgConnection,
    source: &mut Source,
    target: &Target<'_>,
    mut position: Position,
    taken: &mut Vec<async_nats::jetstream::Message>,
) -> Result<Position, RebuildError> {
    let projection = target.projection;
    let mut tx = connection.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}'")))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(target.shadow.search_path())).execute(&mut *tx).await?;
    ensure_row(&mut tx, projection).await?;
    // As every projector batch does first: this waits for the batch in progress and
    // holds off the next one until the commit, so `live` cannot move meanwhile.
    let live = lock_for_batch(&mut tx, projection).await?;
    // Under the row lock, so it cannot change before the commit.
    let mismatch: bool =
        sqlx::query_scalar("SELECT stream_mismatch IS NOT NULL FROM projection_checkpoints WHERE projection = $1")
            .bind(projection.name())
            .fetch_one(&mut *tx)
            .await?;
    // A mismatched checkpoint counts messages the stream no longer has: the shadow,
    // built from the stream as it is, replaces it from wherever it got to.
    while !mismatch && position.last_sequence < live {
        let batch = source.next_batch(target.batch_size).await?;
        position = apply_to_shadow(&mut tx, projection, position, &batch).await?;
        taken.extend(batch);
    }
    target.shadow.replace_live(&mut tx).await?;
    // The shadow may be past `live` (no projector running, or messages that
    // arrived with the last batch); the projector skips up to the checkpoint.
    set_rebuilt(&mut tx, projection, position.last.as_ref(), source.stream_created_ns, position.events).await?;
    tx.commit().await?;
    Ok(position)
}

/// Lock timeout (55P03) or deadlock (40P01): the switch met readers or the
/// projector, and can be tried again.
fn is_lock_conflict(error: &sqlx::Error) -> bool {
    matches!(database_code(error).as_deref(), Some("55P03" | "40P01"))
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
    let stream = jetstream.get_stream(config.namespace.events_stream()).await.map_err(|e| nats("stream", &e))?;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::Last,
            ack_policy: AckPolicy::None,
            filter_subject: projection.filter_subject(&config.namespace),
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
