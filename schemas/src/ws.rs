//! JSON Schemas of the WebSocket signaling messages (SPEC §4): the envelope
//! (`ws/envelope.json`) and one payload schema per message type and direction
//! (`ws/client/<type>.json`, `ws/server/<type>.json`), as for events.
//!
//! The gateway's own tests validate every message its sockets receive against
//! these, so the files describe what the gateway really sends.

use std::sync::LazyLock;

use jsonschema::{Validator, ValidatorMap};
use serde_json::Value;

use crate::{SchemaError, bad, check, options, parse};

/// Which way a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsDirection {
    ClientToServer,
    ServerToClient,
}

impl WsDirection {
    /// Also the folder under `ws/`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::ClientToServer => "client",
            Self::ServerToClient => "server",
        }
    }
}

/// One embedded message payload schema.
#[derive(Clone, Copy, Debug)]
pub struct WsSchema {
    pub direction: WsDirection,
    /// The message's `type`, also the file name.
    pub message_type: &'static str,
    pub source: &'static str,
}

macro_rules! ws_schemas {
    ($($direction:ident in $folder:literal => [$($kind:literal),* $(,)?]),* $(,)?) => {
        /// Every message payload schema.
        pub const WS_SCHEMAS: &[WsSchema] = &[$($(WsSchema {
            direction: WsDirection::$direction,
            message_type: $kind,
            source: include_str!(concat!("../ws/", $folder, "/", $kind, ".json")),
        },)*)*];
    };
}

ws_schemas! {
    ClientToServer in "client" => [
        "auth", "join_room", "chat", "offer", "answer", "ice-candidate", "mute", "video", "screen_share",
        "request_unmute", "allow_unmute", "video_constraints",
    ],
    ServerToClient in "server" => [
        "config", "participants", "user_joined", "user_left", "chat", "offer", "answer", "ice-candidate",
        "mute", "video", "screen_share", "removed", "room_ended", "error", "unmute_requested", "unmute_allowed",
        "notification", "unread_count", "active_speakers", "publisher_layers",
        "recording",
    ],
}

/// The envelope: a server message at its root, a client message at
/// `#/$defs/ClientMessage`, a gateway-to-SFU message at `#/$defs/SfuInMessage`.
pub const WS_ENVELOPE_SCHEMA: &str = include_str!("../ws/envelope.json");

struct Compiled {
    payloads: Vec<(&'static WsSchema, Result<Validator, SchemaError>)>,
    envelope: Result<ValidatorMap, SchemaError>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    payloads: WS_SCHEMAS
        .iter()
        .map(|schema| {
            let name = format!("ws/{}/{}", schema.direction.folder(), schema.message_type);
            let compiled =
                parse(&name, schema.source).and_then(|value| options().build(&value).map_err(|e| bad(&name, e)));
            (schema, compiled)
        })
        .collect(),
    envelope: parse("ws/envelope", WS_ENVELOPE_SCHEMA)
        .and_then(|value| options().build_map(&value).map_err(|e| bad("ws/envelope", e))),
});

fn envelope(pointer: &str) -> Result<&'static Validator, SchemaError> {
    let map = COMPILED.envelope.as_ref().map_err(Clone::clone)?;
    map.get(pointer).ok_or_else(|| bad("ws/envelope", format!("{pointer} is missing")))
}

/// Checks a whole message: its envelope, then its payload against the schema of
/// its `type` in that direction. A client message without a payload is checked
/// as if its payload were `{}` (the gateway reads it so).
pub fn validate_ws_message(direction: WsDirection, message: &Value) -> Result<(), SchemaError> {
    let pointer = match direction {
        WsDirection::ClientToServer => "#/$defs/ClientMessage",
        WsDirection::ServerToClient => "#",
    };
    let what = format!("a {} WebSocket message", direction.folder());
    check(envelope(pointer)?, what, message)?;
    let kind = message.get("type").and_then(Value::as_str).unwrap_or_default();
    let compiled =
        COMPILED.payloads.iter().find(|(schema, _)| schema.direction == direction && schema.message_type == kind);
    let validator = match compiled {
        Some((_, Ok(validator))) => validator,
        Some((_, Err(error))) => return Err(error.clone()),
        None => {
            return Err(SchemaError::UnknownMessage { direction: direction.folder(), message_type: kind.to_owned() });
        }
    };
    let empty = Value::Object(Default::default());
    let payload = message.get("payload").unwrap_or(&empty);
    check(validator, format!("the payload of a {} {kind} message", direction.folder()), payload)
}

/// Checks what the gateway publishes to the SFU (`<namespace>.sfu.rooms.<roomId>.in`).
/// The payload of an offer, answer or ice-candidate is a client's, so it is
/// checked against the client schema of that type.
pub fn validate_sfu_message(message: &Value) -> Result<(), SchemaError> {
    check(envelope("#/$defs/SfuInMessage")?, "a message to the SFU".to_owned(), message)?;
    let kind = message.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind == "disconnect" {
        return Ok(());
    }
    validate_ws_message(
        WsDirection::ClientToServer,
        &serde_json::json!({ "type": kind, "payload": message["payload"] }),
    )
}
