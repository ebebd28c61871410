//! Command dispatch: load, decide, append, and retry a lost race on fresh state.

use std::time::Duration;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use rand::Rng;
use rapat_domain::envelope::Upcast;

use crate::cache::KeyedLocks;
use crate::error::{CommandError, StoreError};
use crate::metadata::CommandMetadata;
use crate::store::{JetStreamEventStore, StoredAggregate};

/// How often a command that lost a concurrency race is tried again.
#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    max_attempts: u32,
    /// Upper bound of the random pause before the n-th retry is n × this.
    backoff_step: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 16, backoff_step: Duration::from_millis(2) }
    }
}

/// What a successful command did.
#[derive(Clone, Debug)]
pub struct CommandOutcome<A: Aggregate> {
    /// The new events; empty when the command changed nothing (a repeated join).
    pub events: Vec<A::Event>,
    /// The aggregate after the command.
    pub state: A,
    pub version: u64,
    /// Stream sequence a reader must wait for to see this write: the message just
    /// appended, or the aggregate's last one when nothing was appended.
    pub stream_sequence: u64,
    /// The command id had been stored before; nothing new was written.
    pub duplicate: bool,
    /// How many attempts the command took (1 unless it lost a race).
    pub attempts: u32,
}

/// Runs commands of one aggregate type against the event store.
///
/// Commands on the same aggregate in one process are serialised by a per-aggregate
/// lock, so they do not race each other; races with other processes (a second
/// gateway) are caught by the store's expected-sequence check and retried here.
pub struct CommandBus<A: StoredAggregate>
where
    A::Event: Upcast,
{
    store: JetStreamEventStore<A>,
    services: A::Services,
    locks: KeyedLocks,
    retry: RetryPolicy,
}

impl<A: StoredAggregate> CommandBus<A>
where
    A::Event: Upcast,
    A::Command: Clone,
{
    pub fn new(store: JetStreamEventStore<A>, services: A::Services) -> Self {
        Self { store, services, locks: KeyedLocks::default(), retry: RetryPolicy::default() }
    }

    pub fn store(&self) -> &JetStreamEventStore<A> {
        &self.store
    }

    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(aggregate = A::TYPE, aggregate_id, command_id = %metadata.command_id),
    )]
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        tracing::Span::current().record("aggregate_id", aggregate_id);
        let started = std::time::Instant::now();
        crate::deadline::record(crate::deadline::WriteState::None);
        let result = self.execute_serialised(aggregate_id, command, &metadata).await;
        let outcome = match &result {
            Ok(outcome) if outcome.duplicate => "duplicate",
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Conflict { .. }) => "conflict",
            Err(error) if error.is_unavailable() => "unavailable",
            Err(error) if error.is_outcome_unknown() => "outcome_unknown",
            Err(_) => "failed",
        };
        metrics::counter!("rapat_commands_total", "aggregate" => A::TYPE, "outcome" => outcome).increment(1);
        metrics::histogram!("rapat_command_duration_seconds", "aggregate" => A::TYPE)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn execute_serialised(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let _serialised = self.locks.lock(aggregate_id).await;
        let mut attempt = 1;
        // Where the subject stood when this command first lost a race.
        let mut first_conflict: Option<u64> = None;
        loop {
            match self.attempt(aggregate_id, command.clone(), metadata).await {
                Ok(mut outcome) => {
                    outcome.attempts = attempt;
                    return Ok(outcome);
                }
                Err(AttemptError::Store(StoreError::Conflict { expected })) => {
                    self.store.evict(aggregate_id);
                    // A message of this command handed to NATS may be stored after all,
                    // behind another writer's (an acknowledgement lost in a leader
                    // change): then the command is done, whatever the retry would say.
                    let since = *first_conflict.get_or_insert(expected);
                    // Boxed (as below): cold paths, kept out of every command's future.
                    if let Some(outcome) = Box::pin(self.stored_since(aggregate_id, since, metadata, attempt)).await {
                        return Ok(outcome);
                    }
                    if attempt >= self.retry.max_attempts {
                        return Err(CommandError::Conflict { attempts: attempt });
                    }
                    tracing::debug!(attempt, "lost a concurrency race; retrying on fresh state");
                    metrics::counter!("rapat_command_retries_total", "aggregate" => A::TYPE).increment(1);
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(AttemptError::Store(error)) => return Err(CommandError::Store(error)),
                Err(AttemptError::Rejected(error)) => return Err(CommandError::Rejected(error)),
            }
        }
    }

    /// The outcome of this command if its message is on the aggregate's subject
    /// after stream sequence `since`; `None` when it is not, or when that cannot
    /// be read now (the retry then finds out).
    async fn stored_since(
        &self,
        aggregate_id: &str,
        since: u64,
        metadata: &CommandMetadata,
        attempts: u32,
    ) -> Option<CommandOutcome<A>> {
        let command_id = metadata.command_id.to_string();
        let sequence = self.store.stored_after(aggregate_id, since, &command_id).await.ok()??;
        let loaded = self.store.load(aggregate_id).await.ok()?;
        tracing::info!(command_id, sequence, "a command that lost a race was stored by an earlier attempt");
        crate::deadline::record(crate::deadline::WriteState::Stored);
        Some(CommandOutcome {
            events: Vec::new(),
            state: loaded.state.aggregate,
            version: loaded.state.version,
            stream_sequence: sequence,
            duplicate: true,
            attempts,
        })
    }

    async fn attempt(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<CommandOutcome<A>, AttemptError<A::Error>> {
        let mut loaded = self.store.load_for_command(aggregate_id).await.map_err(AttemptError::Store)?;
        // A client's retry of a stored command is refused by the state that
        // command made (a room that now exists): answer it as the first was.
        let before = metadata.from_client_key.then(|| loaded.state.clone());
        let sink = EventSink::default();
        // `handle` works on the cached copy; a rejected command must not leave its
        // half-applied events in the cache, so it is evicted on rejection.
        if let Err(error) = loaded.state.aggregate.handle(command, &self.services, &sink).await {
            self.store.evict(aggregate_id);
            if let Some(before) = before {
                let command_id = metadata.command_id.to_string();
                if let Some(sequence) =
                    Box::pin(self.store.last_is(aggregate_id, &command_id)).await.map_err(AttemptError::Store)?
                {
                    crate::deadline::record(crate::deadline::WriteState::Stored);
                    return Ok(CommandOutcome {
                        events: Vec::new(),
                        state: before.aggregate,
                        version: before.version,
                        stream_sequence: sequence,
                        duplicate: true,
                        attempts: 1,
                    });
                }
            }
            return Err(AttemptError::Rejected(error));
        }
        let events = sink.collect().await;
        let state = loaded.state.aggregate.clone();
        let appended = self.store.append(loaded, &events, metadata).await.map_err(AttemptError::Store)?;
        Ok(CommandOutcome {
            events,
            state,
            version: appended.version,
            stream_sequence: appended.stream_sequence,
            duplicate: appended.duplicate,
            attempts: 1,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.retry.backoff_step * attempt;
        rand::rng().random_range(Duration::ZERO..=ceiling)
    }
}

enum AttemptError<E> {
    Rejected(E),
    Store(StoreError),
}
