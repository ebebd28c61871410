//! What the gateway does with each client message. Anything malformed gets an
//! `error` message back and the socket stays open.

use axum::extract::ws::Utf8Bytes;
use chrono::Utc;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use serde_json::{Value, json};
use tracing::Instrument;
use uuid::Uuid;

use super::MAX_CLIENT_MESSAGE;
use super::fanout::{Connection, Outgoing};
use super::limits::{MessageKind, SocketRates};
use super::message::{ClientMessage, SfuMessage};
use crate::auth::AuthUser;
use crate::chat::StoredChat;
use crate::state::AppState;

const MAX_CHAT_CHARS: usize = 2000;

pub(super) fn reply_error(connection: &Connection, code: &str, message: &str) {
    connection.deliver(Outgoing::Text(connection.identity.error(code, message)));
}

/// Handles one text frame, unless it is one too many of its kind (`Err`: the
/// caller closes the socket).
pub(super) async fn handle(
    state: &AppState,
    connection: &Connection,
    auth: &AuthUser,
    rates: &SocketRates,
    text: &str,
) -> Result<(), MessageKind> {
    let message = (text.len() <= MAX_CLIENT_MESSAGE).then(|| serde_json::from_str::<ClientMessage>(text));
    let kind = match &message {
        Some(Ok(message)) => MessageKind::of(&message.kind),
        _ => MessageKind::Other,
    };
    if !rates.allow(kind) {
        return Err(kind);
    }
    let message = match message {
        Some(Ok(message)) => message,
        None => {
            reply_error(connection, "message_too_large", "a message may be at most 64 KiB");
            return Ok(());
        }
        Some(Err(_)) => {
            reply_error(connection, "bad_json", "a message must be a JSON object with a string \"type\"");
            return Ok(());
        }
    };
    // Each message is a trace of its own (the socket outlives any request); the
    // commands it runs carry it on to the projections and the SFU.
    let span = tracing::info_span!("ws.message", kind = %message.kind, room = %connection.identity.room, user = %connection.identity.user);
    dispatch(state, connection, auth, message).instrument(span).await;
    Ok(())
}

async fn dispatch(state: &AppState, connection: &Connection, auth: &AuthUser, message: ClientMessage) {
    match message.kind.as_str() {
        "auth" => {}
        "join_room" => {
            let text = connection.identity.message("user_joined", None, json!({}));
            publish(state, connection, Some(connection.id), None, text).await;
        }
        "chat" => chat(state, connection, &message).await,
        "mute" | "video" | "screen_share" => media(state, connection, auth, &message).await,
        "request_unmute" => request_unmute(state, connection, auth).await,
        "allow_unmute" => allow_unmute(state, connection, auth, &message).await,
        "offer" | "answer" | "ice-candidate" => negotiate(state, connection, message).await,
        _ => reply_error(connection, "unknown_type", "unknown message type"),
    }
}

/// Publishes a room message; `skip` is a connection not to echo it to, `target`
/// limits it to one user.
async fn publish(state: &AppState, connection: &Connection, skip: Option<Uuid>, target: Option<Uuid>, text: Utf8Bytes) {
    if let Err(error) = state.signaling.publish(connection.identity.room, skip, target, text).await {
        tracing::warn!(%error, "cannot publish a signaling message");
        reply_error(connection, "unavailable", "the message could not be sent; try again");
    }
}

/// Stored first, then broadcast (to the sender too): what the room saw is what a
/// late joiner reads back.
async fn chat(state: &AppState, connection: &Connection, message: &ClientMessage) {
    let text = message.payload.get("message").and_then(Value::as_str).unwrap_or("");
    let length = text.chars().count();
    if text.trim().is_empty() || length > MAX_CHAT_CHARS {
        return reply_error(connection, "invalid_message", "payload.message must be 1 to 2000 characters");
    }
    let identity = &connection.identity;
    let stored = StoredChat {
        room_id: identity.room,
        user_id: identity.user,
        username: identity.username.clone(),
        message: text.to_string(),
        timestamp: Utc::now(),
    };
    match state.signaling.chat.append(&state.config, &stored).await {
        Ok(id) => {
            let payload = json!({ "message": text, "id": id });
            let text = identity.message_at("chat", None, payload, stored.timestamp);
            publish(state, connection, None, None, text).await;
        }
        Err(error) => {
            tracing::warn!(%error, "a chat message was not stored");
            reply_error(connection, "chat_unavailable", "the message could not be stored, so it was not sent; try again");
        }
    }
}

