//! The JetStream event store the command bus appends through. It is not a cqrs-es
//! `EventStore`: `CqrsFramework::execute` returns nothing (a caller needs the
//! write's stream position to read its own write), retries no lost race and
//! carries metadata as a string map, so [`crate::CommandBus`] drives the
//! aggregates itself.
//!
//! - One stream; one subject per aggregate instance.
//! - One message per command: its events are appended atomically.
//! - `Nats-Expected-Last-Subject-Sequence` makes the append conditional on nobody
//!   having written the aggregate since it was loaded (optimistic concurrency).
//! - `Nats-Msg-Id` (the command id) makes a retried publish land once.
//! - Loading reads only the aggregate's own subject, with the stream message-get
//!   API (answered by the stream leader, so a load always sees acknowledged
//!   writes), starting after a snapshot when there is one.

use std::sync::Arc;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use cqrs_es::Aggregate;
use rapat_domain::envelope::{StoredCommit, Upcast};

use crate::cache::{AggregateCache, Cached};
use crate::codec::{EVENT_TYPES_HEADER, decode_commit, decode_typed, encode_commit};
use crate::config::EventStoreConfig;
use crate::deadline::{self, WriteState};
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
    /// `<ns>.events.<type>.`: an aggregate's subject is this and its id.
    subject_prefix: String,
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
        let stream_name = config.namespace.events_stream();
        let stream = jetstream
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|error| StoreError::unavailable(format!("stream {stream_name}: {error}")))?;
        let snapshots = if config.snapshot_every > 0 {
            let bucket_name = config.namespace.snapshots_bucket();
            let bucket = jetstream
                .get_key_value(&bucket_name)
                .await
                .map_err(|error| StoreError::unavailable(format!("bucket {bucket_name}: {error}")))?;
            Some(Snapshots::new(bucket, config.snapshot_every))
        } else {
            None
        };
        let cache = AggregateCache::new(config.cache_capacity);
        let subject_prefix = config.namespace.event_subject(A::TYPE, "");
        Ok(Self { inner: Arc::new(Inner { jetstream, subject_prefix, stream, config, cache, snapshots }) })
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
        self.check_connected()?;
        let start = match &self.inner.snapshots {
            Some(snapshots) => snapshots.load(A::TYPE, aggregate_id).await,
            None => None,
        };
        let state = self.replay(aggregate_id, start).await?;
        self.inner.cache.put(aggregate_id, state.clone());
        Ok(Loaded { aggregate_id: aggregate_id.to_string(), state })
    }

    /// [`Self::load`] for a command that will decide on the state and append:
    /// the cached entry is taken out instead of copied, and [`Self::append`] puts
    /// the committed state back. Until then the aggregate is not cached, so a
    /// failed or rejected command leaves nothing half-applied behind (the same as
    /// evicting it). The command bus's per-aggregate lock keeps its own commands
    /// from missing each other's entry; any other reader meanwhile replays from
    /// the stream, and a state it caches that is older than the stream costs a
    /// conflict and a retry, never a wrong decision.
    pub(crate) async fn load_for_command(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        if let Some((aggregate_id, state)) = self.inner.cache.take(aggregate_id) {
            return Ok(Loaded { aggregate_id, state });
        }
        // Boxed: reading from NATS is the cold path, and its future inlined would
        // make every command's future larger, and so slower to move.
        let state = Box::pin(self.load_uncached(aggregate_id)).await?;
        Ok(Loaded { aggregate_id: aggregate_id.to_string(), state })
    }

    /// The aggregate from its snapshot and the events after it.
    async fn load_uncached(&self, aggregate_id: &str) -> Result<Cached<A>, StoreError> {
        self.check_connected()?;
        let start = match &self.inner.snapshots {
            Some(snapshots) => snapshots.load(A::TYPE, aggregate_id).await,
            None => None,
        };
        self.replay(aggregate_id, start).await
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
            let unchanged =
                Appended { stream_sequence: state.subject_sequence, version: state.version, duplicate: false };
            // Nothing was decided: the state is as loaded, and goes back to the cache.
            self.inner.cache.put_owned(aggregate_id, state);
            return Ok(unchanged);
        }
        let command_id = metadata.command_id.to_string();
        let encoded = encode_commit::<A>(&aggregate_id, state.version + 1, events, metadata, &command_id)?;
        // With telemetry on, the consumers' spans become children of this
        // command's span; otherwise the caller's own trace context passes through.
        let traced = rapat_telemetry::current_trace_headers();
        let message = Outgoing {
            body: encoded.body.into(),
            command_id: &command_id,
            expected: state.subject_sequence,
            event_types: &encoded.event_types,
            trace_context: if traced.is_empty() { &metadata.trace_context } else { &traced },
        };

        let ack = match self.publish(self.subject(&aggregate_id), &message).await {
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
        deadline::record(WriteState::Stored);
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
        self.inner.cache.put_owned(aggregate_id, committed);
        Ok(Appended { stream_sequence: ack.sequence, version: new_version, duplicate: false })
    }

    /// Forgets the cached state of an aggregate (after a conflict).
    pub fn evict(&self, aggregate_id: &str) {
        self.inner.cache.evict(aggregate_id);
    }

    /// The namespace's `event_subject`, without formatting it anew for every append.
    fn subject(&self, aggregate_id: &str) -> String {
        let prefix = &self.inner.subject_prefix;
        let mut subject = String::with_capacity(prefix.len() + aggregate_id.len());
        subject.push_str(prefix);
        subject.push_str(aggregate_id);
        subject
    }

    /// Fails at once, with nothing sent, unless the NATS connection is up: the
    /// client library would buffer a publish while it reconnects and deliver it
    /// after its caller was told it failed.
    fn check_connected(&self) -> Result<(), StoreError> {
        match self.inner.jetstream.client().connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(StoreError::unavailable(format!("NATS is {state}; nothing was sent"))),
        }
    }

    /// Publishes and waits for the acknowledgement within the request's deadline.
    /// A message handed to the client whose acknowledgement does not come is
    /// settled (see [`Self::settle`]) instead of being reported as not stored.
    async fn publish(
        &self,
        subject: String,
        message: &Outgoing<'_>,
    ) -> Result<jetstream::publish::PublishAck, StoreError> {
        self.check_connected()?;
        let timeout = self.inner.config.publish_timeout;
        // Until `send_publish` returns the message is not in the client's queue:
        // an error or a timeout here means it was never sent.
        let pending = match tokio::time::timeout(
            deadline::bounded(timeout),
            self.inner.jetstream.send_publish(subject.clone(), message.build()),
        )
        .await
        {
            Ok(Ok(pending)) => pending,
            Ok(Err(error)) => return Err(publish_error(error)),
            Err(_) => {
                return Err(StoreError::unavailable(
                    "the NATS client did not take the message in time; nothing was sent",
                ));
            }
        };
        deadline::record(WriteState::Unsettled);
        // Keep part of the budget to settle an acknowledgement that does not come.
        let ack_wait = deadline::bounded(timeout).saturating_sub(SETTLE_RESERVE).max(MIN_ACK_WAIT);
        let failure = match tokio::time::timeout(ack_wait, pending).await {
            Ok(Ok(ack)) => return Ok(ack),
            Ok(Err(error)) if is_definite(&error) => return Err(publish_error(error)),
            Ok(Err(error)) => format!("publish failed: {error}"),
            Err(_) => "no acknowledgement from JetStream in time".to_string(),
        };
        // Boxed: the cold path, kept out of every command's future.
        Box::pin(self.settle(&subject, message, &failure)).await
    }

    /// Finds out what became of a publish whose acknowledgement did not come:
    /// the subject's messages after `expected` say whether ours is stored; if
    /// another one is there instead, ours can never be (its expected sequence is
    /// gone); if there is none, the same message is published again: its
    /// `Nats-Msg-Id` makes the server store it at most once, and the answer
    /// settles it. When NATS cannot be asked in time, the outcome stays unknown.
    async fn settle(
        &self,
        subject: &str,
        message: &Outgoing<'_>,
        failure: &str,
    ) -> Result<jetstream::publish::PublishAck, StoreError> {
        let (command_id, expected) = (message.command_id, message.expected);
        let unknown = |why: String| StoreError::OutcomeUnknown { reason: format!("{failure}; {why}") };
        let budget = deadline::bounded(self.inner.config.publish_timeout);
        let settled = tokio::time::timeout(budget, async {
            // While reconnecting, a question would queue behind our message.
            while self.check_connected().is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            match self.find_after(subject, expected, command_id).await? {
                Found::Ours(sequence) => return Ok(PublishAckLike { sequence, duplicate: false }),
                Found::Other => return Err(StoreError::Conflict { expected }),
                Found::Nothing => {}
            }
            let pending =
                self.inner.jetstream.send_publish(subject.to_string(), message.build()).await.map_err(publish_error)?;
            match pending.await {
                Ok(ack) => Ok(PublishAckLike { sequence: ack.sequence, duplicate: ack.duplicate }),
                Err(error) if is_definite(&error) => Err(publish_error(error)),
                Err(error) => Err(StoreError::OutcomeUnknown { reason: error.to_string() }),
            }
        })
        .await;
        match settled {
            Ok(Ok(ack)) => {
                tracing::info!(subject, command_id, sequence = ack.sequence, "an unacknowledged publish is stored");
                Ok(jetstream::publish::PublishAck {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                    ..Default::default()
                })
            }
            Ok(Err(StoreError::Conflict { expected })) => {
                tracing::info!(subject, command_id, "an unacknowledged publish is not stored (the subject moved on)");
                deadline::record(WriteState::None);
                Err(StoreError::Conflict { expected })
            }
            Ok(Err(StoreError::OutcomeUnknown { reason })) => Err(unknown(reason)),
            Ok(Err(StoreError::Unavailable { reason })) => Err(unknown(reason)),
            Ok(Err(other)) => Err(other),
            Err(_) => Err(unknown("NATS could not be asked in time".to_string())),
        }
    }

    /// Whether the subject has, after stream sequence `after`, the message with
    /// `command_id` as its `Nats-Msg-Id`, only others, or nothing.
    async fn find_after(&self, subject: &str, after: u64, command_id: &str) -> Result<Found, StoreError> {
        let mut found = Found::Nothing;
        let mut position = after;
        while let Some(message) = self.next_message(subject, position).await? {
            if message_id(&message).as_deref() == Some(command_id) {
                return Ok(Found::Ours(message.sequence));
            }
            found = Found::Other;
            position = message.sequence;
        }
        Ok(found)
    }

    /// The stream sequence of the message with `command_id` as its `Nats-Msg-Id`
    /// on the aggregate's subject after stream sequence `after`, if there is one.
    pub async fn stored_after(
        &self,
        aggregate_id: &str,
        after: u64,
        command_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        self.check_connected()?;
        match self.find_after(&self.subject(aggregate_id), after, command_id).await? {
            Found::Ours(sequence) => Ok(Some(sequence)),
            Found::Other | Found::Nothing => Ok(None),
        }
    }

    /// The stream sequence of the subject's last message when its `Nats-Msg-Id`
    /// is `command_id`: a retried command whose first attempt is the aggregate's
    /// latest write.
    pub async fn last_is(&self, aggregate_id: &str, command_id: &str) -> Result<Option<u64>, StoreError> {
        check_aggregate_id(aggregate_id)?;
        self.check_connected()?;
        let subject = self.subject(aggregate_id);
        let request = self.inner.stream.raw_message_builder().last_by_subject(subject.clone()).send();
        let message: jetstream::message::StreamMessage =
            match tokio::time::timeout(deadline::bounded(self.inner.config.publish_timeout), request).await {
                Ok(Ok(message)) => message,
                Ok(Err(error)) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => return Ok(None),
                Ok(Err(error)) => return Err(StoreError::unavailable(format!("reading {subject}: {error}"))),
                Err(_) => return Err(StoreError::unavailable(format!("reading {subject}: no answer in time"))),
            };
        Ok((message_id(&message).as_deref() == Some(command_id)).then_some(message.sequence))
    }

    async fn next_message(
        &self,
        subject: &str,
        after: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, StoreError> {
        let request = self.inner.stream.raw_message_builder().sequence(after + 1).next_by_subject(subject).send();
        match tokio::time::timeout(deadline::bounded(self.inner.config.publish_timeout), request).await {
            Ok(Ok(message)) => Ok(Some(message)),
            Ok(Err(error)) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Ok(Err(error)) => Err(StoreError::unavailable(format!("reading {subject}: {error}"))),
            Err(_) => Err(StoreError::unavailable(format!("reading {subject}: no answer in time"))),
        }
    }

    /// The first message on `subject` after stream sequence `after`, if any.
    async fn next_commit(&self, subject: &str, after: u64) -> Result<Option<(u64, StoredCommit)>, StoreError> {
        let Some(message) = self.next_message(subject, after).await? else { return Ok(None) };
        let commit = decode_commit(subject, message.sequence, &message.payload)?;
        Ok(Some((message.sequence, commit)))
    }
}

