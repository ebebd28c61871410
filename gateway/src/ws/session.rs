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
use rapat_wire::signal::SfuRequestKind;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::display_name;
use super::fanout::{Connection, Outgoing};
use super::handle::{handle, reply_error};
use super::limits::{MessageKind, SocketRates};
use super::liveness::Liveness;
use super::message::{Identity, Participant, ServerMessage, auth_token};
use super::*;
use crate::auth::{AuthUser, authenticate, check_session};
use crate::error::ApiError;
use crate::presence::{SocketCaps, TooManySockets};
use crate::routes::rooms::views::ParticipantView;
use crate::state::AppState;

/// How long a client may take to send its `auth` message when the token came
/// neither in the query nor as a subprotocol.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a socket may have waiting before it counts as too slow and is dropped.
const QUEUE: usize = 256;
/// How long a socket that timed out gets to receive its close frame.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(1);

pub(super) struct Refusal(pub(super) u16, pub(super) String);

impl Refusal {
    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

/// A refused token or session: 4401, or 1011 when the check itself failed.
impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        let code = if error.status.is_server_error() { CLOSE_UNAVAILABLE } else { CLOSE_UNAUTHORIZED };
        Self(code, error.message)
    }
}

struct Admitted {
    auth: AuthUser,
    identity: Identity,
    participants: Vec<ParticipantRow>,
}

pub async fn run(socket: WebSocket, state: AppState, room: Option<String>, token: Option<String>) {
    // Held to the end: a stopping gateway waits for its sockets to close.
    let _open = state.shutdown.session();
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
    let user = admitted.auth.user_id;
    // Watched from here on, the session is checked once more: a revocation stored
    // between the token check and now would otherwise go unseen by this socket.
    let session = state.session_cache.watch(admitted.auth.session_id, connection.id);
    if let Err(Refusal(code, reason)) =
        check_session(&state, admitted.auth.session_id, user).await.map_err(Refusal::from)
    {
        let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        return;
    }
    let presence_ttl = state.config.presence_socket_ttl;
    let caps =
        SocketCaps { per_user: state.config.ws_max_sockets_per_user, per_room: state.config.ws_max_sockets_per_room };
    match state.presence.admit_socket(user, connection.id, identity.room, presence_ttl, caps).await {
        Ok(replaced) => {
            for old in replaced {
                if let Err(error) = state.signaling.replace(identity.room, old).await {
                    tracing::warn!(%error, "cannot close a socket replaced by a newer one");
                }
            }
        }
        Err(TooManySockets { held }) => {
            tracing::info!(%user, held, "refusing a websocket: too many open sockets");
            let reason = format!("too many open sockets ({held}); close one and try again");
            let _ = sink
                .send(Message::Close(Some(CloseFrame { code: CLOSE_TOO_MANY_SOCKETS, reason: reason.into() })))
                .await;
            return;
        }
    }
    let names: Vec<(Uuid, String)> = admitted
        .participants
        .iter()
        .map(|row| (row.user_id.as_uuid(), display_name(row.first_name.as_deref(), row.last_name.as_deref())))
        .collect();
    let membership = match state.signaling.join(identity.room, Arc::clone(&connection), names, &state.db).await {
        Ok(membership) => membership,
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to the room's signaling subject");
            state.presence.socket_closed(user, connection.id).await;
            let frame = CloseFrame { code: CLOSE_UNAVAILABLE, reason: "signaling is unavailable; try again".into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
    };
    // Before `config`: a client that got it also gets every notification after it.
    // Without the feed the room still works; notifications wait for the REST list.
    let feed = match state.signaling.feeds.join(Arc::clone(&connection)).await {
        Ok(feed) => Some(feed),
        Err(error) => {
            tracing::warn!(%error, "a room socket without live notifications");
            None
        }
    };
    let writer = tokio::spawn(write(sink, outgoing, connection.cancel.clone()));
    let mut ice_servers = state.config.ice_servers.clone();
    if let Some(turn) = &state.config.turn {
        ice_servers.push(turn.ice_server(identity.user, std::time::SystemTime::now()));
    }
    let config = ServerMessage::Config { ice_servers };
    connection.deliver(Outgoing::Text(identity.message(&config, None)));
    connection.deliver(Outgoing::Text(participants_message(identity, admitted.participants)));
    tell_if_recording(&state, &connection).await;

    read(&state, &connection, &admitted.auth, &session.revoked, &mut stream).await;

    connection.cancel.cancel();
    drop(session);
    drop(membership);
    drop(feed);
    // Every close, not only of sockets that negotiated with the SFU: the SFU
    // ignores a connection it does not know, and the gateway keeps no state.
    let disconnect = identity.sfu_request(SfuRequestKind::Disconnect, connection.id, json!({}));
    if let Err(error) = state.signaling.publish_to_sfu(&disconnect).await {
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
        None => first_message_token(stream).await.ok_or_else(|| {
            Refusal::new(CLOSE_UNAUTHORIZED, "a token is needed: ?token=, a subprotocol or an auth message")
        })?,
    };
    let auth = authenticate(state, &token).await.map_err(Refusal::from)?;
    let unavailable =
        |error: queries::QueryError| Refusal::new(CLOSE_UNAVAILABLE, format!("cannot read the room: {error}"));
    queries::rooms::by_id(&state.db, RoomId::from_uuid(room))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Refusal::new(CLOSE_UNKNOWN_ROOM, "the room does not exist"))?;
    let participants =
        queries::rooms::current_participants(&state.db, RoomId::from_uuid(room)).await.map_err(unavailable)?;
    let me = participants
        .iter()
        .find(|row| row.user_id == auth.user_id)
        .ok_or_else(|| Refusal::new(CLOSE_NOT_PARTICIPANT, "join the room through the REST API first"))?;
    let username = display_name(me.first_name.as_deref(), me.last_name.as_deref());
    let identity = Identity { room, user: auth.user_id.as_uuid(), username };
    Ok(Admitted { auth, identity, participants })
}