/// Records a media change as a room command. Its event, not this handler, tells
/// the room (see `events.rs`), so a change is broadcast once however it was made.
async fn media(state: &AppState, connection: &Connection, auth: &AuthUser, message: &ClientMessage) {
    let user = auth.user_id;
    let field = match message.kind.as_str() {
        "mute" => "muted",
        "video" => "on",
        _ => "sharing",
    };
    let Some(value) = message.payload.get(field).and_then(Value::as_bool) else {
        return reply_error(connection, "invalid_payload", &format!("payload.{field} must be a boolean"));
    };
    let command = match message.kind.as_str() {
        "mute" => RoomCommand::SetAudio { user, muted: value },
        "video" => RoomCommand::SetVideo { user, on: value },
        _ => RoomCommand::SetScreenShare { user, sharing: value },
    };
    let room = connection.identity.room.to_string();
    if let Err(error) = state.write(&state.rooms, &room, command, auth.command()).await {
        reply_error(connection, error.code, &error.message);
    }
}

/// A participant the host muted asks to unmute: the host's sockets are told.
async fn request_unmute(state: &AppState, connection: &Connection, auth: &AuthUser) {
    let room = RoomId::from_uuid(connection.identity.room);
    let (row, participants) = match tokio::try_join!(
        queries::rooms::by_id(&state.db, room),
        queries::rooms::current_participants(&state.db, room)
    ) {
        Ok(read) => read,
        Err(error) => return reply_error(connection, "unavailable", &format!("cannot read the room: {error}")),
    };
    let Some(row) = row else { return reply_error(connection, "room_not_found", "the room does not exist") };
    let muted_by_host = participants.iter().any(|p| p.user_id == auth.user_id && p.muted_by_host);
    if !muted_by_host {
        return reply_error(connection, "not_muted_by_host", "the host has not muted you: unmute yourself");
    }
    let text = connection.identity.message("unmute_requested", None, json!({}));
    publish(state, connection, None, Some(row.host_id.as_uuid()), text).await;
}

/// The host lets a participant they muted unmute again (recorded as a room
/// event, which tells the room).
async fn allow_unmute(state: &AppState, connection: &Connection, auth: &AuthUser, message: &ClientMessage) {
    let Some(target) = message.target_user_id.as_deref().and_then(|id| Uuid::parse_str(id).ok()) else {
        return reply_error(connection, "invalid_target", "allow_unmute needs targetUserId: the participant's user id");
    };
    let command = RoomCommand::AllowUnmute { actor: auth.user_id, target: UserId::from_uuid(target) };
    let room = connection.identity.room.to_string();
    if let Err(error) = state.write(&state.rooms, &room, command, auth.command()).await {
        reply_error(connection, error.code, &error.message);
    }
}

/// `offer` / `answer` / `ice-candidate`: to one participant with `targetUserId`
/// (peer-to-peer), else to the room's SFU.
async fn negotiate(state: &AppState, connection: &Connection, message: ClientMessage) {
    let identity = &connection.identity;
    if !message.payload.is_object() {
        return reply_error(connection, "invalid_payload", "the payload of an offer, answer or ice-candidate must be an object");
    }
    if let Some(target) = message.target_user_id {
        let Ok(target) = Uuid::parse_str(&target) else {
            return reply_error(connection, "invalid_target", "targetUserId must be a user's id");
        };
        let text = identity.message(&message.kind, Some(target), message.payload);
        return publish(state, connection, Some(connection.id), Some(target), text).await;
    }
    let body = SfuMessage {
        kind: &message.kind,
        room_id: identity.room,
        user_id: identity.user,
        username: &identity.username,
        connection_id: connection.id,
        payload: &message.payload,
    };
    let Ok(body) = serde_json::to_vec(&body) else {
        return reply_error(connection, "invalid_payload", "the payload cannot be forwarded");
    };
    if let Err(error) = state.signaling.publish_to_sfu(identity.room, body).await {
        tracing::warn!(%error, "cannot publish to the SFU");
        reply_error(connection, "unavailable", "the message could not be sent; try again");
    }
}
