//! The JetStream event store behind cqrs-es.
//!
//! - One stream; one subject per aggregate instance.
//! - One message per command: its events are appended atomically.
//! - `Nats-Expected-Last-Subject-Sequence` makes the append conditional on nobody
//!   having written the aggregate since it was loaded (optimistic concurrency).
//! - `Nats-Msg-Id` (the command id) makes a retried publish land once.
//! - Loading reads only the aggregate's own subject, with the stream message-get
//!   API (answered by the stream leader, so a load always sees acknowledged
//!   writes), starting after a snapshot when there is one.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use rapat_domain::envelope::{StoredCommit, Upcast};

use crate::cache::{AggregateCache, Cached};
use crate::codec::{decode_commit, decode_typed, encode_commit, EVENT_TYPES_HEADER};
use crate::config::EventStoreConfig;
use crate::error::StoreError;
use crate::metadata::CommandMetadata;
use crate::setup::ensure_event_store;
use crate::snapshot::Snapshots;

/// What the store needs of an aggregate: cqrs-es's trait, plus cloning for the
/// cache and upcasting for old events.
pub trait StoredAggregate: Aggregate + Clone + 'static
where
    Self::Event: Upcast,
{
}

impl<A> StoredAggregate for A
where
    A: Aggregate + Clone + 'static,
    A::Event: Upcast,
{
}

/// An aggregate loaded for a command: its state and the point of its subject the
/// state was built from.
pub struct Loaded<A> {
    pub aggregate_id: String,
    pub state: Cached<A>,
}

impl<A: Aggregate> AggregateContext<A> for Loaded<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.state.aggregate
    }
}

/// The result of appending a command's events.
#[derive(Clone, Debug)]
pub struct Appended {
    /// Stream sequence of the message holding the events; what a projection must
    /// have applied for a reader to see this write.
    pub stream_sequence: u64,
    /// Aggregate version after the events.
    pub version: u64,
    /// The same command id was stored before: nothing new was written.
    pub duplicate: bool,
}

pub struct JetStreamEventStore<A: StoredAggregate>
where
    A::Event: Upcast,
{
    inner: Arc<Inner<A>>,
}

struct Inner<A> {
    jetstream: jetstream::Context,
    stream: stream::Stream<()>,
    config: EventStoreConfig,
    cache: AggregateCache<A>,
    snapshots: Option<Snapshots>,
}

