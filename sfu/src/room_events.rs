//! Room events from the event stream, as the SFU applies them: followed from
//! "now" by `rapat_commands::follow`, which keeps the position across NATS
//! restarts, so a room event written while the SFU was cut off still reaches it,
//! once. Each stored event is decoded into the domain's typed [`RoomEvent`]
//! (upcast first), the same path every other consumer takes.

use async_nats::jetstream;
use rapat_commands::{EventStoreConfig, Follow, follow as follow_stream};
use rapat_domain::envelope::{StoredCommit, decode_known_event};
use rapat_domain::room::RoomEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::RoomChange;

/// Applies room events to `apply` from "now" until `cancel`.
pub async fn follow(nats: async_nats::Client, events: EventStoreConfig, mut apply: impl FnMut(RoomChange), cancel: CancellationToken) {
    let what = Follow { name: "sfu_room_events", stream: events.namespace.events_stream(), filter_subject: events.namespace.event_subject("room", "*") };
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
    for stored in &commit.events {
        let Ok(room) = Uuid::parse_str(&stored.aggregate_id) else {
            tracing::warn!(subject = %message.subject, id = %stored.aggregate_id, "a room event of no room id");
            continue;
        };
        let span = tracing::info_span!("sfu.room_event", %room);
        rapat_telemetry::continue_nats_trace(&span, message.headers.as_ref());
        let _applying = span.enter();
        match decode_known_event::<RoomEvent>(stored) {
            Ok(Some(event)) => {
                if let Some(change) = room_change(room, &event) {
                    apply(change);
                }
            }
            // A type a newer build added: nothing this build forwards depends on it.
            Ok(None) => tracing::debug!(event = %stored.event_type, "unknown room event type; skipped"),
            Err(error) => tracing::warn!(event = %stored.event_type, %error, "cannot decode a room event"),
        }
    }
}

/// What a room event means for media, if anything.
pub fn room_change(room: Uuid, event: &RoomEvent) -> Option<RoomChange> {
    match event {
        RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
            Some(RoomChange::UserGone { room, user: user_id.as_uuid() })
        }
        RoomEvent::ParticipantMutedByHost { user_id, .. } => Some(RoomChange::AudioBlocked { room, user: user_id.as_uuid(), blocked: true }),
        RoomEvent::ParticipantAudioChanged { user_id, muted } => Some(RoomChange::AudioBlocked { room, user: user_id.as_uuid(), blocked: *muted }),
        RoomEvent::RoomEnded {} => Some(RoomChange::Ended { room }),
        // Allowed to unmute is not unmuted: the microphone stays off until the
        // participant's own `ParticipantAudioChanged`.
        RoomEvent::ParticipantUnmuteAllowed { .. }
        | RoomEvent::RoomCreated { .. }
        | RoomEvent::RoomSettingsUpdated { .. }
        | RoomEvent::ParticipantJoined { .. }
        | RoomEvent::ParticipantVideoChanged { .. }
        | RoomEvent::ParticipantScreenShareChanged { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rapat_domain::envelope::{StoredEvent, decode_event, schema_version_of, split_event};
    use rapat_domain::ids::UserId;

    use super::*;

    /// Stores `event` of `room` as the command path does, then decodes and maps it.
    fn check(room: Uuid, event: RoomEvent, expected: Option<RoomChange>) {
        let (event_type, payload) = split_event(&event).expect("splits");
        let stored = StoredEvent {
            event_id: Uuid::new_v4(),
            aggregate_type: "room".into(),
            aggregate_id: room.to_string(),
            aggregate_version: 1,
            event_type,
            schema_version: schema_version_of(&event).expect("version"),
            timestamp: Utc::now(),
            actor: None,
            correlation_id: None,
            command_id: "c".into(),
            payload,
        };
        let decoded: RoomEvent = decode_event(&stored).expect("decodes");
        assert_eq!(room_change(room, &decoded), expected, "{event:?}");
    }

    #[test]
    fn stored_room_events_become_media_changes() {
        let (room, target, host) = (Uuid::new_v4(), Uuid::new_v4(), UserId::from_uuid(Uuid::new_v4()));
        let user = UserId::from_uuid(target);
        let gone = Some(RoomChange::UserGone { room, user: target });
        let blocked = |blocked| Some(RoomChange::AudioBlocked { room, user: target, blocked });
        check(room, RoomEvent::ParticipantLeft { user_id: user }, gone.clone());
        check(room, RoomEvent::ParticipantRemoved { user_id: user, removed_by: host }, gone);
        check(room, RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: host }, blocked(true));
        check(room, RoomEvent::ParticipantAudioChanged { user_id: user, muted: true }, blocked(true));
        check(room, RoomEvent::ParticipantAudioChanged { user_id: user, muted: false }, blocked(false));
        check(room, RoomEvent::RoomEnded {}, Some(RoomChange::Ended { room }));
        check(room, RoomEvent::ParticipantJoined { user_id: user }, None);
        check(room, RoomEvent::ParticipantUnmuteAllowed { user_id: user, allowed_by: host }, None);
        check(room, RoomEvent::ParticipantVideoChanged { user_id: user, on: true }, None);
    }
}
