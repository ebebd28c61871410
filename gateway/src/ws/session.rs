//! One socket: admission (token, room, current participant), then a reader loop
//! that handles client messages and a writer task that drains the bounded queue.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use rapat_projections::queries::rooms::ParticipantRow;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::fanout::{Connection, Outgoing};
use super::message::{ClientMessage, Identity, auth_token};
use super::*;
use crate::auth::{AuthUser, authenticate};
use crate::state::AppState;

/// How long a client may take to send its `auth` message when the token came
/// neither in the query nor as a subprotocol.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a socket may have waiting before it counts as too slow and is dropped.
const QUEUE: usize = 256;
const MAX_CHAT_CHARS: usize = 2000;

struct Refusal(u16, String);

impl Refusal {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

struct Admitted {
    auth: AuthUser,
    identity: Identity,
    participants: Vec<ParticipantRow>,
}

pub async fn run(socket: WebSocket, state: AppState, room: Option<String>, token: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let admitted = match admit(&state, room, token, &mut stream).await {
        Ok(admitted) => admitted,
        Err(Refusal(code, reason)) => {
            let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
            return;
        }
    };
    state.presence.touch(admitted.auth.user_id).await;
    let (queue, outgoing) = mpsc::channel(QUEUE);
    let connection = Arc::new(Connection::new(admitted.identity.clone(), queue));
    let identity = &admitted.identity;
    let membership = match state.signaling.join(identity.room, Arc::clone(&connection)).await {
        Ok(membership) => membership,
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to the room's signaling subject");
            let frame = CloseFrame { code: CLOSE_UNAVAILABLE, reason: "signaling is unavailable; try again".into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
    };
    let writer = tokio::spawn(write(sink, outgoing, connection.cancel.clone()));
    connection.deliver(Outgoing::Text(participants_message(identity, admitted.participants)));
    broadcast(&state, &connection, "user_joined", json!({})).await;

    read(&state, &connection, &admitted.auth, &mut stream).await;

    connection.cancel.cancel();
    drop(membership);
    broadcast(&state, &connection, "user_left", json!({})).await;
    let _ = writer.await;
}

async fn admit(
    state: &AppState,
    room: Option<String>,
    token: Option<String>,
    stream: &mut SplitStream<WebSocket>,
) -> Result<Admitted, Refusal> {
    let room = room
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| Refusal::new(CLOSE_BAD_REQUEST, "roomId must be a room's id"))?;
    let token = match token {
        Some(token) => token,
        None => first_message_token(stream)
            .await
            .ok_or_else(|| Refusal::new(CLOSE_UNAUTHORIZED, "a token is needed: ?token=, a subprotocol or an auth message"))?,
    };
    let auth = authenticate(state, &token).await.map_err(|error| {
        if error.status.is_server_error() {
            Refusal::new(CLOSE_UNAVAILABLE, error.message)
        } else {
            Refusal::new(CLOSE_UNAUTHORIZED, error.message)
        }
    })?;
    let unavailable = |error: queries::QueryError| Refusal::new(CLOSE_UNAVAILABLE, format!("cannot read the room: {error}"));
    queries::rooms::by_id(&state.db, RoomId::from_uuid(room))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Refusal::new(CLOSE_UNKNOWN_ROOM, "the room does not exist"))?;
    let participants = queries::rooms::current_participants(&state.db, RoomId::from_uuid(room)).await.map_err(unavailable)?;
    let me = participants
        .iter()
        .find(|row| row.user_id == auth.user_id)
        .ok_or_else(|| Refusal::new(CLOSE_NOT_PARTICIPANT, "join the room through the REST API first"))?;
    let username = display_name(me.first_name.as_deref(), me.last_name.as_deref());
    let identity = Identity { room, user: auth.user_id.as_uuid(), username };
    Ok(Admitted { auth, identity, participants })
}

