//! One socket: admission (token, room, current participant), then a reader loop
//! that hands client messages to `handle.rs` and keeps the socket's presence
//! fresh, and a writer task that drains the bounded queue.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rapat_domain::ids::RoomId;
use rapat_projections::queries;
use rapat_projections::queries::rooms::ParticipantRow;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::display_name;
use super::fanout::{Connection, Outgoing};
use super::handle::{handle, reply_error};
use super::message::{Identity, SfuMessage, auth_token};
use super::*;
use crate::auth::{AuthUser, authenticate};
use crate::state::AppState;

/// How long a client may take to send its `auth` message when the token came
/// neither in the query nor as a subprotocol.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a socket may have waiting before it counts as too slow and is dropped.
const QUEUE: usize = 256;
/// How long a socket that timed out gets to receive its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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
    let (queue, outgoing) = mpsc::channel(QUEUE);
    let connection = Arc::new(Connection::new(admitted.identity.clone(), queue));
    let identity = &admitted.identity;
    let names: Vec<(Uuid, String)> = admitted
        .participants
        .iter()
        .map(|row| (row.user_id.as_uuid(), display_name(row.first_name.as_deref(), row.last_name.as_deref())))
        .collect();
    let membership = match state.signaling.join(identity.room, Arc::clone(&connection), names, &state.db).await {
        Ok(membership) => membership,
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to the room's signaling subject");
            let frame = CloseFrame { code: CLOSE_UNAVAILABLE, reason: "signaling is unavailable; try again".into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
    };
    let user = admitted.auth.user_id;
    let presence_ttl = state.config.presence_socket_ttl;
    state.presence.socket_open(user, connection.id, identity.room, presence_ttl).await;
    let writer = tokio::spawn(write(sink, outgoing, connection.cancel.clone()));
    connection.deliver(Outgoing::Text(identity.message("config", None, json!({ "iceServers": state.config.ice_servers }))));
    connection.deliver(Outgoing::Text(participants_message(identity, admitted.participants)));

    read(&state, &connection, &admitted.auth, &mut stream).await;

    connection.cancel.cancel();
    drop(membership);
    // Every close, not only of sockets that negotiated with the SFU: the SFU
    // ignores a connection it does not know, and the gateway keeps no state.
    let disconnect = SfuMessage {
        kind: "disconnect",
        room_id: identity.room,
        user_id: identity.user,
        username: &identity.username,
        connection_id: connection.id,
        payload: &json!({}),
    };
    if let Ok(body) = serde_json::to_vec(&disconnect)
        && let Err(error) = state.signaling.publish_to_sfu(identity.room, body).await
    {
        tracing::warn!(%error, "cannot tell the SFU that a socket closed");
    }
    state.presence.socket_closed(user, connection.id).await;
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
    // Three refreshes per TTL: a socket expires only if its gateway is gone.
    let ttl = state.config.presence_socket_ttl;
    let refresh_every = (ttl / 3).max(Duration::from_millis(100));
    let mut refresh = tokio::time::interval_at(Instant::now() + refresh_every, refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        let frame = tokio::select! {
            _ = connection.cancel.cancelled() => return,
            _ = refresh.tick() => {
                let identity = &connection.identity;
                state.presence.socket_open(auth.user_id, connection.id, identity.room, ttl).await;
                continue;
            }
            _ = ticker.tick() => {
                if heard.elapsed() > state.config.ws_pong_timeout {
                    connection.deliver(Outgoing::Close(CLOSE_TIMED_OUT, "no pong in time"));
                    // Give the writer a moment to send the close frame (it cancels
                    // when done), but not more: the client is not listening.
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection.cancel.cancelled()).await;
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
