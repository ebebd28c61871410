//! Room events from the event stream, as the SFU applies them: followed from
//! the stream's start by `rapat_commands::follow_from_start`, which keeps the
//! position across NATS restarts, so a room event written while the SFU was cut
//! off still reaches it, once. Each stored event is decoded into the domain's
//! typed [`RoomEvent`] (upcast first), the same path every other consumer takes,
//! and folded into the admission rosters (`admission.rs`); what it means for
//! media now (a leave, a mute, an end) goes to the room core. Events stored
//! before the SFU started only build the rosters (the peers they were about are
//! gone with the previous process), except whether a room records: that is a
//! state the peers who come back meet, so a restarted SFU goes on recording a
//! room the host has not stopped.

use async_nats::jetstream;
use rapat_commands::{EventStoreConfig, Follow, follow_from_start};
use rapat_domain::envelope::{StoredCommit, decode_known_event};
use rapat_domain::room::RoomEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::RoomChange;
use crate::admission::Rosters;

/// Folds every room event into `rosters` and applies those stored after the
/// stream's end at start to `apply` (with their stream sequence), until `cancel`.
pub async fn follow(
    nats: async_nats::Client,
    events: EventStoreConfig,
    rosters: Rosters,
    mut apply: impl FnMut(RoomChange, u64),
    cancel: CancellationToken,
) {
    let what = Follow {
        name: "sfu_room_events",
        stream: events.namespace.events_stream(),
        filter_subject: events.namespace.event_subject("room", "*"),
    };
    // The stream's end when the follower starts: changes before it concern no live peer.
    let live_from = match jetstream::new(nats.clone()).get_stream(events.namespace.events_stream()).await {
        Ok(stream) => stream.cached_info().state.last_sequence + 1,
        Err(error) => {
            tracing::warn!(%error, "cannot read the event stream's end; applying every room change from its start");
            0
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = follow_from_start(nats, what, |message| apply_message(message, &rosters, live_from, &mut apply)) => {}
    }
}

fn apply_message(
    message: &jetstream::Message,
    rosters: &Rosters,
    live_from: u64,
    apply: &mut impl FnMut(RoomChange, u64),
) {
    let sequence = message.info().map_or(0, |info| info.stream_sequence);
    apply_commit(message, rosters, sequence, sequence >= live_from, apply);
    rosters.applied_through(sequence);
}

fn apply_commit(
    message: &jetstream::Message,
    rosters: &Rosters,
    sequence: u64,
    live: bool,
    apply: &mut impl FnMut(RoomChange, u64),
) {
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
                rosters.apply(room, &event);
                if let Some(change) = room_change(room, &event)
                    && (live || holds_after_restart(&change))
                {
                    apply(change, sequence);
                }
            }
            // A type a newer build added: nothing this build forwards or admits on depends on it.
            Ok(None) => tracing::debug!(event = %stored.event_type, "unknown room event type; skipped"),
            Err(error) => tracing::warn!(event = %stored.event_type, %error, "cannot decode a room event"),
        }
    }
}

/// Whether a change stored before the SFU started still applies to it (see
/// the module's documentation).
fn holds_after_restart(change: &RoomChange) -> bool {
    matches!(change, RoomChange::Recording { .. })
}

/// What a room event means for media, if anything.
pub fn room_change(room: Uuid, event: &RoomEvent) -> Option<RoomChange> {
    match event {
        RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
            Some(RoomChange::UserGone { room, user: user_id.as_uuid() })
        }
        RoomEvent::ParticipantMutedByHost { user_id, .. } => {
            Some(RoomChange::AudioBlocked { room, user: user_id.as_uuid(), blocked: true })
        }
        RoomEvent::ParticipantAudioChanged { user_id, muted } => {
            Some(RoomChange::AudioBlocked { room, user: user_id.as_uuid(), blocked: *muted })
        }
        RoomEvent::RoomEnded {} => Some(RoomChange::Ended { room }),
        RoomEvent::RecordingStarted { .. } => Some(RoomChange::Recording { room, on: true }),
        RoomEvent::RecordingStopped { .. } => Some(RoomChange::Recording { room, on: false }),
        // Allowed to unmute is not unmuted: the microphone stays off until the
        // participant's own `ParticipantAudioChanged`.
        RoomEvent::ParticipantUnmuteAllowed { .. }
        | RoomEvent::RoomCreated { .. }
        | RoomEvent::RoomSettingsUpdated { .. }
        | RoomEvent::ParticipantJoined { .. }
        | RoomEvent::ParticipantVideoChanged { .. }
        | RoomEvent::ParticipantScreenShareChanged { .. }
        // The schedule is not media's; a cancellation's `RoomEnded` follows it.
        | RoomEvent::RoomRescheduled { .. }
        | RoomEvent::RoomCancelled { .. }
        | RoomEvent::MeetingReminderDue { .. }
        // What the SFU itself recorded, and the files' retention: nothing to write.
        | RoomEvent::TrackRecordingFinished { .. }
        | RoomEvent::TrackRecordingExpired { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rapat_domain::envelope::{StoredEvent, decode_event, schema_version_of, split_event};
    use rapat_domain::ids::UserId;

    use super::*;

    #[test]
    fn only_whether_a_room_records_applies_from_before_the_start() {
        let room = Uuid::new_v4();
        let user = Uuid::new_v4();
        assert!(holds_after_restart(&RoomChange::Recording { room, on: true }));
        assert!(holds_after_restart(&RoomChange::Recording { room, on: false }));
        assert!(!holds_after_restart(&RoomChange::UserGone { room, user }));
        assert!(!holds_after_restart(&RoomChange::AudioBlocked { room, user, blocked: true }));
        assert!(!holds_after_restart(&RoomChange::Ended { room }));
    }

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
