//! WebSocket signaling (`GET /ws`, SPEC §4): one socket per participant in a room.
//! Without `roomId`, `/ws` is the user's lobby socket (`lobby.rs`, SPEC §6).
//!
//! Every socket, room or lobby, also gets its user's notifications live:
//! `feeds.rs` subscribes to `<namespace>.users.<userId>.notifications` while the
//! gateway holds a socket of the user and sends each as `notification` (its
//! payload as `GET /notifications` lists it; no `roomId` nor `username` in the
//! envelope: it is the user's, not a room's).
//!
//! `session.rs` admits a socket (token, room, current participant) and runs it;
//! `message.rs` is the wire shape: it decodes each client message once into a
//! typed `ClientMessage`, and every message the gateway sends a socket is a
//! `ServerMessage` (the SFU's replies, already in that shape, are passed on as
//! they come); `handle.rs` answers it; `fanout.rs` carries room
//! messages over core NATS so that participants on different gateways reach each
//! other; `events.rs` decodes the room's stored events into the domain's
//! `RoomEvent` and turns them into socket messages and closes. The JSON Schemas of every message are in
//! `schemas/ws/`.
//!
//! # A socket's life
//!
//! Once admitted, a socket gets `config` (`{iceServers}` from
//! `GatewayConfig::ice_servers`), then `participants` (everyone in the room and
//! their media state). Its user counts as in a meeting (`presence.rs`) until it
//! closes.
//!
//! Changes to the room come from the room's events, whichever way they were made
//! (REST or this socket), so each reaches every socket exactly once:
//! `ParticipantJoined` → `user_joined`, `ParticipantLeft` → `user_left` (and the
//! leaver's sockets close, 4499), `ParticipantRemoved` → `removed` to the removed
//! user (then close, 4409) and `user_left` (`{removedBy}`) to everyone else,
//! `ParticipantAudioChanged` → `mute` `{muted}`, `ParticipantMutedByHost` → `mute`
//! `{muted: true, byHost: true}`, `ParticipantUnmuteAllowed` → `unmute_allowed`
//! `{allowedBy}`, `ParticipantVideoChanged` → `video` `{on}`,
//! `ParticipantScreenShareChanged` → `screen_share` `{sharing}`, `RoomEnded` →
//! `room_ended` (then close, 4410), `RecordingStarted` / `RecordingStopped` →
//! `recording` `{active}` (SPEC §10; a socket that joins while the room's row
//! says it is recorded gets `{active: true}` after `participants`). Their
//! `userId` is the affected user's (for `recording`, the host's) and
//! their `timestamp` the event's. A client's `mute` / `video` / `screen_share`
//! only records the change; a change to what already is records nothing and so
//! broadcasts nothing. A socket closing is not a leave: it sends no `user_left`.
//! `user_joined` comes with the REST join, usually before the newcomer's socket
//! is open; a client that wants peers to notice its socket sends `join_room`,
//! which broadcasts `user_joined` from that socket.
//!
//! The host's mute holds: while it does, the participant's `mute` `{muted:
//! false}` gets an `error` (`muted_by_host`). The participant may send
//! `request_unmute`, which reaches the host's sockets only as `unmute_requested`
//! (from the participant); the host answers with `allow_unmute` (`targetUserId`:
//! the participant) or `POST /rooms/{roomId}/participants/{userId}/allow-unmute`,
//! which records `ParticipantUnmuteAllowed`; the participant then unmutes
//! themselves.
//!
//! `chat` is stored on the chat stream (`chat.rs`) and broadcast only once
//! JetStream has acknowledged it, with the stored id in `payload.id`; a message
//! that cannot be stored gets the sender an `error` (`chat_unavailable`) and
//! reaches nobody.
//!
//! # NATS subjects (`<namespace>` is the event store's, e.g. `rapat`)
//!
//! - `<namespace>.rooms.<roomId>.signal` (core NATS): every message for a room's
//!   sockets, as the complete server-format JSON text. Headers: `Rapat-Ws-Skip:
//!   <connectionId>` (not echoed to that socket), `Rapat-Ws-Target: <userId>`
//!   (only that user's sockets), `Rapat-Ws-Connection: <connectionId>` (only
//!   that one socket: how the SFU answers), `Rapat-Ws-Probe` (a gateway's own
//!   subscription check; never delivered).
//! - `<namespace>.sfu.rooms.<roomId>.in` (core NATS): gateway → SFU. A client's
//!   `offer`, `answer` or `ice-candidate` without `targetUserId` is published
//!   here as `{"type", "roomId", "userId", "username", "connectionId",
//!   "payload"}`, the payload as the client sent it (an object); so is a
//!   `video_constraints` (`{publisherId, maxHeight}`, checked here). When any socket
//!   closes, `{"type": "disconnect", ..., "payload": {}}` follows, so the SFU can
//!   drop that connection's peer. The SFU answers on the signal subject above with
//!   a complete server-format message (`username: "sfu"`, no `targetUserId`) and
//!   the `Rapat-Ws-Connection` header set to the `connectionId` it got.
//! - `<namespace>.events.room.<roomId>`: the room's stored events, followed with a
//!   plain subscription while the gateway has a socket in the room.
//! - `<namespace>.chat.<roomId>` on stream `<NAMESPACE>_CHAT`: chat history.
//!
//! # Close codes
//!
//! 4400 malformed request, 4401 unauthorized (also sent to every open socket of a
//! session when it is revoked: logout, refresh-token reuse), 4403 not a current
//! participant, 4404 unknown room, 4408 keep-alive timed out, 4409 removed by the
//! host, 4410 room ended, 4420 replaced by a newer socket of the same user in the
//! room (`ws_max_sockets_per_room`), 4429 too many open sockets of the user
//! (`ws_max_sockets_per_user`), 4499 the user left the room (through REST; after
//! HTTP 499, "client closed request": the user's own doing), 1008 too many
//! messages of one kind (`ws_rate_limits`, see `limits.rs`), 1009 a message over
//! `ws_max_message_bytes`, 1011 signaling unavailable, 1012 the gateway is
//! shutting down (reconnect).
//!
//! # Limits
//!
//! A user holds at most `ws_max_sockets_per_user` sockets over every gateway and
//! `ws_max_sockets_per_room` in one room, counted in the presence bucket that
//! every gateway shares (`presence.rs`). Over the room cap the user's oldest
//! socket in the room is closed (4420) rather than the new one refused, so a
//! client reconnecting after a network drop, while its old socket has not yet
//! timed out, always gets in. Each socket's messages are rate-limited by kind
//! (`limits.rs`).

