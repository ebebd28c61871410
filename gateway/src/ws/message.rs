//! The wire shape of signaling messages: `{type, roomId, userId, username,
//! targetUserId?, payload, timestamp}`. The server writes `roomId`, `userId`,
//! `username` and `timestamp` itself; a client's values for them are ignored.
//!
//! A client's message is decoded once, here, into a `ClientMessage` whose
//! variants carry parsed payloads (a chat text of the right length, booleans,
//! user ids); what cannot be decoded gets the `error` its type calls for. What
//! the server sends is a `ServerMessage`, one variant per `type`, put in the
//! envelope by `Identity::message`.

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use rapat_wire::signal::{SfuRequest, SfuRequestKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::IceServer;
use crate::routes::notifications::NotificationView;
use crate::routes::rooms::views::ParticipantView;

/// Who a message is from (or, for server notices, whom it concerns).
#[derive(Clone, Debug)]
pub struct Identity {
    pub room: Uuid,
    pub user: Uuid,
    pub username: String,
}

/// A message the server sends to a socket: its `type` and `payload`. `Identity`
/// puts it in the envelope. (What the SFU sends a socket is a `rapat_wire`
/// `SfuReply`, already in this shape, which the gateway passes on unread.)
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ServerMessage {
    /// A socket's first message: what its peer connection needs.
    Config {
        ice_servers: Vec<IceServer>,
    },
    /// A socket's second message: everyone in the room and their media state.
    Participants {
        participants: Vec<Participant>,
    },
    UserJoined {},
    /// `removedBy` when the host removed the user.
    UserLeft {
        #[serde(skip_serializing_if = "Option::is_none")]
        removed_by: Option<Uuid>,
    },
    /// To the removed user's own sockets, before they close.
    Removed {
        removed_by: Uuid,
    },
    RoomEnded {},
    /// `id` is the message's sequence on the chat stream.
    Chat {
        message: String,
        id: u64,
    },
    /// `byHost` only when the host muted the user.
    Mute {
        muted: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        by_host: bool,
    },
    UnmuteRequested {},
    UnmuteAllowed {
        allowed_by: Uuid,
    },
    Video {
        on: bool,
    },
    ScreenShare {
        sharing: bool,
    },
    /// A peer's negotiation, relayed as the peer sent it (peer-to-peer mode).
    Offer(Map<String, Value>),
    Answer(Map<String, Value>),
    #[serde(rename = "ice-candidate")]
    IceCandidate(Map<String, Value>),
    Error {
        code: String,
        message: String,
    },
    /// One of the user's notifications, as `GET /notifications` lists it: to every
    /// socket of the recipient, room and lobby sockets alike.
    Notification(NotificationView),
    /// A lobby socket's first message: how many notifications are unread.
    UnreadCount {
        count: u64,
    },
    /// The room is being recorded, or no longer (SPEC §10): on every change, and
    /// to a socket that joins while it is.
    Recording {
        active: bool,
    },
}

/// One participant of a `participants` message: the name to show, and what the REST
/// API says of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub username: String,
    #[serde(flatten)]
    pub view: ParticipantView,
}

/// The envelope around a `ServerMessage`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sent<'a> {
    #[serde(flatten)]
    message: &'a ServerMessage,
    room_id: Uuid,
    user_id: Uuid,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_user_id: Option<Uuid>,
    timestamp: DateTime<Utc>,
}

impl Identity {
    /// `message` from this identity (to `target` only, for a relayed negotiation),
    /// stamped now.
    pub fn message(&self, message: &ServerMessage, target: Option<Uuid>) -> Utf8Bytes {
        self.message_at(message, target, Utc::now())
    }

    /// `message` from this identity, stamped with `timestamp` (that of the stored
    /// event or chat message it tells of).
    pub fn message_at(&self, message: &ServerMessage, target: Option<Uuid>, timestamp: DateTime<Utc>) -> Utf8Bytes {
        let sent = Sent {
            message,
            room_id: self.room,
            user_id: self.user,
            username: &self.username,
            target_user_id: target,
            timestamp,
        };
        serde_json::to_string(&sent).unwrap_or_default().into()
    }

