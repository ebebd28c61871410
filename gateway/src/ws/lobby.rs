//! The lobby socket: `/ws?token=...` without `roomId`. It belongs to no room: it
//! gets `unread_count` once open, then the user's `notification`s as they come,
//! and nothing of any room. It counts towards the user's socket cap like a room
//! socket (in the presence bucket under [`LOBBY`], which no room cap applies to),
//! is kept alive by pings, and closes like the others on logout (4401), on
//! shutdown (1012) or when it stops answering (4408). What a client sends on it
//! gets an `error` (`lobby_is_receive_only`), within the socket's message rate.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use rapat_projections::queries;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::fanout::{Connection, Outgoing};
use super::limits::{MessageKind, SocketRates};
use super::liveness::Liveness;
use super::message::{Identity, ServerMessage, user_message};
use super::session::{Refusal, close, drain, first_message_token, write};
use super::*;
use crate::auth::{AuthUser, authenticate, check_session};
use crate::presence::{SocketCaps, TooManySockets};
use crate::state::AppState;

/// The "room" of lobby sockets in the presence bucket: none.
pub const LOBBY: Uuid = Uuid::nil();
const QUEUE: usize = 256;

pub async fn run(socket: WebSocket, state: AppState, token: Option<String>) {
    let _open = state.shutdown.session();
    let (mut sink, mut stream) = socket.split();
    let refuse = |Refusal(code, reason): Refusal| Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    let auth = match admit(&state, token, &mut stream).await {
        Ok(auth) => auth,
        Err(refusal) => {
            let _ = sink.send(refuse(refusal)).await;
            return;
        }
    };
    let user = auth.user_id;
    let (queue, outgoing) = mpsc::channel(QUEUE);
    let identity = Identity { room: LOBBY, user: user.as_uuid(), username: String::new() };
    let connection = Arc::new(Connection::new(identity, queue));
    let session = state.session_cache.watch(auth.session_id, connection.id);
    if let Err(error) = check_session(&state, auth.session_id, user).await {
        let _ = sink.send(refuse(Refusal::from(error))).await;
        return;
    }
    let ttl = state.config.presence_socket_ttl;
    let caps = SocketCaps { per_user: state.config.ws_max_sockets_per_user, per_room: 0 };
    if let Err(TooManySockets { held }) = state.presence.admit_socket(user, connection.id, LOBBY, ttl, caps).await {
        tracing::info!(%user, held, "refusing a lobby websocket: too many open sockets");
        let reason = format!("too many open sockets ({held}); close one and try again");
        let _ = sink.send(refuse(Refusal::new(CLOSE_TOO_MANY_SOCKETS, reason))).await;
        return;
    }
    let feed = match state.signaling.feeds.join(Arc::clone(&connection)).await {
        Ok(feed) => feed,
        Err(error) => {
            tracing::warn!(%error, "cannot open a lobby socket");
            state.presence.socket_closed(user, connection.id).await;
            let _ =
                sink.send(refuse(Refusal::new(CLOSE_UNAVAILABLE, "notifications are unavailable; try again"))).await;
            return;
        }
    };
    let writer = tokio::spawn(write(sink, outgoing, connection.cancel.clone()));
    // After subscribing: a client that read the count misses no later notification.
    match queries::notifications::unread_count(&state.db, user).await {
        Ok(count) => {
            connection.deliver(Outgoing::Text(user_message(user.as_uuid(), &ServerMessage::UnreadCount { count })));
            read(&state, &connection, &auth, &session.revoked, &mut stream).await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the unread count for a lobby socket");
            close(&connection, CLOSE_UNAVAILABLE, "notifications are unavailable; try again").await;
        }
    }
    connection.cancel.cancel();
    drop(session);
    drop(feed);
    state.presence.socket_closed(user, connection.id).await;
    let _ = writer.await;
}

async fn admit(
    state: &AppState,
    token: Option<String>,
    stream: &mut SplitStream<WebSocket>,
) -> Result<AuthUser, Refusal> {
    let token = match token {
        Some(token) => token,
        None => first_message_token(stream).await.ok_or_else(|| {
            Refusal::new(CLOSE_UNAUTHORIZED, "a token is needed: ?token=, a subprotocol or an auth message")
        })?,
    };
    authenticate(state, &token).await.map_err(Refusal::from)
}

async fn read(
    state: &AppState,
    connection: &Connection,
    auth: &AuthUser,
    revoked: &CancellationToken,
    stream: &mut SplitStream<WebSocket>,
) {
    let rates = SocketRates::new(&state.config.ws_rate_limits);
    let mut liveness = Liveness::new(state);
    while let Some(frame) = liveness.next_frame(state, connection, auth, revoked, stream).await {
        match frame {
            Message::Text(_) | Message::Binary(_) if rates.allow(MessageKind::Other) => {
                let error = ServerMessage::Error {
                    code: "lobby_is_receive_only".to_owned(),
                    message: "the lobby socket only receives notifications; open a room socket to signal".to_owned(),
                };
                connection.deliver(Outgoing::Text(user_message(auth.user_id.as_uuid(), &error)));
            }
            Message::Text(_) | Message::Binary(_) => {
                close(connection, CLOSE_POLICY, MessageKind::Other.close_reason()).await;
                return drain(stream).await;
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}