async fn first_message_token(stream: &mut SplitStream<WebSocket>) -> Option<String> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, async {
        loop {
            match stream.next().await? {
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .ok()??;
    auth_token(&first)
}

fn display_name(first: Option<&str>, last: Option<&str>) -> String {
    [first.unwrap_or(""), last.unwrap_or("")].iter().filter(|part| !part.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

fn participants_message(identity: &Identity, rows: Vec<ParticipantRow>) -> Utf8Bytes {
    let participants: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            json!({
                "userId": row.user_id.as_uuid(),
                "username": display_name(row.first_name.as_deref(), row.last_name.as_deref()),
                "firstName": row.first_name.unwrap_or_default(),
                "lastName": row.last_name.unwrap_or_default(),
                "joinedAt": row.joined_at,
                "audioMuted": row.audio_muted,
                "videoOn": row.video_on,
                "screenSharing": row.screen_sharing,
                "mutedByHost": row.muted_by_host,
            })
        })
        .collect();
    identity.message("participants", None, json!({ "participants": participants }))
}

/// Publishes a message from this connection to the whole room (but not back to it).
async fn broadcast(state: &AppState, connection: &Connection, kind: &str, payload: Value) {
    let text = connection.identity.message(kind, None, payload);
    publish(state, connection, Some(connection.id), None, text).await;
}

async fn publish(state: &AppState, connection: &Connection, skip: Option<Uuid>, target: Option<Uuid>, text: Utf8Bytes) {
    if let Err(error) = state.signaling.publish(connection.identity.room, skip, target, text).await {
        tracing::warn!(%error, "cannot publish a signaling message");
        connection.deliver(Outgoing::Text(connection.identity.error("unavailable", "the message could not be sent; try again")));
    }
}

async fn write(mut sink: SplitSink<WebSocket, Message>, mut outgoing: mpsc::Receiver<Outgoing>, cancel: CancellationToken) {
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => break,
            item = outgoing.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        let (message, last) = match item {
            Outgoing::Text(text) => (Message::Text(text), false),
            Outgoing::Ping => (Message::Ping(Default::default()), false),
            Outgoing::Close(code, reason) => (Message::Close(Some(CloseFrame { code, reason: reason.into() })), true),
        };
        let sent = tokio::select! {
            _ = cancel.cancelled() => break,
            sent = sink.send(message) => sent,
        };
        if sent.is_err() || last {
            break;
        }
    }
    cancel.cancel();
}

async fn read(state: &AppState, connection: &Connection, auth: &AuthUser, stream: &mut SplitStream<WebSocket>) {
    let ping_every = state.config.ws_ping_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut heard = Instant::now();
    loop {
        let frame = tokio::select! {
            _ = connection.cancel.cancelled() => return,
            _ = ticker.tick() => {
                if heard.elapsed() > state.config.ws_pong_timeout {
                    connection.deliver(Outgoing::Close(CLOSE_TIMED_OUT, "no pong in time"));
                    return;
                }
                connection.deliver(Outgoing::Ping);
                continue;
            }
            frame = stream.next() => frame,
        };
        let Some(Ok(frame)) = frame else { return };
        heard = Instant::now();
        match frame {
            Message::Text(text) => handle(state, connection, auth, text.as_str()).await,
            Message::Binary(_) => reply_error(connection, "unsupported_frame", "send JSON text frames"),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

fn reply_error(connection: &Connection, code: &str, message: &str) {
    connection.deliver(Outgoing::Text(connection.identity.error(code, message)));
}

async fn handle(state: &AppState, connection: &Connection, auth: &AuthUser, text: &str) {
    if text.len() > MAX_CLIENT_MESSAGE {
        return reply_error(connection, "message_too_large", "a message may be at most 64 KiB");
    }
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(_) => return reply_error(connection, "bad_json", "a message must be a JSON object with a string \"type\""),
    };
    let identity = &connection.identity;
    match message.kind.as_str() {
        "auth" => {}
        "join_room" => broadcast(state, connection, "user_joined", json!({})).await,
        "chat" => {
            let text = message.payload.get("message").and_then(Value::as_str).unwrap_or("");
            let length = text.chars().count();
            if text.trim().is_empty() || length > MAX_CHAT_CHARS {
                return reply_error(connection, "invalid_message", "payload.message must be 1 to 2000 characters");
            }
            let text = identity.message("chat", None, json!({ "message": text }));
            publish(state, connection, None, None, text).await;
        }
        "mute" | "video" | "screen_share" => media(state, connection, auth, &message).await,
        "offer" | "answer" | "ice-candidate" => {
            let Some(target) = message.target_user_id else {
                return reply_error(connection, "sfu_unavailable", "the SFU is not available yet; send with targetUserId (peer-to-peer)");
            };
            let Ok(target) = Uuid::parse_str(&target) else {
                return reply_error(connection, "invalid_target", "targetUserId must be a user's id");
            };
            let text = identity.message(&message.kind, Some(target), message.payload);
            publish(state, connection, Some(connection.id), Some(target), text).await;
        }
        _ => reply_error(connection, "unknown_type", "unknown message type"),
    }
}

async fn media(state: &AppState, connection: &Connection, auth: &AuthUser, message: &ClientMessage) {
    let user: UserId = auth.user_id;
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
    match state.write(&state.rooms, &room, command, auth.command()).await {
        Ok(_) => {
            let text = connection.identity.message(&message.kind, None, json!({ field: value }));
            publish(state, connection, None, None, text).await;
        }
        Err(error) => reply_error(connection, error.code, &error.message),
    }
}