/// Part of a publish's budget kept to settle it when its acknowledgement does not come.
const SETTLE_RESERVE: std::time::Duration = std::time::Duration::from_millis(800);
/// The shortest wait for an acknowledgement, however little of the budget is left.
const MIN_ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// What an append publishes. The message is built from these parts for each send
/// (a settle may send it again) rather than kept built and copied for a send
/// that rarely happens.
struct Outgoing<'a> {
    body: bytes::Bytes,
    command_id: &'a str,
    /// The subject's last stream sequence the command decided on.
    expected: u64,
    event_types: &'a str,
    trace_context: &'a [(String, String)],
}

impl Outgoing<'_> {
    fn build(&self) -> PublishMessage {
        let mut publish = PublishMessage::build()
            .payload(self.body.clone())
            .message_id(self.command_id)
            .expected_last_subject_sequence(self.expected)
            .header(async_nats::HeaderName::from_static(EVENT_TYPES_HEADER), self.event_types);
        for (name, value) in self.trace_context {
            publish = publish.header(name.as_str(), value.as_str());
        }
        publish
    }
}

struct PublishAckLike {
    sequence: u64,
    duplicate: bool,
}

enum Found {
    Ours(u64),
    Other,
    Nothing,
}

fn message_id(message: &jetstream::message::StreamMessage) -> Option<String> {
    message.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|value| value.as_str().to_string())
}

/// True when the server answered and said no: the message is not stored.
fn is_definite(error: &jetstream::context::PublishError) -> bool {
    matches!(
        error.kind(),
        PublishErrorKind::WrongLastSequence | PublishErrorKind::StreamNotFound | PublishErrorKind::MaxPayloadExceeded
    )
}

fn publish_error(error: jetstream::context::PublishError) -> StoreError {
    match error.kind() {
        PublishErrorKind::WrongLastSequence => StoreError::Conflict { expected: 0 },
        PublishErrorKind::MaxPayloadExceeded => {
            StoreError::Encode("the command's events exceed the server's max_payload".into())
        }
        _ => StoreError::unavailable(format!("publish failed: {error}")),
    }
}

fn check_aggregate_id(aggregate_id: &str) -> Result<(), StoreError> {
    let valid = !aggregate_id.is_empty()
        && aggregate_id.len() <= 128
        && aggregate_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid { Ok(()) } else { Err(StoreError::InvalidAggregateId(aggregate_id.to_string())) }
}
