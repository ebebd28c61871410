//! Keeps `schemas/ws/` whole and sound: every file is embedded and valid, and the
//! contract accepts the SPEC's messages and refuses broken ones. That the gateway
//! really sends what these describe is checked by the gateway's WebSocket tests,
//! which validate every message their sockets receive.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use rapat_schemas::{
    SchemaError, WS_ENVELOPE_SCHEMA, WS_SCHEMAS, WsDirection, validate_sfu_message, validate_ws_message,
};
use serde_json::{Value, json};

const ROOM: &str = "0b6f0a3e-4a0e-4a53-9d0c-5a3f1f0c2b11";
const ANA: &str = "6a1c9a37-2f1e-4c4e-8f8a-0d7c3e1b9a01";
const BUDI: &str = "9d3e4f10-7b2a-4c1d-a0e5-3f6b8c9d0e02";

fn server(kind: &str, payload: Value) -> Value {
    json!({ "type": kind, "roomId": ROOM, "userId": ANA, "username": "Ana Putri", "payload": payload, "timestamp": "2025-03-14T09:30:00.123456Z" })
}

/// A message of the user's own: no `roomId` nor `username`.
fn to_user(kind: &str, payload: Value) -> Value {
    json!({ "type": kind, "userId": ANA, "payload": payload, "timestamp": "2025-03-14T09:30:00.123456Z" })
}

fn client(kind: &str, payload: Value) -> Value {
    json!({ "type": kind, "payload": payload })
}

#[test]
fn every_schema_file_is_embedded_and_valid_draft_2020_12() {
    let embedded: BTreeSet<(String, String)> =
        WS_SCHEMAS.iter().map(|s| (s.direction.folder().to_owned(), s.message_type.to_owned())).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ws");
    let mut on_disk = BTreeSet::new();
    for folder in ["client", "server"] {
        for file in fs::read_dir(root.join(folder)).expect("a readable folder") {
            let file = file.expect("a readable entry").path();
            assert_eq!(file.extension().and_then(|e| e.to_str()), Some("json"), "stray file {file:?}");
            let kind = file.file_stem().and_then(|n| n.to_str()).expect("a UTF-8 name").to_owned();
            on_disk.insert((folder.to_owned(), kind));
        }
    }
    assert_eq!(on_disk, embedded, "every schema file on disk is embedded, and every embedded one is on disk");

    for source in WS_SCHEMAS.iter().map(|s| s.source).chain([WS_ENVELOPE_SCHEMA]) {
        let schema: Value = serde_json::from_str(source).expect("a schema is JSON");
        assert_eq!(schema["$schema"], json!("https://json-schema.org/draft/2020-12/schema"));
        assert!(jsonschema::meta::is_valid(&schema), "{}", schema["$id"]);
    }
}