mod events;
mod fanout;
mod feeds;
mod handle;
mod limits;
mod liveness;
mod lobby;
mod message;
mod session;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;

pub use fanout::{CONNECTION_HEADER, Hub};

use crate::state::AppState;

pub const CLOSE_BAD_REQUEST: u16 = 4400;
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_NOT_PARTICIPANT: u16 = 4403;
pub const CLOSE_UNKNOWN_ROOM: u16 = 4404;
pub const CLOSE_TIMED_OUT: u16 = 4408;
pub const CLOSE_REMOVED: u16 = 4409;
pub const CLOSE_ROOM_ENDED: u16 = 4410;
pub const CLOSE_LEFT: u16 = 4499;
pub const CLOSE_UNAVAILABLE: u16 = 1011;
pub const CLOSE_REPLACED: u16 = 4420;
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4429;
/// RFC 6455 "policy violation": a socket over one of its message rates.
pub const CLOSE_POLICY: u16 = 1008;
/// RFC 6455 "message too big".
pub const CLOSE_TOO_BIG: u16 = 1009;
/// RFC 6455 "service restart": this gateway is shutting down; reconnect (a load
/// balancer sends the new socket to another node).
pub const CLOSE_SERVICE_RESTART: u16 = 1012;

/// Largest client message handled; a bigger one gets an `error` message. (The
/// largest read at all, which closes the socket, is `ws_max_message_bytes`.)
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsParams {
    room_id: Option<String>,
    token: Option<String>,
}

/// `GET /ws?roomId=..&token=..`, or without `roomId` the user's lobby socket
/// (`lobby.rs`: their notifications, nothing of any room). The token may instead be a `Sec-WebSocket-Protocol`
/// value (echoed back as the selected protocol, as browsers require) or the
/// payload of a first `auth` message. Refusals happen after the upgrade, as close
/// frames, so that a browser can read their code and reason.
pub async fn handler(
    State(state): State<AppState>,
    Query(params): Query<WsParams>,
    mut upgrade: WebSocketUpgrade,
) -> Response {
    let protocol_token = upgrade
        .requested_protocols()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|value| value.matches('.').count() == 2)
        .map(str::to_string);
    if let Some(token) = &protocol_token
        && let Ok(value) = HeaderValue::from_str(token)
    {
        upgrade.set_selected_protocol(value);
    }
    let token = params.token.filter(|token| !token.is_empty()).or(protocol_token);
    let max_message = state.config.ws_max_message_bytes;
    // tungstenite's default read buffer is 128 KiB, filled in at once and kept for
    // the socket's life: most of an idle socket's memory, for messages that are
    // mostly under a kilobyte.
    let upgrade = upgrade.read_buffer_size(state.config.ws_read_buffer_bytes);
    upgrade.max_message_size(max_message).max_frame_size(max_message).on_upgrade(move |socket| async move {
        match params.room_id {
            Some(room) => session::run(socket, state, Some(room), token).await,
            None => lobby::run(socket, state, token).await,
        }
    })
}
