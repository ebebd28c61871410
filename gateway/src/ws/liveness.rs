//! What keeps a socket alive between the client's frames, the same for room and
//! lobby sockets: pings and the pong timeout, the presence refreshes (under the
//! socket's room, the lobby's nil id for a lobby socket), the server's stop and
//! the session's revocation.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::SplitStream;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::fanout::{Connection, Outgoing};
use super::session::{close, drain};
use super::*;
use crate::auth::AuthUser;
use crate::state::AppState;

pub(super) struct Liveness {
    ping: Interval,
    refresh: Interval,
    ttl: Duration,
    heard: Instant,
}

impl Liveness {
    pub(super) fn new(state: &AppState) -> Self {
        let ping_every = state.config.ws_ping_interval;
        let ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        // Three refreshes per TTL: a socket expires only if its gateway is gone.
        let ttl = state.config.presence_socket_ttl;
        let refresh_every = (ttl / 3).max(Duration::from_millis(100));
        let mut refresh = tokio::time::interval_at(Instant::now() + refresh_every, refresh_every);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { ping, refresh, ttl, heard: Instant::now() }
    }

    /// The client's next frame, or `None` once the socket is done: closed by
    /// the client, the server stopping, the session revoked, a missed pong, or a
    /// message over the size limit (each told to the client as it can be).
    pub(super) async fn next_frame(
        &mut self,
        state: &AppState,
        connection: &Connection,
        auth: &AuthUser,
        revoked: &CancellationToken,
        stream: &mut SplitStream<WebSocket>,
    ) -> Option<Message> {
        let frame = loop {
            tokio::select! {
                _ = connection.cancel.cancelled() => return None,
                () = state.shutdown.stopped() => {
                    close(connection, CLOSE_SERVICE_RESTART, "the server is restarting; reconnect").await;
                    drain(stream).await;
                    return None;
                }
                _ = revoked.cancelled() => {
                    close(connection, CLOSE_UNAUTHORIZED, "this session has ended; log in again").await;
                    drain(stream).await;
                    return None;
                }
                _ = self.refresh.tick() => {
                    let room = connection.identity.room;
                    state.presence.socket_open(auth.user_id, connection.id, room, self.ttl).await;
                }
                _ = self.ping.tick() => {
                    if self.heard.elapsed() > state.config.ws_pong_timeout {
                        close(connection, CLOSE_TIMED_OUT, "no pong in time").await;
                        return None;
                    }
                    connection.deliver(Outgoing::Ping);
                }
                frame = stream.next() => break frame,
            }
        };
        match frame {
            Some(Ok(frame)) => {
                self.heard = Instant::now();
                Some(frame)
            }
            Some(Err(error)) if is_too_big(&error) => {
                close(connection, CLOSE_TOO_BIG, "message too big").await;
                // The rest of the oversized message is still arriving. Closing the
                // connection on it at once would reset it, and the client could
                // lose the close frame: give it a moment to read it first.
                tokio::time::sleep(session::CLOSE_GRACE).await;
                None
            }
            Some(Err(_)) | None => None,
        }
    }
}

/// True for the read error of a frame or message over `ws_max_message_bytes`.
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(tungstenite::Error::Capacity(_)) = error.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = error.source();
    }
    false
}