    /// What this identity's socket `connection` asks of the room's SFU.
    pub fn sfu_request(&self, kind: SfuRequestKind, connection: Uuid, payload: Value) -> SfuRequest {
        SfuRequest {
            kind,
            room_id: self.room,
            user_id: self.user,
            username: self.username.clone(),
            connection_id: connection,
            payload,
        }
    }

    /// An `error` message for this identity's socket.
    pub fn error(&self, code: &str, message: impl Into<String>) -> Utf8Bytes {
        self.message(&ServerMessage::Error { code: code.to_owned(), message: message.into() }, None)
    }
}

/// The envelope of a message about the user rather than a room (a notification,
/// the unread count): no `roomId` nor `username`, on room and lobby sockets alike.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SentToUser<'a> {
    #[serde(flatten)]
    message: &'a ServerMessage,
    user_id: Uuid,
    timestamp: DateTime<Utc>,
}

/// `message` for `user`'s own sockets, stamped now.
pub fn user_message(user: Uuid, message: &ServerMessage) -> Utf8Bytes {
    let sent = SentToUser { message, user_id: user, timestamp: Utc::now() };
    serde_json::to_string(&sent).unwrap_or_default().into()
}

/// The outline every client message must have: a JSON object with a string
/// `type`. Read first, so that a message of a known type with a bad payload still
/// counts against its type's rate and gets that type's error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    /// Read only so that a `targetUserId` that is not a string is malformed JSON.
    #[serde(default, rename = "targetUserId")]
    _target_user_id: Option<String>,
}

/// A client message, parsed: whatever a handler gets is already valid. Unknown
/// fields (a client's own `roomId`, `userId`…) are ignored.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Read by admission (`auth_token`); once the socket is open it means nothing.
    Auth {},
    JoinRoom {},
    Chat {
        payload: ChatPayload,
    },
    Mute {
        payload: MutePayload,
    },
    Video {
        payload: VideoPayload,
    },
    ScreenShare {
        payload: ScreenSharePayload,
    },
    RequestUnmute {},
    AllowUnmute {
        #[serde(rename = "targetUserId")]
        target: Uuid,
    },
    Offer(Negotiation),
    Answer(Negotiation),
    #[serde(rename = "ice-candidate")]
    IceCandidate(Negotiation),
    /// The largest height the client shows a publisher's video at, for the SFU
    /// (it picks the simulcast layer to forward).
    VideoConstraints {
        payload: VideoConstraintsPayload,
    },
}

#[derive(Debug, Deserialize)]
struct AuthPayload {
    token: String,
}

#[derive(Debug, Deserialize)]
pub struct ChatPayload {
    pub message: ChatText,
}

/// A chat message's text: 1 to `MAX_CHARS` characters, not only whitespace.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct ChatText(String);

impl ChatText {
    pub const MAX_CHARS: usize = 2000;

    /// What a refused text is told.
    fn rule() -> String {
        format!("payload.message must be 1 to {} characters", Self::MAX_CHARS)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChatText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.trim().is_empty() || text.chars().count() > Self::MAX_CHARS {
            return Err(Self::rule());
        }
        Ok(Self(text))
    }
}

#[derive(Debug, Deserialize)]
pub struct MutePayload {
    pub muted: bool,
}

#[derive(Debug, Deserialize)]
pub struct VideoPayload {
    pub on: bool,
}

#[derive(Debug, Deserialize)]
pub struct ScreenSharePayload {
    pub sharing: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoConstraintsPayload {
    pub publisher_id: Uuid,
    pub max_height: u16,
}

/// An `offer`, `answer` or `ice-candidate`: for one participant with
/// `targetUserId` (peer-to-peer), else for the room's SFU.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Negotiation {
    #[serde(default, rename = "targetUserId")]
    pub target: Option<Uuid>,
    /// Forwarded as the client sent it; only its being an object is checked.
    pub payload: Map<String, Value>,
}

