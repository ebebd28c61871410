//! Signaling as the SFU sees it: what clients ask (through a gateway) and what
//! it answers. Transport-free; `nats.rs` carries these over NATS subjects.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// One client connection (one WebSocket) in a room: the unit a peer belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub room: Uuid,
    pub user: Uuid,
    pub connection: Uuid,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.room, self.user, self.connection)
    }
}

/// A client message for the SFU, as a gateway forwards it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incoming {
    #[serde(rename = "type")]
    pub kind: String,
    pub room_id: Uuid,
    pub user_id: Uuid,
    #[serde(default)]
    pub username: String,
    pub connection_id: Uuid,
    #[serde(default)]
    pub payload: Value,
}

impl Incoming {
    pub fn key(&self) -> PeerKey {
        PeerKey { room: self.room_id, user: self.user_id, connection: self.connection_id }
    }

    /// `payload.sdp` of an offer or answer.
    pub fn sdp(&self) -> Option<String> {
        self.payload.get("sdp")?.as_str().map(str::to_string)
    }
}

/// A message from the SFU to one client connection.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub to: PeerKey,
    pub kind: String,
    pub payload: Value,
}

impl Outgoing {
    pub fn error(to: PeerKey, code: &str, message: &str) -> Self {
        Self { to, kind: "error".into(), payload: serde_json::json!({ "code": code, "message": message }) }
    }
}

/// What a room event means for media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomChange {
    /// Left or removed: every peer of the user in the room closes.
    UserGone { room: Uuid, user: Uuid },
    /// Muted (by themself or the host) or unmuted: audio forwarding stops or resumes.
    AudioBlocked { room: Uuid, user: Uuid, blocked: bool },
    Ended { room: Uuid },
}
