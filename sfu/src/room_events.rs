//! Following room events on the event stream, across NATS restarts.
//!
//! The SFU reads room events with an ephemeral pull consumer. An ephemeral
//! consumer lives only in the server: a NATS restart loses it, and async-nats's
//! ordered consumer notices that only after two missed 15 s heartbeats and then,
//! having seen no message yet, starts again from the stream's beginning. So the
//! follower keeps its own position, the stream sequence after the last message it
//! applied, and supervises its consumer: on any error, a missed heartbeat (every
//! [`HEARTBEAT`]), a gap in the consumer's sequence or the end of the messages, it
//! waits at most [`RETRY_AFTER`] and makes a new consumer from that position. No
//! event written while it was cut off is missed and none is applied twice.
//!
//! The first failure of an outage is logged as a warning, the retries during it
//! only at debug level, and the recovery once; `rapat_sfu_room_event_resubscribes_total`
//! counts the consumers made after the first.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use rapat_commands::EventStoreConfig;
use rapat_domain::envelope::StoredCommit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::RoomChange;
use crate::nats::room_change;

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

/// Applies room events to `apply` from "now" (the stream's end when first
/// reached) until `cancel`, remaking the consumer whenever it is lost.
pub async fn follow(nats: async_nats::Client, events: EventStoreConfig, mut apply: impl FnMut(RoomChange), cancel: CancellationToken) {
    let jetstream = jetstream::new(nats);
    // The stream sequence of the next message to apply; unknown until the stream is first reached.
    let mut next: Option<u64> = None;
    let mut failing = false;
    let mut consumers: u64 = 0;
    loop {
        let follow_once = follow_once(&jetstream, &events, &mut next, &mut apply, &mut consumers, &mut failing);
        let reason = tokio::select! {
            _ = cancel.cancelled() => return,
            reason = follow_once => reason,
        };
        if !failing {
            tracing::warn!(%reason, next, "lost the room event consumer; remaking it from the last position");
            failing = true;
        } else {
            tracing::debug!(%reason, next, "the room event consumer cannot be remade yet");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// Makes one consumer from `next` and applies what it delivers until it breaks;
/// returns why it broke.
async fn follow_once(
    jetstream: &jetstream::Context,
    events: &EventStoreConfig,
    next: &mut Option<u64>,
    apply: &mut impl FnMut(RoomChange),
    consumers: &mut u64,
    failing: &mut bool,
) -> String {
    let stream = match jetstream.get_stream(&events.stream).await {
        Ok(stream) => stream,
        Err(error) => return format!("opening the event stream: {error}"),
    };
    let start = *next.get_or_insert(stream.cached_info().state.last_sequence + 1);
    let config = pull::Config {
        filter_subject: events.subject_for("room", "*"),
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
    *consumers += 1;
    if *consumers > 1 {
        ::metrics::counter!("rapat_sfu_room_event_resubscribes_total").increment(1);
    }
    if *failing {
        tracing::info!(from = start, "following room events again");
        *failing = false;
    }
    let mut expected: u64 = 1;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => return format!("reading room events: {error}"),
        };
        let info = match message.info() {
            Ok(info) => (info.consumer_sequence, info.stream_sequence),
            Err(error) => return format!("reading a room event's position: {error}"),
        };
        let (consumer_sequence, stream_sequence) = info;
        // AckPolicy::None redelivers nothing: a message the client dropped (too
        // slow) shows only as a gap, and the new consumer starts at the gap.
        if consumer_sequence != expected {
            return format!("room event {expected} of the consumer never arrived");
        }
        expected += 1;
        apply_message(&message, apply);
        *next = Some(stream_sequence + 1);
    }
    "the room event consumer ended".into()
}

fn apply_message(message: &jetstream::Message, apply: &mut impl FnMut(RoomChange)) {
    let Ok(commit) = serde_json::from_slice::<StoredCommit>(&message.payload) else {
        tracing::warn!(subject = %message.subject, "cannot read a room event");
        return;
    };
    let Some(room) = message.subject.rsplit('.').next().and_then(|id| Uuid::parse_str(id).ok()) else { return };
    let span = tracing::info_span!("sfu.room_event", %room);
    rapat_telemetry::continue_nats_trace(&span, message.headers.as_ref());
    let _applying = span.enter();
    for event in &commit.events {
        if let Some(change) = room_change(room, &event.event_type, &event.payload) {
            apply(change);
        }
    }
}
