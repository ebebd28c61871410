//! Signaling as the SFU sees it: what clients ask (through a gateway, as a
//! [`rapat_wire::signal::SfuRequest`]) and what it answers. Transport-free;
//! `nats.rs` carries these over NATS subjects, as the wire contract says.

use std::fmt;

use rapat_wire::signal::{SfuReply, SfuReplyKind, SfuRequest};
use serde_json::Value;
use uuid::Uuid;

/// One client connection (one WebSocket) in a room: the unit a peer belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub room: Uuid,
    pub user: Uuid,
    pub connection: Uuid,
}

impl PeerKey {
    /// The connection a gateway's request comes from.
    pub fn of(request: &SfuRequest) -> Self {
        Self { room: request.room_id, user: request.user_id, connection: request.connection_id }
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.room, self.user, self.connection)
    }
}

/// `payload.sdp` of an offer or answer.
pub fn sdp_of(request: &SfuRequest) -> Option<String> {
    request.payload.get("sdp")?.as_str().map(str::to_string)
}

/// The `{publisherId, maxHeight}` of a `video_constraints` message.
pub fn video_constraint_of(request: &SfuRequest) -> Option<(Uuid, u16)> {
    let publisher = request.payload.get("publisherId")?.as_str()?.parse().ok()?;
    let max_height = request.payload.get("maxHeight")?.as_f64()?;
    (max_height.is_finite() && max_height >= 0.0).then_some((publisher, max_height.min(f64::from(u16::MAX)) as u16))
}

/// A message from the SFU to one client connection.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: PeerKey,
    pub kind: SfuReplyKind,
    pub payload: Value,
}

impl Outgoing {
    pub fn error(to: PeerKey, code: &str, message: &str) -> Self {
        Self { to, kind: SfuReplyKind::Error, payload: SfuReply::error_payload(code, message) }
    }

    /// The message as the client's socket receives it.
    pub fn reply(&self, timestamp: chrono::DateTime<chrono::Utc>) -> SfuReply {
        SfuReply::new(self.kind, self.to.room, self.to.user, self.payload.clone(), timestamp)
    }
}

/// What a room event means for media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomChange {
    /// Left or removed: every peer of the user in the room closes.
    UserGone {
        room: Uuid,
        user: Uuid,
    },
    /// Muted (by themself or the host) or unmuted: audio forwarding stops or resumes.
    AudioBlocked {
        room: Uuid,
        user: Uuid,
        blocked: bool,
    },
    Ended {
        room: Uuid,
    },
    /// The room started (`on`) or stopped recording: its tracks are written to files.
    Recording {
        room: Uuid,
        on: bool,
    },
}
