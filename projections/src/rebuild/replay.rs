//! Reading the projection's messages from the stream and applying them to the
//! shadow tables with the projector's own model code.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, Message, consumer::DeliverPolicy, consumer::pull};
use futures::{FutureExt, StreamExt};
use sqlx::PgConnection;

use super::RebuildError;
use crate::models::{ApplyError, apply_batch, apply_message};
use crate::projector::{MessageMark, Projection, ProjectorConfig, park};

/// How long to wait for a message the rebuild knows exists (its sequence is at or
/// below a position already seen) before calling the stream stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The projection's messages in stream order, from the first one, through an
/// ordered consumer (ephemeral, no acks): the live projector's durable consumer is
/// left alone.
pub(super) struct Source {
    messages: pull::Ordered,
    /// Messages taken by a switch attempt that was rolled back, to be applied again.
    returned: VecDeque<Message>,
    /// Creation time (ns) of the stream read, recorded with the rebuilt checkpoint.
    pub(super) stream_created_ns: i64,
}

impl Source {
    pub(super) async fn open(
        jetstream: &jetstream::Context,
        config: &ProjectorConfig,
        projection: Projection,
    ) -> Result<Self, RebuildError> {
        let nats = |what: &str, error: &dyn std::fmt::Display| RebuildError::Nats(format!("{what}: {error}"));
        let stream = jetstream.get_stream(config.namespace.events_stream()).await.map_err(|e| nats("stream", &e))?;
        let created = stream.cached_info().created.unix_timestamp_nanos();
        let stream_created_ns = i64::try_from(created).unwrap_or(i64::MAX);
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: projection.filter_subject(&config.namespace),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| nats("creating the rebuild consumer", &e))?;
        let messages = consumer.messages().await.map_err(|e| nats("reading the stream", &e))?;
        Ok(Self { messages, returned: VecDeque::new(), stream_created_ns })
    }

    /// Up to `limit` messages: the first is waited for, the rest are whatever has
    /// already arrived, so a batch is as big as the stream can feed it.
    pub(super) async fn next_batch(&mut self, limit: usize) -> Result<Vec<Message>, RebuildError> {
        let mut batch: Vec<Message> = Vec::new();
        while batch.len() < limit
            && let Some(message) = self.returned.pop_front()
        {
            batch.push(message);
        }
        if batch.is_empty() {
            batch.push(self.wait_next().await?);
        }
        while batch.len() < limit {
            match self.messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                Some(Some(Err(error))) => return Err(RebuildError::Nats(format!("reading the stream: {error}"))),
                Some(None) | None => break,
            }
        }
        Ok(batch)
    }

    /// Gives back messages whose transaction was rolled back; they come first again.
    pub(super) fn give_back(&mut self, messages: Vec<Message>) {
        for message in messages.into_iter().rev() {
            self.returned.push_front(message);
        }
    }

    async fn wait_next(&mut self) -> Result<Message, RebuildError> {
        match tokio::time::timeout(STALL_TIMEOUT, self.messages.next()).await {
            Err(_) => Err(RebuildError::Nats(format!("no message from the stream in {STALL_TIMEOUT:?}"))),
            Ok(None) => Err(RebuildError::Nats("the rebuild consumer ended".into())),
            Ok(Some(Err(error))) => Err(RebuildError::Nats(format!("reading the stream: {error}"))),
            Ok(Some(Ok(message))) => Ok(message),
        }
    }
}

pub(super) fn stream_sequence(message: &Message) -> Result<u64, RebuildError> {
    message
        .info()
        .map(|info| info.stream_sequence)
        .map_err(|error| RebuildError::Nats(format!("message without JetStream metadata: {error}")))
}

/// Where the shadow read model is: what it has applied, kept in memory only (a
/// crashed rebuild starts over from a new shadow).
#[derive(Clone, Debug, Default)]
pub(super) struct Position {
    pub(super) last_sequence: u64,
    pub(super) events: u64,
    /// The message at `last_sequence`, recorded with the checkpoint at the switch.
    pub(super) last: Option<MessageMark>,
}

/// Applies `batch` to the shadow tables inside the caller's transaction (whose
/// search_path puts the shadow schema first), parking what can never apply, the way
/// the projector does. Messages at or below `position` are skipped. Returns the
/// position after the batch.
pub(super) async fn apply_to_shadow(
    tx: &mut PgConnection,
    projection: Projection,
    position: Position,
    batch: &[Message],
) -> Result<Position, RebuildError> {
    let mut fresh = Vec::with_capacity(batch.len());
    let mut last_sequence = position.last_sequence;
    for message in batch {
        let sequence = stream_sequence(message)?;
        if sequence > last_sequence {
            fresh.push((sequence, message));
            last_sequence = sequence;
        }
    }
    let Some((_, last_message)) = fresh.last() else { return Ok(position) };
    let last = MessageMark::of(last_message).map_err(RebuildError::Nats)?;
    // The fast path has no savepoint per message; one around the batch lets a poison
    // message send it to the slow path without losing the caller's transaction.
    sqlx::query("SAVEPOINT shadow_batch").execute(&mut *tx).await?;
    let bodies: Vec<(u64, &[u8])> = fresh.iter().map(|(s, m)| (*s, m.payload.as_ref())).collect();
    let together = apply_batch(tx, projection, &bodies).await;
    let events = match together {
        Ok(events) => events,
        Err(ApplyError::Transient(error)) => return Err(error.into()),
        Err(ApplyError::Poison(_)) => {
            sqlx::query("ROLLBACK TO SAVEPOINT shadow_batch").execute(&mut *tx).await?;
            apply_one_by_one(tx, projection, &fresh).await?
        }
    };
    sqlx::query("RELEASE SAVEPOINT shadow_batch").execute(&mut *tx).await?;
    Ok(Position { last_sequence, events: position.events + events, last: Some(last) })
}

/// The slow path: a savepoint per message, so a poison one is rolled back and
/// parked (in the shadow's `parked_events`) and the others still apply.
async fn apply_one_by_one(
    tx: &mut PgConnection,
    projection: Projection,
    fresh: &[(u64, &Message)],
) -> Result<u64, RebuildError> {
    let mut events = 0;
    for (sequence, message) in fresh {
        sqlx::query("SAVEPOINT shadow_message").execute(&mut *tx).await?;
        match apply_message(tx, projection, *sequence, &message.payload).await {
            Ok(applied) => events += applied,
            Err(ApplyError::Transient(error)) => return Err(error.into()),
            Err(ApplyError::Poison(reason)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT shadow_message").execute(&mut *tx).await?;
                park(tx, projection, *sequence, message.subject.as_str(), &reason, &message.payload).await?;
            }
        }
        sqlx::query("RELEASE SAVEPOINT shadow_message").execute(&mut *tx).await?;
    }
    Ok(events)
}
