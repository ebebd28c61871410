//! Following a part of a JetStream stream from "now" (or from its start), across NATS restarts.
//!
//! An ephemeral consumer lives only in the server: a NATS restart loses it, and
//! async-nats's ordered consumer notices that only after two missed 15 s
//! heartbeats and then, having seen no message yet, starts again from the
//! stream's beginning. So a [`follow`]er keeps its own position, the stream
//! sequence after the last message it handled, and supervises its consumer: on
//! any error, two missed heartbeats ([`HEARTBEAT`]), a gap in the consumer's
//! sequence or the end of the messages, it waits [`RETRY_AFTER`] and makes a new
//! consumer from that position. No message stored while it was cut off is missed
//! and none is handled twice.
//!
//! The first failure of an outage is logged as a warning, the retries during it
//! only at debug level, and the recovery once; `rapat_follower_resubscribes_total`
//! (label `follower`) counts the consumers made after the first.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;

/// The server sends a heartbeat when it has had nothing to send for this long;
/// two missed heartbeats count as a lost consumer.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a pull request waits for messages (a new one follows at once).
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// Pause between making consumers, so an outage costs a retry per this, not a busy loop.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);
/// The server removes a consumer nobody pulls from for this long: one left
/// behind by a lost connection does not stay.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);

/// What to follow.
#[derive(Clone, Debug)]
pub struct Follow {
    /// Names the follower in logs and metrics.
    pub name: &'static str,
    pub stream: String,
    pub filter_subject: String,
}

/// Hands every message stored on `what.filter_subject` from "now" (the stream's
/// end when first reached) to `handle`, in stream order, remaking the consumer
/// whenever it is lost. Runs until dropped.
pub async fn follow(nats: async_nats::Client, what: Follow, handle: impl FnMut(&jetstream::Message)) {
    follow_at(nats, what, None, handle).await
}

/// As [`follow`], but from the stream's first message on `what.filter_subject`:
/// for a follower that folds the whole history (the SFU's room rosters).
pub async fn follow_from_start(nats: async_nats::Client, what: Follow, handle: impl FnMut(&jetstream::Message)) {
    follow_at(nats, what, Some(1), handle).await
}

async fn follow_at(
    nats: async_nats::Client,
    what: Follow,
    next: Option<u64>,
    mut handle: impl FnMut(&jetstream::Message),
) {
    let jetstream = jetstream::new(nats);
    let mut position = Position { next, consumers: 0, failing: false };
    loop {
        let reason = follow_once(&jetstream, &what, &mut position, &mut handle).await;
        if !position.failing {
            tracing::warn!(follower = what.name, %reason, next = position.next, "lost a stream consumer; remaking it from the last position");
            position.failing = true;
        } else {
            tracing::debug!(follower = what.name, %reason, next = position.next, "a stream consumer cannot be remade yet");
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

struct Position {
    /// The stream sequence of the next message to handle; unknown until the
    /// stream is first reached.
    next: Option<u64>,
    consumers: u64,
    /// Since the last consumer was lost, none could be made.
    failing: bool,
}

/// Makes one consumer from the position and handles what it delivers until it
/// breaks; returns why it broke.
async fn follow_once(
    jetstream: &jetstream::Context,
    what: &Follow,
    position: &mut Position,
    handle: &mut impl FnMut(&jetstream::Message),
) -> String {
    let stream = match jetstream.get_stream(&what.stream).await {
        Ok(stream) => stream,
        Err(error) => return format!("opening stream {}: {error}", what.stream),
    };
    let start = *position.next.get_or_insert(stream.cached_info().state.last_sequence + 1);
    let config = pull::Config {
        filter_subject: what.filter_subject.clone(),
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
        ack_policy: AckPolicy::None,
        inactive_threshold: INACTIVE_THRESHOLD,
        memory_storage: true,
        num_replicas: 1,
        ..Default::default()
    };
    let consumer = match stream.create_consumer(config).await {
        Ok(consumer) => consumer,
        Err(error) => return format!("creating a consumer: {error}"),
    };
    let messages = consumer.stream().heartbeat(HEARTBEAT).expires(PULL_EXPIRES).messages().await;
    let mut messages = match messages {
        Ok(messages) => messages,
        Err(error) => return format!("pulling from the consumer: {error}"),
    };
    position.consumers += 1;
    if position.consumers > 1 {
        metrics::counter!("rapat_follower_resubscribes_total", "follower" => what.name).increment(1);
    }
    if position.failing {
        tracing::info!(follower = what.name, from = start, "following the stream again");
        position.failing = false;
    }
    let mut expected: u64 = 1;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => return format!("reading messages: {error}"),
        };
        let (consumer_sequence, stream_sequence) = match message.info() {
            Ok(info) => (info.consumer_sequence, info.stream_sequence),
            Err(error) => return format!("reading a message's position: {error}"),
        };
        // AckPolicy::None redelivers nothing: a message the client dropped (too
        // slow) shows only as a gap, and the new consumer starts at the gap.
        if consumer_sequence != expected {
            return format!("message {expected} of the consumer never arrived");
        }
        expected += 1;
        handle(&message);
        position.next = Some(stream_sequence + 1);
    }
    "the consumer's messages ended".into()
}