impl<A: StoredAggregate> Clone for JetStreamEventStore<A>
where
    A::Event: Upcast,
{
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<A: StoredAggregate> JetStreamEventStore<A>
where
    A::Event: Upcast,
{
    /// Opens the store, creating its stream and snapshot bucket when missing.
    pub async fn open(client: async_nats::Client, config: EventStoreConfig) -> Result<Self, StoreError> {
        let jetstream = jetstream::new(client);
        ensure_event_store(&jetstream, &config).await?;
        let stream = jetstream
            .get_stream_no_info(&config.stream)
            .await
            .map_err(|error| StoreError::unavailable(format!("stream {}: {error}", config.stream)))?;
        let snapshots = if config.snapshot_every > 0 {
            let bucket = jetstream
                .get_key_value(&config.snapshot_bucket)
                .await
                .map_err(|error| StoreError::unavailable(format!("bucket {}: {error}", config.snapshot_bucket)))?;
            Some(Snapshots::new(bucket, config.snapshot_every))
        } else {
            None
        };
        let cache = AggregateCache::new(config.cache_capacity);
        Ok(Self { inner: Arc::new(Inner { jetstream, stream, config, cache, snapshots }) })
    }

    pub fn config(&self) -> &EventStoreConfig {
        &self.inner.config
    }

    /// The aggregate's current state: from the cache, else from its snapshot and
    /// the events after it, else from its first event.
    pub async fn load(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        if let Some(state) = self.inner.cache.get(aggregate_id) {
            return Ok(Loaded { aggregate_id: aggregate_id.to_string(), state });
        }
        let start = match &self.inner.snapshots {
            Some(snapshots) => snapshots.load(A::TYPE, aggregate_id).await,
            None => None,
        };
        let state = self.replay(aggregate_id, start).await?;
        self.inner.cache.put(aggregate_id, state.clone());
        Ok(Loaded { aggregate_id: aggregate_id.to_string(), state })
    }

    /// Rebuilds the aggregate from `start` (or from nothing) by applying every
    /// later event of its subject. Bypasses the cache and does not fill it.
    pub async fn replay(&self, aggregate_id: &str, start: Option<Cached<A>>) -> Result<Cached<A>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        let mut state = start.unwrap_or(Cached { aggregate: A::default(), version: 0, subject_sequence: 0 });
        let subject = self.subject(aggregate_id);
        while let Some((sequence, commit)) = self.next_commit(&subject, state.subject_sequence).await? {
            for stored in &commit.events {
                if stored.aggregate_version != state.version + 1 {
                    return Err(StoreError::Corrupt {
                        subject: subject.clone(),
                        sequence,
                        reason: format!(
                            "aggregate version {} follows version {}",
                            stored.aggregate_version, state.version
                        ),
                    });
                }
                let event = decode_typed::<A>(&subject, sequence, stored)?;
                state.aggregate.apply(event);
                state.version = stored.aggregate_version;
            }
            state.subject_sequence = sequence;
        }
        Ok(state)
    }

    /// Every event of the aggregate, with its envelope, from the first one.
    pub async fn read_events(&self, aggregate_id: &str) -> Result<Vec<(u64, StoredCommit)>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        let subject = self.subject(aggregate_id);
        let mut commits = Vec::new();
        let mut after = 0;
        while let Some((sequence, commit)) = self.next_commit(&subject, after).await? {
            after = sequence;
            commits.push((sequence, commit));
        }
        Ok(commits)
    }

    /// Appends a command's events as one message, on condition that the subject
    /// is still where `loaded` saw it. `loaded`'s aggregate must already have the
    /// events applied, as cqrs-es's `EventSink` does during `handle`.
    pub async fn append(
        &self,
        loaded: Loaded<A>,
        events: &[A::Event],
        metadata: &CommandMetadata,
    ) -> Result<Appended, StoreError> {
        let Loaded { aggregate_id, state } = loaded;
        if events.is_empty() {
            return Ok(Appended { stream_sequence: state.subject_sequence, version: state.version, duplicate: false });
        }
        let commit = encode_commit::<A>(&aggregate_id, state.version + 1, events, metadata)?;
        let body = serde_json::to_vec(&commit).map_err(|error| StoreError::Encode(error.to_string()))?;
        let event_types: Vec<&str> = commit.events.iter().map(|event| event.event_type.as_str()).collect();
        let mut publish = PublishMessage::build()
            .payload(body.into())
            .message_id(metadata.command_id.to_string())
            .expected_last_subject_sequence(state.subject_sequence)
            .header(EVENT_TYPES_HEADER, event_types.join(",").as_str());
        // With telemetry on, the consumers' spans become children of this
        // command's span; otherwise the caller's own trace context passes through.
        let traced = rapat_telemetry::current_trace_headers();
        let trace_context = if traced.is_empty() { &metadata.trace_context } else { &traced };
        for (name, value) in trace_context {
            publish = publish.header(name.as_str(), value.as_str());
        }

        let ack = match self.publish(self.subject(&aggregate_id), publish).await {
            Ok(ack) => ack,
            Err(error) => {
                // Whatever happened, the cached state may now be wrong.
                self.inner.cache.evict(&aggregate_id);
                return Err(match error {
                    StoreError::Conflict { .. } => StoreError::Conflict { expected: state.subject_sequence },
                    other => other,
                });
            }
        };
        let new_version = state.version + events.len() as u64;
        if ack.duplicate {
            // This command id was stored earlier; our state is a guess, drop it.
            self.inner.cache.evict(&aggregate_id);
            return Ok(Appended { stream_sequence: ack.sequence, version: new_version, duplicate: true });
        }

        let old_version = state.version;
        let committed = Cached { aggregate: state.aggregate, version: new_version, subject_sequence: ack.sequence };
        if let Some(snapshots) = &self.inner.snapshots
            && snapshots.is_due(old_version, new_version)
        {
            // Off the command's path: a snapshot only shortens later loads, and an
            // older one landing after a newer one costs replay time, not correctness.
            let (snapshots, aggregate_id, state) = (snapshots.clone(), aggregate_id.clone(), committed.clone());
            tokio::spawn(async move { snapshots.save(A::TYPE, &aggregate_id, &state).await });
        }
        self.inner.cache.put(&aggregate_id, committed);
        Ok(Appended { stream_sequence: ack.sequence, version: new_version, duplicate: false })
    }

    /// Forgets the cached state of an aggregate (after a conflict).
    pub fn evict(&self, aggregate_id: &str) {
        self.inner.cache.evict(aggregate_id);
    }

    fn subject(&self, aggregate_id: &str) -> String {
        self.inner.config.subject_for(A::TYPE, aggregate_id)
    }

    async fn publish(&self, subject: String, publish: PublishMessage) -> Result<jetstream::publish::PublishAck, StoreError> {
        let pending = self.inner.jetstream.send_publish(subject, publish).await.map_err(publish_error)?;
        match tokio::time::timeout(self.inner.config.publish_timeout, pending).await {
            Ok(Ok(ack)) => Ok(ack),
            Ok(Err(error)) => Err(publish_error(error)),
            Err(_) => Err(StoreError::unavailable("no acknowledgement from JetStream in time")),
        }
    }

    /// The first message on `subject` after stream sequence `after`, if any.
    async fn next_commit(&self, subject: &str, after: u64) -> Result<Option<(u64, StoredCommit)>, StoreError> {
        let request = self.inner.stream.raw_message_builder().sequence(after + 1).next_by_subject(subject);
        let message: jetstream::message::StreamMessage = match request.send().await {
            Ok(message) => message,
            Err(error) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(error) => return Err(StoreError::unavailable(format!("reading {subject}: {error}"))),
        };
        let commit = decode_commit(subject, message.sequence, &message.payload)?;
        Ok(Some((message.sequence, commit)))
    }
}

