//! A room's stored events, as its sockets on this gateway see them (the mapping is
//! in the module docs of `ws`). Each message is made from the event alone, so it
//! is the same on every gateway and whether the change came through REST or a
//! socket.

use std::sync::Arc;

use rapat_commands::EVENT_TYPES_HEADER;
use rapat_domain::envelope::{StoredCommit, StoredEvent};
use rapat_domain::ids::UserId;
use rapat_projections::queries;
use serde_json::{Value, json};
use uuid::Uuid;

use super::fanout::{LocalRoom, Outgoing, header};
use super::message::Identity;
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
];

pub(super) async fn deliver(room: &Arc<LocalRoom>, message: &async_nats::Message) {
    // The header names the commit's event types, so most commits are skipped unread.
    let relevant = header(message, EVENT_TYPES_HEADER).is_some_and(|types| types.split(',').any(|t| FOLLOWED.contains(&t)));
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

async fn deliver_event(room: &Arc<LocalRoom>, event: &StoredEvent) {
    let field = |name: &str| event.payload.get(name);
    let Some(user) = field("userId").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()) else {
        if event.event_type == "RoomEnded" {
            return room_ended(room, event);
        }
        tracing::warn!(event = %event.event_type, "a room event without a readable userId; sockets not updated");
        return;
    };
    let flag = |name: &str| field(name).and_then(Value::as_bool).unwrap_or_default();
    let (kind, payload) = match event.event_type.as_str() {
        "ParticipantJoined" => ("user_joined", json!({})),
        "ParticipantLeft" => ("user_left", json!({})),
        "ParticipantRemoved" => ("user_left", json!({ "removedBy": field("removedBy") })),
        "ParticipantMutedByHost" => ("mute", json!({ "muted": true, "byHost": true })),
        "ParticipantUnmuteAllowed" => ("unmute_allowed", json!({ "allowedBy": field("allowedBy") })),
        "ParticipantAudioChanged" => ("mute", json!({ "muted": flag("muted") })),
        "ParticipantVideoChanged" => ("video", json!({ "on": flag("on") })),
        "ParticipantScreenShareChanged" => ("screen_share", json!({ "sharing": flag("sharing") })),
        _ => return,
    };
    let identity = Identity { room: room.id, user, username: name_of(room, user).await };
    let text = identity.message_at(kind, None, payload, event.timestamp);
    for connection in room.connections() {
        let theirs = connection.identity.user == user;
        match event.event_type.as_str() {
            "ParticipantLeft" if theirs => connection.deliver(Outgoing::Close(CLOSE_LEFT, "you left the room")),
            "ParticipantRemoved" if theirs => {
                let removed = json!({ "removedBy": field("removedBy") });
                let notice = identity.message_at("removed", None, removed, event.timestamp);
                connection.deliver(Outgoing::Text(notice));
                connection.deliver(Outgoing::Close(CLOSE_REMOVED, "removed from the room by the host"));
            }
            _ => connection.deliver(Outgoing::Text(text.clone())),
        }
    }
}

fn room_ended(room: &LocalRoom, event: &StoredEvent) {
    for connection in room.connections() {
        let notice = connection.identity.message_at("room_ended", None, json!({}), event.timestamp);
        connection.deliver(Outgoing::Text(notice));
        connection.deliver(Outgoing::Close(CLOSE_ROOM_ENDED, "the room has ended"));
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
    [first.unwrap_or(""), last.unwrap_or("")].iter().filter(|part| !part.is_empty()).copied().collect::<Vec<_>>().join(" ")
}
