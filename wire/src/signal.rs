//! The gateway ↔ SFU signaling contract: the messages and header a gateway and
//! an SFU node exchange over core NATS. Subjects come from [`crate::Namespace`]:
//!
//! - gateway → SFU, on [`crate::Namespace::sfu_inbound_subject`]: a client's
//!   `offer`, `answer` or `ice-candidate` without `targetUserId`, and a
//!   `disconnect` when its socket closes, as an [`SfuRequest`];
//! - SFU → one socket, on [`crate::Namespace::room_signal_subject`] with the
//!   header [`CONNECTION_HEADER`] naming the socket: an [`SfuReply`], already in
//!   the shape of a WebSocket server message, which the gateway holding that
//!   socket passes on as it is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Names the one connection (socket) a room signal message is for.
pub const CONNECTION_HEADER: &str = "Rapat-Ws-Connection";

/// The `username` an [`SfuReply`] carries: the SFU is not a participant.
pub const SFU_USERNAME: &str = "sfu";

/// What a client asks of the SFU, or that its socket closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SfuRequestKind {
    Offer,
    Answer,
    IceCandidate,
    /// The socket closed: the SFU closes the peer connection it opened for it.
    Disconnect,
    /// `{publisherId, maxHeight}`: the client shows that publisher's video at
    /// most this high, so a smaller simulcast layer does.
    #[serde(rename = "video_constraints")]
    VideoConstraints,
}

impl SfuRequestKind {
    /// The `type` of the message, as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::IceCandidate => "ice-candidate",
            Self::Disconnect => "disconnect",
            Self::VideoConstraints => "video_constraints",
        }
    }

    /// The client message types the gateway forwards to the SFU (a `disconnect`
    /// comes from the gateway itself, never from a client).
    pub fn from_client_type(kind: &str) -> Option<Self> {
        match kind {
            "offer" => Some(Self::Offer),
            "answer" => Some(Self::Answer),
            "ice-candidate" => Some(Self::IceCandidate),
            "video_constraints" => Some(Self::VideoConstraints),
            _ => None,
        }
    }
}

/// Gateway → SFU: one client message for the SFU serving the room. `payload` is
/// the client's as it is (`{sdp}` of an offer or answer, an `RTCIceCandidateInit`);
/// the SFU checks it and answers a bad one with an `invalid_payload` error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuRequest {
    #[serde(rename = "type")]
    pub kind: SfuRequestKind,
    pub room_id: Uuid,
    pub user_id: Uuid,
    #[serde(default)]
    pub username: String,
    /// The socket the client speaks on; the SFU keeps one peer connection per socket.
    pub connection_id: Uuid,
    #[serde(default)]
    pub payload: Value,
}

/// What the SFU tells a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SfuReplyKind {
    /// The SFU renegotiates: tracks to forward came or went.
    Offer,
    /// The answer to the client's offer.
    Answer,
    /// `{code, message}`: a refused offer, a failed negotiation, a replaced peer.
    Error,
    /// `{speakers: [{userId, level}]}`: who speaks in the room, loudest first
    /// (SPEC §9); sent when it changes, at most every 300 ms.
    #[serde(rename = "active_speakers")]
    ActiveSpeakers,
    /// `{trackId, mid, active: ["q", …]}`: the simulcast layers of one of the
    /// client's tracks that some subscriber needs; the client pauses the others.
    #[serde(rename = "publisher_layers")]
    PublisherLayers,
}

impl SfuReplyKind {
    /// The `type` of the message, as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Error => "error",
            Self::ActiveSpeakers => "active_speakers",
            Self::PublisherLayers => "publisher_layers",
        }
    }
}

/// SFU → one socket: a complete WebSocket server message (`{type, roomId,
/// userId, username: "sfu", payload, timestamp}`, no `targetUserId`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuReply {
    #[serde(rename = "type")]
    pub kind: SfuReplyKind,
    pub room_id: Uuid,
    /// The user the message is for.
    pub user_id: Uuid,
    pub username: String,
    pub payload: Value,
    pub timestamp: DateTime<Utc>,
}

impl SfuReply {
    pub fn new(kind: SfuReplyKind, room_id: Uuid, user_id: Uuid, payload: Value, timestamp: DateTime<Utc>) -> Self {
        Self { kind, room_id, user_id, username: SFU_USERNAME.to_string(), payload, timestamp }
    }

    /// The payload of an `error` reply.
    pub fn error_payload(code: &str, message: &str) -> Value {
        json!({ "code": code, "message": message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_has_the_shape_the_gateway_has_always_sent() {
        let (room, user, connection) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let text = json!({
            "type": "ice-candidate", "roomId": room, "userId": user, "username": "Ani",
            "connectionId": connection, "payload": { "candidate": "c" },
        });
        let request: SfuRequest = serde_json::from_value(text.clone()).expect("reads");
        assert_eq!(request.kind, SfuRequestKind::IceCandidate);
        assert_eq!(serde_json::to_value(&request).expect("writes"), text);
        for (client_type, kind) in [("offer", SfuRequestKind::Offer), ("answer", SfuRequestKind::Answer)] {
            assert_eq!(SfuRequestKind::from_client_type(client_type), Some(kind));
        }
        assert_eq!(SfuRequestKind::from_client_type("disconnect"), None);
        for kind in
            [SfuRequestKind::Offer, SfuRequestKind::Answer, SfuRequestKind::IceCandidate, SfuRequestKind::Disconnect]
        {
            assert_eq!(serde_json::to_value(kind).expect("writes"), kind.as_str());
        }
        let unknown = json!({ "type": "chat", "roomId": room, "userId": user, "connectionId": connection });
        assert!(serde_json::from_value::<SfuRequest>(unknown).is_err());
    }

    #[test]
    fn a_reply_is_a_server_message_from_the_sfu() {
        let (room, user) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let reply = SfuReply::new(SfuReplyKind::Error, room, user, SfuReply::error_payload("room_full", "full"), now);
        let text = serde_json::to_value(&reply).expect("writes");
        assert_eq!(
            text,
            json!({
                "type": "error", "roomId": room, "userId": user, "username": "sfu",
                "payload": { "code": "room_full", "message": "full" }, "timestamp": now,
            })
        );
        assert_eq!(serde_json::from_value::<SfuReply>(text).expect("reads"), reply);
        for kind in [SfuReplyKind::Offer, SfuReplyKind::Answer, SfuReplyKind::Error, SfuReplyKind::ActiveSpeakers] {
            assert_eq!(serde_json::to_value(kind).expect("writes"), kind.as_str());
        }
    }
}