pub(super) async fn first_message_token(stream: &mut SplitStream<WebSocket>) -> Option<String> {
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

/// A socket that joins while the room is recorded is told at once (SPEC §10).
/// Read after the socket follows the room's events, so a change stored from
/// then on also reaches it; a repeated `{active: true}` is harmless.
async fn tell_if_recording(state: &AppState, connection: &Connection) {
    let identity = &connection.identity;
    match queries::rooms::by_id(&state.db, RoomId::from_uuid(identity.room)).await {
        Ok(Some(room)) if room.recording => {
            let host_name = match queries::users::by_id(&state.db, room.host_id).await {
                Ok(Some(host)) => display_name(Some(&host.first_name), Some(&host.last_name)),
                _ => String::new(),
            };
            let host = Identity { room: identity.room, user: room.host_id.as_uuid(), username: host_name };
            let message = host.message(&ServerMessage::Recording { active: true }, None);
            connection.deliver(Outgoing::Text(message));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot tell a new socket whether the room is recorded"),
    }
}

fn participants_message(identity: &Identity, rows: Vec<ParticipantRow>) -> Utf8Bytes {
    let participants = rows
        .into_iter()
        .map(|row| Participant {
            username: display_name(row.first_name.as_deref(), row.last_name.as_deref()),
            view: ParticipantView::from(row),
        })
        .collect();
    identity.message(&ServerMessage::Participants { participants }, None)
}

pub(super) async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    cancel: CancellationToken,
) {
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
        let outcome = match frame {
            Message::Text(text) => handle(state, connection, auth, &rates, text.as_str()).await,
            Message::Binary(_) if rates.allow(MessageKind::Other) => {
                reply_error(connection, "unsupported_frame", "send JSON text frames");
                Ok(())
            }
            Message::Binary(_) => Err(MessageKind::Other),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        };
        if let Err(kind) = outcome {
            tracing::info!(connection = %connection.id, user = %auth.user_id, ?kind, "closing a websocket over its message rate");
            close(connection, CLOSE_POLICY, kind.close_reason()).await;
            return drain(stream).await;
        }
    }
}

/// Sends a close frame and gives the writer a moment to send it (it cancels when
/// done), but not more: the client may not be listening.
pub(super) async fn close(connection: &Connection, code: u16, reason: &'static str) {
    connection.deliver(Outgoing::Close(code, reason));
    let _ = tokio::time::timeout(CLOSE_GRACE, connection.cancel.cancelled()).await;
}

/// Reads and drops what the client still sends, for a moment, after a close
/// frame went out: closing a connection with unread data resets it, and the
/// client could lose the close frame.
pub(super) async fn drain(stream: &mut SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = stream.next().await {} }).await;
}
