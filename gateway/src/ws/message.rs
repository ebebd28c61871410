//! The wire shape of signaling messages: `{type, roomId, userId, username,
//! targetUserId?, payload, timestamp}`. The server writes `roomId`, `userId`,
//! `username` and `timestamp` itself; a client's values for them are ignored.

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Who a message is from (or, for server notices, whom it concerns).
#[derive(Clone, Debug)]
pub struct Identity {
    pub room: Uuid,
    pub user: Uuid,
    pub username: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    room_id: Uuid,
    user_id: Uuid,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_user_id: Option<Uuid>,
    payload: Value,
    timestamp: DateTime<Utc>,
}

impl Identity {
    /// A message of `kind` from this identity, stamped now.
    pub fn message(&self, kind: &str, target: Option<Uuid>, payload: Value) -> Utf8Bytes {
        self.message_at(kind, target, payload, Utc::now())
    }

    /// A message of `kind` from this identity, stamped with `timestamp` (that of
    /// the stored event or chat message it tells of).
    pub fn message_at(&self, kind: &str, target: Option<Uuid>, payload: Value, timestamp: DateTime<Utc>) -> Utf8Bytes {
        let message = ServerMessage {
            kind,
            room_id: self.room,
            user_id: self.user,
            username: &self.username,
            target_user_id: target,
            payload,
            timestamp,
        };
        serde_json::to_string(&message).unwrap_or_default().into()
    }

    /// An `error` message for this identity's socket.
    pub fn error(&self, code: &str, message: impl Into<String>) -> Utf8Bytes {
        self.message("error", None, json!({ "code": code, "message": message.into() }))
    }
}

/// What a client sends. Unknown fields (a client's own `roomId`, `userId`…) are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientMessage {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub target_user_id: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

/// The token of a first `{"type":"auth","payload":{"token":..}}` message.
pub fn auth_token(text: &str) -> Option<String> {
    let message: ClientMessage = serde_json::from_str(text).ok()?;
    (message.kind == "auth").then(|| message.payload.get("token")?.as_str().map(str::to_string)).flatten()
}

/// What the gateway tells the SFU on `<namespace>.sfu.rooms.<roomId>.in`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuMessage<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub username: &'a str,
    pub connection_id: Uuid,
    pub payload: &'a Value,
}
