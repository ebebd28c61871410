//! WebSocket signaling (`GET /ws`, SPEC §4): one socket per participant in a room.
//!
//! `session.rs` admits a socket (token, room, current participant) and runs it;
//! `message.rs` is the wire shape; `fanout.rs` carries room messages over core NATS
//! so that participants on different gateways reach each other, and closes sockets
//! when the room's events say so (participant removed, room ended).
//!
//! Close codes: 4400 malformed request, 4401 unauthorized, 4403 not a current
//! participant, 4404 unknown room, 4409 removed by the host, 4410 room ended,
//! 4408 keep-alive timed out, 1011 signaling unavailable.

mod fanout;
mod message;
mod session;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;

pub use fanout::Hub;

use crate::state::AppState;

pub const CLOSE_BAD_REQUEST: u16 = 4400;
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_NOT_PARTICIPANT: u16 = 4403;
pub const CLOSE_UNKNOWN_ROOM: u16 = 4404;
pub const CLOSE_TIMED_OUT: u16 = 4408;
pub const CLOSE_REMOVED: u16 = 4409;
pub const CLOSE_ROOM_ENDED: u16 = 4410;
pub const CLOSE_UNAVAILABLE: u16 = 1011;

/// Largest client message handled; a bigger one gets an `error` message.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Largest frame read at all; a bigger one ends the connection (close 1009).
const MAX_FRAME: usize = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsParams {
    room_id: Option<String>,
    token: Option<String>,
}

/// `GET /ws?roomId=..&token=..`. The token may instead be a `Sec-WebSocket-Protocol`
/// value (echoed back as the selected protocol, as browsers require) or the
/// payload of a first `auth` message. Refusals happen after the upgrade, as close
/// frames, so that a browser can read their code and reason.
pub async fn handler(State(state): State<AppState>, Query(params): Query<WsParams>, mut upgrade: WebSocketUpgrade) -> Response {
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
    upgrade
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| session::run(socket, state, params.room_id, token))
}
