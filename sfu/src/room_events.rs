//! Room events from the event stream, as the SFU applies them: followed from
//! "now" by `rapat_commands::follow`, which keeps the position across NATS
//! restarts, so a room event written while the SFU was cut off still reaches it,
//! once.

use async_nats::jetstream;
use rapat_commands::{EventStoreConfig, Follow, follow as follow_stream};
use rapat_domain::envelope::StoredCommit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::RoomChange;
use crate::nats::room_change;

/// Applies room events to `apply` from "now" until `cancel`.
pub async fn follow(nats: async_nats::Client, events: EventStoreConfig, mut apply: impl FnMut(RoomChange), cancel: CancellationToken) {
    let what = Follow { name: "sfu_room_events", stream: events.stream.clone(), filter_subject: events.subject_for("room", "*") };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = follow_stream(nats, what, |message| apply_message(message, &mut apply)) => {}
    }
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