/// Why a message was refused: the `error` message's code and text.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl ClientMessage {
    /// Decodes a message whose outline (`envelope`) was already read from `json`.
    /// A refusal names what is wrong the way the protocol's `error` codes do.
    pub fn decode(envelope: &Envelope, json: &Value) -> Result<Self, Refused> {
        ClientMessage::deserialize(json).map_err(|_| Self::refusal(&envelope.kind, json))
    }

    fn refusal(kind: &str, json: &Value) -> Refused {
        let boolean = |field: &str| Refused::new("invalid_payload", format!("payload.{field} must be a boolean"));
        match kind {
            "chat" => Refused::new("invalid_message", ChatText::rule()),
            "mute" => boolean("muted"),
            "video" => boolean("on"),
            "screen_share" => boolean("sharing"),
            "allow_unmute" => {
                Refused::new("invalid_target", "allow_unmute needs targetUserId: the participant's user id")
            }
            "offer" | "answer" | "ice-candidate" if !json.get("payload").is_some_and(Value::is_object) => {
                Refused::new("invalid_payload", "the payload of an offer, answer or ice-candidate must be an object")
            }
            "offer" | "answer" | "ice-candidate" => Refused::new("invalid_target", "targetUserId must be a user's id"),
            "video_constraints" => Refused::new(
                "invalid_payload",
                "payload.publisherId must be a user id and payload.maxHeight a height in pixels (0 to 65535)",
            ),
            "auth" | "join_room" | "request_unmute" => {
                Refused::new("invalid_payload", format!("{kind} has a malformed payload"))
            }
            _ => Refused::new("unknown_type", "unknown message type"),
        }
    }
}

/// A socket's first message when its token came neither in the query nor as a
/// subprotocol.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FirstMessage {
    Auth { payload: AuthPayload },
}

