//! What the gateway does with each client message. Anything malformed gets an
//! `error` message back and the socket stays open.

use axum::extract::ws::Utf8Bytes;
use chrono::Utc;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use rapat_wire::signal::SfuRequestKind;
use serde::Deserialize as _;
use serde_json::{Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::MAX_CLIENT_MESSAGE;
use super::fanout::{Connection, Outgoing};
use super::limits::{MessageKind, SocketRates};
use super::message::{ChatText, ClientMessage, Envelope, Negotiation, ServerMessage};
use crate::auth::AuthUser;
use crate::chat::StoredChat;
use crate::state::AppState;

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
    let envelope = (text.len() <= MAX_CLIENT_MESSAGE).then(|| read_envelope(text));
    let kind = match &envelope {
        Some(Ok((envelope, _))) => MessageKind::of(&envelope.kind),
        _ => MessageKind::Other,
    };
    if !rates.allow(kind) {
        return Err(kind);
    }
    let (envelope, json) = match envelope {
        Some(Ok(read)) => read,
        None => {
            reply_error(connection, "message_too_large", "a message may be at most 64 KiB");
            return Ok(());
        }
        Some(Err(_)) => {
            reply_error(connection, "bad_json", "a message must be a JSON object with a string \"type\"");
            return Ok(());
        }
    };
    let message = match ClientMessage::decode(&envelope, &json) {
        Ok(message) => message,
        Err(refused) => {
            reply_error(connection, refused.code, &refused.message);
            return Ok(());
        }
    };
    // Each message is a trace of its own (the socket outlives any request); the
    // commands it runs carry it on to the projections and the SFU.
    let span = tracing::info_span!("ws.message", kind = %envelope.kind, room = %connection.identity.room, user = %connection.identity.user);
    dispatch(state, connection, auth, message).instrument(span).await;
    Ok(())
}

/// The message as JSON and its outline; an error when it is not a JSON object
/// with a string `type`.
fn read_envelope(text: &str) -> Result<(Envelope, Value), serde_json::Error> {
    let json: Value = serde_json::from_str(text)?;
    let envelope = Envelope::deserialize(&json)?;
    Ok((envelope, json))
}

async fn dispatch(state: &AppState, connection: &Connection, auth: &AuthUser, message: ClientMessage) {
    let user = auth.user_id;
    match message {
        ClientMessage::Auth {} => {}
        ClientMessage::JoinRoom {} => {
            let text = connection.identity.message(&ServerMessage::UserJoined {}, None);
            publish(state, connection, Some(connection.id), None, text).await;
        }
        ClientMessage::Chat { payload } => chat(state, connection, &payload.message).await,
        ClientMessage::Mute { payload } => {
            media(state, connection, auth, RoomCommand::SetAudio { user, muted: payload.muted }).await
        }
        ClientMessage::Video { payload } => {
            media(state, connection, auth, RoomCommand::SetVideo { user, on: payload.on }).await
        }
        ClientMessage::ScreenShare { payload } => {
            let command = RoomCommand::SetScreenShare { user, sharing: payload.sharing };
            media(state, connection, auth, command).await;
        }
        ClientMessage::RequestUnmute {} => request_unmute(state, connection, auth).await,
        ClientMessage::AllowUnmute { target } => allow_unmute(state, connection, auth, UserId::from_uuid(target)).await,
        ClientMessage::Offer(negotiation) => {
            negotiate(state, connection, SfuRequestKind::Offer, ServerMessage::Offer, negotiation).await
        }
        ClientMessage::Answer(negotiation) => {
            negotiate(state, connection, SfuRequestKind::Answer, ServerMessage::Answer, negotiation).await
        }
        ClientMessage::IceCandidate(negotiation) => {
            negotiate(state, connection, SfuRequestKind::IceCandidate, ServerMessage::IceCandidate, negotiation).await;
        }
        ClientMessage::VideoConstraints { payload } => {
            let payload = serde_json::to_value(payload).unwrap_or_default();
            let request = connection.identity.sfu_request(SfuRequestKind::VideoConstraints, connection.id, payload);
            if let Err(error) = state.signaling.publish_to_sfu(&request).await {
                tracing::warn!(%error, "cannot publish to the SFU");
                reply_error(connection, "unavailable", "the message could not be sent; try again");
            }
        }
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
async fn chat(state: &AppState, connection: &Connection, text: &ChatText) {
    let text = text.as_str();
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
            let chat = ServerMessage::Chat { message: stored.message, id };
            let text = identity.message_at(&chat, None, stored.timestamp);
            publish(state, connection, None, None, text).await;
        }
        Err(error) => {
            tracing::warn!(%error, "a chat message was not stored");
            reply_error(
                connection,
                "chat_unavailable",
                "the message could not be stored, so it was not sent; try again",
            );
        }
    }
}

/// Records a media change as a room command. Its event, not this handler, tells
/// the room (see `events.rs`), so a change is broadcast once however it was made.
async fn media(state: &AppState, connection: &Connection, auth: &AuthUser, command: RoomCommand) {
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
    let text = connection.identity.message(&ServerMessage::UnmuteRequested {}, None);
    publish(state, connection, None, Some(row.host_id.as_uuid()), text).await;
}

/// The host lets a participant they muted unmute again (recorded as a room
/// event, which tells the room).
async fn allow_unmute(state: &AppState, connection: &Connection, auth: &AuthUser, target: UserId) {
    let command = RoomCommand::AllowUnmute { actor: auth.user_id, target };
    let room = connection.identity.room.to_string();
    if let Err(error) = state.write(&state.rooms, &room, command, auth.command()).await {
        reply_error(connection, error.code, &error.message);
    }
}

/// `offer` / `answer` / `ice-candidate`: to one participant with `targetUserId`
/// (peer-to-peer, as `relayed`), else to the room's SFU (as `kind`).
async fn negotiate(
    state: &AppState,
    connection: &Connection,
    kind: SfuRequestKind,
    relayed: fn(Map<String, Value>) -> ServerMessage,
    negotiation: Negotiation,
) {
    let identity = &connection.identity;
    if let Some(target) = negotiation.target {
        let text = identity.message(&relayed(negotiation.payload), Some(target));
        return publish(state, connection, Some(connection.id), Some(target), text).await;
    }
    let request = identity.sfu_request(kind, connection.id, Value::Object(negotiation.payload));
    if let Err(error) = state.signaling.publish_to_sfu(&request).await {
        tracing::warn!(%error, "cannot publish to the SFU");
        reply_error(connection, "unavailable", "the message could not be sent; try again");
    }
}