#[test]
fn every_server_message_of_the_spec_is_accepted() {
    let participant = json!({
        "userId": BUDI, "username": "Budi", "firstName": "Budi", "lastName": "", "joinedAt": "2025-03-14T09:30:00Z",
        "audioMuted": false, "videoOn": true, "screenSharing": false, "mutedByHost": false,
    });
    let ice_servers = json!([{ "urls": ["stun:stun.example.com:3478"] }, { "urls": ["turn:turn.example.com"], "username": "u", "credential": "c" }]);
    let candidate = json!({ "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0 });
    let samples = [
        server("config", json!({ "iceServers": ice_servers })),
        server("config", json!({ "iceServers": [] })),
        server("participants", json!({ "participants": [participant] })),
        server("user_joined", json!({})),
        server("user_left", json!({})),
        server("user_left", json!({ "removedBy": ANA })),
        server("chat", json!({ "message": "halo", "id": 7 })),
        server("offer", json!({ "sdp": "v=0\r\n", "type": "offer" })),
        server("answer", json!({ "sdp": "v=0\r\n" })),
        server("ice-candidate", candidate.clone()),
        server(
            "ice-candidate",
            json!({ "candidate": "", "sdpMid": null, "sdpMLineIndex": null, "usernameFragment": null }),
        ),
        server("mute", json!({ "muted": true })),
        server("mute", json!({ "muted": true, "byHost": true })),
        server("video", json!({ "on": false })),
        server("screen_share", json!({ "sharing": true })),
        server("removed", json!({ "removedBy": ANA })),
        server("room_ended", json!({})),
        server("error", json!({ "code": "bad_json", "message": "a message must be JSON" })),
        server("unmute_requested", json!({})),
        server("unmute_allowed", json!({ "allowedBy": ANA })),
        to_user(
            "notification",
            json!({ "id": BUDI, "kind": "room_invitation", "createdAt": "2025-03-14T09:30:00Z", "readAt": null,
                "payload": { "room": { "id": ROOM, "name": "Planning" }, "actor": { "id": ANA } } }),
        ),
        to_user("unread_count", json!({ "count": 3 })),
        to_user("error", json!({ "code": "lobby_is_receive_only", "message": "x" })),
        server(
            "active_speakers",
            json!({ "speakers": [{ "userId": BUDI, "level": 0.92 }, { "userId": ANA, "level": 0.7 }] }),
        ),
        server("active_speakers", json!({ "speakers": [] })),
        server("publisher_layers", json!({ "trackId": "camera", "mid": "0", "active": ["q", "h"] })),
        server("recording", json!({ "active": true })),
        server("recording", json!({ "active": false })),
    ];
    let mut relayed = server("offer", json!({ "sdp": "v=0", "type": "offer" }));
    relayed["targetUserId"] = json!(BUDI);
    let mut from_sfu = server("ice-candidate", candidate);
    from_sfu["username"] = json!("sfu");
    for message in samples.iter().chain([&relayed, &from_sfu]) {
        assert_eq!(validate_ws_message(WsDirection::ServerToClient, message), Ok(()), "{message}");
    }
    let seen: BTreeSet<&str> = samples.iter().filter_map(|m| m["type"].as_str()).collect();
    let documented: BTreeSet<&str> =
        WS_SCHEMAS.iter().filter(|s| s.direction == WsDirection::ServerToClient).map(|s| s.message_type).collect();
    assert_eq!(seen, documented, "a sample for every server message type");
}

#[test]
fn every_client_message_of_the_spec_is_accepted() {
    let samples = [
        client("auth", json!({ "token": "a.b.c" })),
        json!({ "type": "join_room" }),
        client("chat", json!({ "message": "halo" })),
        // A client may send the fields the server sets; they are ignored.
        json!({ "type": "chat", "userId": ANA, "username": "Mallory", "payload": { "message": "x" } }),
        client("offer", json!({ "sdp": "v=0", "type": "offer" })),
        json!({ "type": "answer", "targetUserId": BUDI, "payload": { "sdp": "v=0", "type": "answer" } }),
        client("ice-candidate", json!({ "candidate": "candidate:1 1 udp 1 10.0.0.2 5 typ host", "sdpMLineIndex": 0 })),
        client("mute", json!({ "muted": false })),
        client("video", json!({ "on": true })),
        client("screen_share", json!({ "sharing": false })),
        json!({ "type": "request_unmute" }),
        json!({ "type": "allow_unmute", "targetUserId": BUDI, "payload": {} }),
        client("video_constraints", json!({ "publisherId": BUDI, "maxHeight": 360 })),
    ];
    for message in &samples {
        assert_eq!(validate_ws_message(WsDirection::ClientToServer, message), Ok(()), "{message}");
    }
}

#[test]
fn messages_that_break_the_contract_are_rejected() {
    let broken_server = [
        server("mute", json!({ "muted": "yes" })),
        server("mute", json!({ "muted": false, "byHost": false })),
        server("chat", json!({ "message": "" , "id": 1 })),
        server("chat", json!({ "message": "no id" })),
        server("error", json!({ "code": "Bad Code", "message": "x" })),
        server("config", json!({ "iceServers": [{ "urls": [] }] })),
        server("offer", json!({ "sdp": "v=0", "type": "answer" })),
        server("user_joined", json!({ "extra": 1 })),
        to_user("chat", json!({ "message": "a room's message names its room", "id": 1 })),
        to_user(
            "notification",
            json!({ "id": BUDI, "kind": "party", "createdAt": "2025-03-14T09:30:00Z",
            "readAt": null, "payload": {} }),
        ),
        to_user("unread_count", json!({ "count": -1 })),
        server("active_speakers", json!({ "speakers": [{ "userId": "budi", "level": 0.5 }] })),
        server("active_speakers", json!({ "speakers": [{ "userId": BUDI, "level": 1.5 }] })),
        server("active_speakers", json!({})),
        server("publisher_layers", json!({ "mid": "0", "active": ["x"] })),
        {
            let mut message = server("chat", json!({ "message": "hi", "id": 1 }));
            message["timestamp"] = json!("yesterday");
            message
        },
        {
            let mut message = server("chat", json!({ "message": "hi", "id": 1 }));
            message["roomId"] = json!("not-a-uuid");
            message
        },
    ];
    for message in &broken_server {
        assert!(validate_ws_message(WsDirection::ServerToClient, message).is_err(), "{message}");
    }
    let broken_client = [
        client("chat", json!({ "message": "   " })),
        client("chat", json!({ "message": "x".repeat(2001) })),
        client("ice-candidate", json!({ "sdpMid": "0" })),
        client("screen_share", json!({ "sharing": "yes" })),
        client("video_constraints", json!({ "publisherId": "budi", "maxHeight": 360 })),
        client("video_constraints", json!({ "publisherId": BUDI, "maxHeight": -1 })),
        json!({ "type": "offer", "targetUserId": "bob", "payload": { "sdp": "v=0" } }),
        json!({ "type": "offer", "payload": "v=0" }),
        json!({ "type": "allow_unmute", "payload": {} }),
        client("request_unmute", json!({ "userId": BUDI })),
    ];
    for message in &broken_client {
        assert!(validate_ws_message(WsDirection::ClientToServer, message).is_err(), "{message}");
    }
    assert!(matches!(
        validate_ws_message(WsDirection::ClientToServer, &client("teleport", json!({}))),
        Err(SchemaError::Invalid { .. })
    ));
}

#[test]
fn messages_to_the_sfu_match_their_schema() {
    let offer = json!({
        "type": "offer", "roomId": ROOM, "userId": ANA, "username": "Ana Putri", "connectionId": BUDI,
        "payload": { "sdp": "v=0", "type": "offer" },
    });
    assert_eq!(validate_sfu_message(&offer), Ok(()));
    let disconnect = json!({ "type": "disconnect", "roomId": ROOM, "userId": ANA, "username": "Ana", "connectionId": BUDI, "payload": {} });
    assert_eq!(validate_sfu_message(&disconnect), Ok(()));
    let mut no_connection = offer.clone();
    no_connection.as_object_mut().map(|fields| fields.remove("connectionId"));
    assert!(validate_sfu_message(&no_connection).is_err());
    let mut bad_payload = offer;
    bad_payload["payload"] = json!({ "type": "offer" });
    assert!(validate_sfu_message(&bad_payload).is_err());
}