/// The token of a first `{"type":"auth","payload":{"token":..}}` message.
pub fn auth_token(text: &str) -> Option<String> {
    let FirstMessage::Auth { payload } = serde_json::from_str(text).ok()?;
    Some(payload.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<ClientMessage, Refused> {
        let json: Value = serde_json::from_str(text).expect("json");
        let envelope = Envelope::deserialize(&json).expect("envelope");
        ClientMessage::decode(&envelope, &json)
    }

    fn code(text: &str) -> &'static str {
        decode(text).expect_err("refused").code
    }

    #[test]
    fn payloads_are_parsed_once_and_refusals_keep_the_protocol_codes() {
        assert!(matches!(decode(r#"{"type":"chat","payload":{"message":"hi"}}"#), Ok(ClientMessage::Chat { .. })));
        assert_eq!(code(r#"{"type":"chat","payload":{"message":"  "}}"#), "invalid_message");
        let long = format!(r#"{{"type":"chat","payload":{{"message":"{}"}}}}"#, "x".repeat(ChatText::MAX_CHARS + 1));
        assert_eq!(code(&long), "invalid_message");
        assert_eq!(decode(r#"{"type":"mute"}"#).expect_err("refused").message, "payload.muted must be a boolean");
        assert_eq!(code(r#"{"type":"offer","payload":"sdp"}"#), "invalid_payload");
        assert_eq!(code(r#"{"type":"offer","targetUserId":"x","payload":{}}"#), "invalid_target");
        assert_eq!(code(r#"{"type":"allow_unmute"}"#), "invalid_target");
        assert_eq!(code(r#"{"type":"teleport"}"#), "unknown_type");
        let shown = r#"{"type":"video_constraints","payload":{"publisherId":"6f1c8a4e-2b1d-4a8e-9c3f-0a1b2c3d4e5f","maxHeight":360}}"#;
        assert!(matches!(decode(shown), Ok(ClientMessage::VideoConstraints { payload }) if payload.max_height == 360));
        assert_eq!(
            code(r#"{"type":"video_constraints","payload":{"publisherId":"x","maxHeight":360}}"#),
            "invalid_payload"
        );
        assert_eq!(code(r#"{"type":"video_constraints","payload":{"maxHeight":-1}}"#), "invalid_payload");
        assert!(matches!(decode(r#"{"type":"join_room","roomId":"ignored"}"#), Ok(ClientMessage::JoinRoom {})));
        assert!(matches!(decode(r#"{"type":"ice-candidate","payload":{}}"#), Ok(ClientMessage::IceCandidate(_))));
    }

    #[test]
    fn only_an_auth_message_with_a_token_gives_a_token() {
        assert_eq!(auth_token(r#"{"type":"auth","payload":{"token":"t"}}"#).as_deref(), Some("t"));
        assert_eq!(auth_token(r#"{"type":"auth","payload":{}}"#), None);
        assert_eq!(auth_token(r#"{"type":"chat","payload":{"token":"t"}}"#), None);
    }

    /// The wire shape of server messages, field by field (SPEC §4; the schemas in
    /// `schemas/ws/server/` are checked against live sockets in the API tests).
    #[test]
    fn server_messages_are_their_type_and_payload_in_the_envelope() {
        let identity =
            Identity { room: Uuid::from_u128(1), user: Uuid::from_u128(2), username: "Ana Putri".to_owned() };
        let at = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").expect("a time").with_timezone(&Utc);
        let sent = |message: ServerMessage, target: Option<Uuid>| -> Value {
            serde_json::from_str(identity.message_at(&message, target, at).as_str()).expect("JSON")
        };
        let host = Uuid::from_u128(3);
        let envelope = |kind: &str, payload: Value| {
            serde_json::json!({
                "type": kind, "roomId": identity.room, "userId": identity.user, "username": "Ana Putri",
                "payload": payload, "timestamp": "2026-03-01T10:00:00Z",
            })
        };
        assert_eq!(sent(ServerMessage::UserJoined {}, None), envelope("user_joined", serde_json::json!({})));
        assert_eq!(
            sent(ServerMessage::UserLeft { removed_by: None }, None),
            envelope("user_left", serde_json::json!({}))
        );
        let removed = ServerMessage::UserLeft { removed_by: Some(host) };
        assert_eq!(sent(removed, None), envelope("user_left", serde_json::json!({ "removedBy": host })));
        assert_eq!(sent(ServerMessage::RoomEnded {}, None), envelope("room_ended", serde_json::json!({})));
        let by_host = ServerMessage::Mute { muted: true, by_host: true };
        assert_eq!(sent(by_host, None), envelope("mute", serde_json::json!({ "muted": true, "byHost": true })));
        let own = ServerMessage::Mute { muted: false, by_host: false };
        assert_eq!(sent(own, None), envelope("mute", serde_json::json!({ "muted": false })));
        let allowed = ServerMessage::UnmuteAllowed { allowed_by: host };
        assert_eq!(sent(allowed, None), envelope("unmute_allowed", serde_json::json!({ "allowedBy": host })));
        let share = ServerMessage::ScreenShare { sharing: true };
        assert_eq!(sent(share, None), envelope("screen_share", serde_json::json!({ "sharing": true })));
        let chat = ServerMessage::Chat { message: "hi".to_owned(), id: 7 };
        assert_eq!(sent(chat, None), envelope("chat", serde_json::json!({ "message": "hi", "id": 7 })));
        let config = ServerMessage::Config { ice_servers: Vec::new() };
        assert_eq!(sent(config, None), envelope("config", serde_json::json!({ "iceServers": [] })));
        let error = ServerMessage::Error { code: "unknown_type".to_owned(), message: "no".to_owned() };
        assert_eq!(
            sent(error, None),
            envelope("error", serde_json::json!({ "code": "unknown_type", "message": "no" }))
        );

        let candidate = serde_json::json!({ "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host" });
        let relayed = ServerMessage::IceCandidate(candidate.as_object().cloned().expect("an object"));
        let mut expected = envelope("ice-candidate", candidate);
        expected["targetUserId"] = serde_json::json!(host);
        assert_eq!(sent(relayed, Some(host)), expected);
    }
}
