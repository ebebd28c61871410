//! A room's stored events, as its sockets on this gateway see them (the mapping is
//! in the module docs of `ws`). Each event is decoded once into the domain's
//! `RoomEvent` (envelope, upcast, typed enum), so a renamed field is a compile
//! error here. Each message is made from the event alone, so it is the same on
//! every gateway and whether the change came through REST or a socket.

use std::sync::Arc;

use rapat_commands::EVENT_TYPES_HEADER;
use rapat_domain::envelope::{StoredCommit, StoredEvent, decode_event};
use rapat_domain::ids::UserId;
use rapat_domain::room::RoomEvent;
use rapat_projections::queries;
use uuid::Uuid;

use super::fanout::{LocalRoom, Outgoing, header};
use super::message::{Identity, ServerMessage};
use super::{CLOSE_LEFT, CLOSE_REMOVED, CLOSE_ROOM_ENDED};

/// The event types that reach sockets.
const FOLLOWED: &[&str] = &[
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantRemoved",
    "ParticipantMutedByHost",
    "ParticipantUnmuteAllowed",
    "ParticipantAudioChanged",
    "ParticipantVideoChanged",
    "ParticipantScreenShareChanged",
    "RoomEnded",
    "RecordingStarted",
    "RecordingStopped",
];

pub(super) async fn deliver(room: &Arc<LocalRoom>, message: &async_nats::Message) {
    // The header names the commit's event types, so most commits are skipped unread.
    let relevant =
        header(message, EVENT_TYPES_HEADER).is_some_and(|types| types.split(',').any(|t| FOLLOWED.contains(&t)));
    if !relevant {
        return;
    }
    let Ok(commit) = serde_json::from_slice::<StoredCommit>(&message.payload) else {
        tracing::warn!(subject = %message.subject, "cannot read a room event; sockets not updated");
        return;
    };
    for event in &commit.events {
        deliver_event(room, event).await;
    }
}

async fn deliver_event(room: &Arc<LocalRoom>, stored: &StoredEvent) {
    let event = match decode_event::<RoomEvent>(stored) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, event = %stored.event_type, "cannot decode a room event; sockets not updated");
            return;
        }
    };
    // What the room hears, and whose sockets a leave or removal closes instead.
    let (user, message, closes) = match event {
        RoomEvent::ParticipantJoined { user_id } => (user_id, ServerMessage::UserJoined {}, Closes::No),
        RoomEvent::ParticipantLeft { user_id } => (user_id, ServerMessage::UserLeft { removed_by: None }, Closes::Left),
        RoomEvent::ParticipantRemoved { user_id, removed_by } => (
            user_id,
            ServerMessage::UserLeft { removed_by: Some(removed_by.as_uuid()) },
            Closes::Removed { removed_by },
        ),
        RoomEvent::ParticipantMutedByHost { user_id, .. } => {
            (user_id, ServerMessage::Mute { muted: true, by_host: true }, Closes::No)
        }
        RoomEvent::ParticipantUnmuteAllowed { user_id, allowed_by } => {
            (user_id, ServerMessage::UnmuteAllowed { allowed_by: allowed_by.as_uuid() }, Closes::No)
        }
        RoomEvent::ParticipantAudioChanged { user_id, muted } => {
            (user_id, ServerMessage::Mute { muted, by_host: false }, Closes::No)
        }
        RoomEvent::ParticipantVideoChanged { user_id, on } => (user_id, ServerMessage::Video { on }, Closes::No),
        RoomEvent::ParticipantScreenShareChanged { user_id, sharing } => {
            (user_id, ServerMessage::ScreenShare { sharing }, Closes::No)
        }
        RoomEvent::RoomEnded {} => return room_ended(room, stored),
        // Not the room's sockets' business: notifications tell people of schedules.
        RoomEvent::RoomCreated { .. }
        | RoomEvent::RoomSettingsUpdated { .. }
        | RoomEvent::RoomRescheduled { .. }
        | RoomEvent::RoomCancelled { .. }
        | RoomEvent::MeetingReminderDue { .. }
        // Files for the host's list, not news for the room.
        | RoomEvent::TrackRecordingFinished { .. }
        | RoomEvent::TrackRecordingExpired { .. } => return,
        RoomEvent::RecordingStarted { started_by } => {
            (started_by, ServerMessage::Recording { active: true }, Closes::No)
        }
        RoomEvent::RecordingStopped { stopped_by: Some(stopped_by), .. } => {
            (stopped_by, ServerMessage::Recording { active: false }, Closes::No)
        }
        // Stopped by the room's end, whose `RoomEnded` follows and closes every socket.
        RoomEvent::RecordingStopped { stopped_by: None, .. } => return recording_stopped_by_end(room, stored),
    };
    let user = user.as_uuid();
    let identity = Identity { room: room.id, user, username: name_of(room, user).await };
    let text = identity.message_at(&message, None, stored.timestamp);
    for connection in room.connections() {
        let theirs = connection.identity.user == user;
        match closes {
            Closes::Left if theirs => connection.deliver(Outgoing::Close(CLOSE_LEFT, "you left the room")),
            Closes::Removed { removed_by } if theirs => {
                let removed = ServerMessage::Removed { removed_by: removed_by.as_uuid() };
                let notice = identity.message_at(&removed, None, stored.timestamp);
                connection.deliver(Outgoing::Text(notice));
                connection.deliver(Outgoing::Close(CLOSE_REMOVED, "removed from the room by the host"));
            }
            _ => connection.deliver(Outgoing::Text(text.clone())),
        }
    }
}

/// Whether an event ends its user's sockets here rather than telling them.
#[derive(Clone, Copy)]
enum Closes {
    No,
    Left,
    Removed { removed_by: UserId },
}

fn room_ended(room: &LocalRoom, event: &StoredEvent) {
    for connection in room.connections() {
        let notice = connection.identity.message_at(&ServerMessage::RoomEnded {}, None, event.timestamp);
        connection.deliver(Outgoing::Text(notice));
        connection.deliver(Outgoing::Close(CLOSE_ROOM_ENDED, "the room has ended"));
    }
}

fn recording_stopped_by_end(room: &LocalRoom, event: &StoredEvent) {
    for connection in room.connections() {
        let notice = connection.identity.message_at(&ServerMessage::Recording { active: false }, None, event.timestamp);
        connection.deliver(Outgoing::Text(notice));
    }
}

/// The display name of `user`: from a socket or participant list seen here, else
/// from the users read model (remembered). Empty if neither knows it.
async fn name_of(room: &LocalRoom, user: Uuid) -> String {
    if let Some(name) = room.known_name(user) {
        return name;
    }
    match queries::users::by_id(&room.db, UserId::from_uuid(user)).await {
        Ok(Some(row)) => {
            let name = display_name(Some(&row.first_name), Some(&row.last_name));
            room.remember_name(user, name.clone());
            name
        }
        Ok(None) => String::new(),
        Err(error) => {
            tracing::warn!(%error, %user, "cannot read a user's name for a room message");
            String::new()
        }
    }
}

/// "First Last", leaving out empty parts.
pub(super) fn display_name(first: Option<&str>, last: Option<&str>) -> String {
    [first.unwrap_or(""), last.unwrap_or("")]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}