fn publish_error(error: jetstream::context::PublishError) -> StoreError {
    match error.kind() {
        PublishErrorKind::WrongLastSequence => StoreError::Conflict { expected: 0 },
        PublishErrorKind::MaxPayloadExceeded => StoreError::Encode("the command's events exceed the server's max_payload".into()),
        _ => StoreError::unavailable(format!("publish failed: {error}")),
    }
}

fn check_aggregate_id(aggregate_id: &str) -> Result<(), StoreError> {
    let valid = !aggregate_id.is_empty()
        && aggregate_id.len() <= 128
        && aggregate_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid { Ok(()) } else { Err(StoreError::InvalidAggregateId(aggregate_id.to_string())) }
}

fn to_aggregate_error<E: std::error::Error>(error: StoreError) -> AggregateError<E> {
    match error {
        StoreError::Conflict { .. } => AggregateError::AggregateConflict,
        StoreError::Unavailable { .. } => AggregateError::DatabaseConnectionError(Box::new(error)),
        StoreError::Corrupt { .. } => AggregateError::DeserializationError(Box::new(error)),
        StoreError::InvalidAggregateId(_) | StoreError::Encode(_) => AggregateError::UnexpectedError(Box::new(error)),
    }
}

/// The cqrs-es face of the store, so `CqrsFramework` can run on it too. rapat's
/// own dispatch goes through [`crate::CommandBus`], which adds retries and
/// returns the stream position of each write.
impl<A: StoredAggregate> EventStore<A> for JetStreamEventStore<A>
where
    A::Event: Upcast,
{
    type AC = Loaded<A>;

    async fn load_events(&self, aggregate_id: &str) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let subject = self.subject(aggregate_id);
        let commits = self.read_events(aggregate_id).await.map_err(to_aggregate_error)?;
        let mut envelopes = Vec::new();
        for (sequence, commit) in commits {
            for stored in commit.events {
                let payload = decode_typed::<A>(&subject, sequence, &stored).map_err(to_aggregate_error)?;
                let mut metadata = HashMap::from([
                    ("event_id".to_string(), stored.event_id.to_string()),
                    ("command_id".to_string(), stored.command_id.clone()),
                    ("timestamp".to_string(), stored.timestamp.to_rfc3339()),
                    ("stream_sequence".to_string(), sequence.to_string()),
                ]);
                metadata.extend(stored.actor.map(|actor| ("actor".to_string(), actor)));
                metadata.extend(stored.correlation_id.map(|id| ("correlation_id".to_string(), id)));
                envelopes.push(EventEnvelope {
                    aggregate_id: aggregate_id.to_string(),
                    sequence: stored.aggregate_version as usize,
                    payload,
                    metadata,
                });
            }
        }
        Ok(envelopes)
    }

    async fn load_aggregate(&self, aggregate_id: &str) -> Result<Loaded<A>, AggregateError<A::Error>> {
        self.load(aggregate_id).await.map_err(to_aggregate_error)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Loaded<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let aggregate_id = context.aggregate_id.clone();
        let first_version = context.state.version + 1;
        let command_metadata = CommandMetadata::from_cqrs_map(&metadata);
        self.append(context, &events, &command_metadata).await.map_err(to_aggregate_error)?;
        Ok(events
            .into_iter()
            .enumerate()
            .map(|(offset, payload)| EventEnvelope {
                aggregate_id: aggregate_id.clone(),
                sequence: first_version as usize + offset,
                payload,
                metadata: metadata.clone(),
            })
            .collect())
    }
}
