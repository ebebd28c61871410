//! WebSocket signaling (`/ws`) over real sockets, against one or two gateways.
//! Every message a test socket receives is checked against `schemas/ws/`.
//!
//! - `chat.rs`: chat stored on its stream, and its history for late joiners.
//! - `events.rs`: room events (REST or socket) reach every socket exactly once.
//! - `limits.rs`: socket caps, message rates and the message size limit.
//! - `notifications.rs`: live notifications on room and lobby sockets, over two gateways.
//! - `nats_restart.rs`: fan-out, chat, revocation, presence and projections after a NATS restart.
//! - `presence.rs`: presence follows open sockets.
//! - `sessions.rs`: a revoked session's sockets close; a token must be its session's user's.
//! - `sfu.rs`: the gateway's side of the SFU signaling contract.

mod chat;
mod events;
mod limits;
mod nats_restart;
mod notifications;
mod presence;
mod recording;
mod sessions;
mod sfu;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use rapat_schemas::{WsDirection, validate_ws_message};

use crate::helpers::{TestApp, TestUser, spawn_app, spawn_app_with};
use crate::rooms::{end, join, leave, room_body};

/// The longest a test waits for a message it expects.
const WAIT: Duration = Duration::from_secs(10);

struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

async fn connect_url(url: String) -> Client {
    let request = url.into_client_request().expect("request");
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket upgrade");
    Client { socket }
}

/// Opens `/ws` on `base_url` (an `http://` gateway address) for `room`.
async fn connect(base_url: &str, room: &str, token: Option<&str>) -> Client {
    let base = base_url.replace("http://", "ws://");
    let url = match token {
        Some(token) => format!("{base}/ws?roomId={room}&token={token}"),
        None => format!("{base}/ws?roomId={room}"),
    };
    connect_url(url).await
}

impl Client {
    async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("send");
    }

    /// The next JSON message, skipping keep-alive frames. Each is checked against
    /// its schema, so the schemas describe what the gateway really sends.
    async fn next(&mut self) -> Value {
        let message: Value = tokio::time::timeout(WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON from the server"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("expected a message, got {other:?}"),
                }
            }
        })
        .await
        .expect("a message in time");
        if let Err(error) = validate_ws_message(WsDirection::ServerToClient, &message) {
            panic!("the gateway sent a message outside its schema: {error}\n{message:#}");
        }
        message
    }

    /// Reads for `duration` (answering pings, so the socket stays up) and
    /// returns the messages that came.
    async fn pump(&mut self, duration: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut seen = Vec::new();
        while let Ok(frame) = tokio::time::timeout_at(deadline, self.socket.next()).await {
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON from the server");
                    if let Err(error) = validate_ws_message(WsDirection::ServerToClient, &message) {
                        panic!("the gateway sent a message outside its schema: {error}\n{message:#}");
                    }
                    seen.push(message);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        seen
    }

    /// Every message up to the chat message `marker` (not included).
    async fn until_marker(&mut self, marker: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            if message["type"] == "chat" && message["payload"]["message"] == marker {
                return seen;
            }
            seen.push(message);
        }
    }

    /// Waits for a message of `kind`, skipping others.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Waits for a close frame, skipping messages, and returns its code and reason.
    async fn expect_close(&mut self) -> (u16, String) {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
                    Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .expect("the socket closes in time")
    }
}

/// Opens `/ws` and reads up to the `participants` message.
async fn connected(base_url: &str, room: &str, token: &str) -> Client {
    let mut client = connect(base_url, room, Some(token)).await;
    client.expect("participants").await;
    client
}

/// A room hosted by a new user, with `guests` joined through REST.
async fn room_with(app: &TestApp, guests: &[&str]) -> (String, TestUser, Vec<TestUser>) {
    let host = app.new_user("Hana").await;
    let room = app.create_room(&host, room_body("Signals")).await;
    join(app, &host, &room, json!({})).await.expect(200);
    let mut joined = Vec::new();
    for name in guests {
        let guest = app.new_user(name).await;
        join(app, &guest, &room, json!({})).await.expect(200);
        joined.push(guest);
    }
    (room, host, joined)
}

#[tokio::test]
async fn refusals_close_with_clear_codes() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;
    let stranger = app.new_user("Sam").await;

    let mut no_token = connect(&app.base_url, &room, None).await;
    no_token.send(json!({ "type": "chat", "payload": { "message": "hi" } })).await;
    assert_eq!(no_token.expect_close().await.0, 4401);

    let (code, reason) = connect(&app.base_url, &room, Some("not.a.token")).await.expect_close().await;
    assert_eq!(code, 4401);
    assert!(!reason.is_empty());

    assert_eq!(connect(&app.base_url, &room, Some(&stranger.token)).await.expect_close().await.0, 4403);
    let unknown = Uuid::new_v4().to_string();
    assert_eq!(connect(&app.base_url, &unknown, Some(&host.token)).await.expect_close().await.0, 4404);
}

#[tokio::test]
async fn the_token_may_come_as_a_subprotocol_or_a_first_auth_message() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;

    let url = format!("{}/ws?roomId={room}", app.base_url.replace("http://", "ws://"));
    let mut request = url.clone().into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", host.token.parse().expect("header value"));
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], host.token.as_str());
    let mut by_protocol = Client { socket };
    by_protocol.expect("participants").await;

    let mut by_message = connect_url(url).await;
    by_message.send(json!({ "type": "auth", "payload": { "token": host.token } })).await;
    let participants = by_message.expect("participants").await;
    assert_eq!(participants["userId"], host.id.as_str());
}

#[tokio::test]
async fn participants_join_leave_and_chat() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];

    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    let participants = a.expect("participants").await;
    assert_eq!(participants["roomId"], room.as_str());
    let listed = participants["payload"]["participants"].as_array().expect("a list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|p| p["audioMuted"].is_boolean() && p["videoOn"].is_boolean()));

    let mut b = connect(&app.base_url, &room, Some(&guest.token)).await;
    assert_eq!(b.next().await["type"], "config", "config comes first");
    b.expect("participants").await;
    // The REST join was announced before A's socket opened; B announces its socket.
    b.send(json!({ "type": "join_room" })).await;
    let joined = a.expect("user_joined").await;
    assert_eq!(joined["userId"], guest.id.as_str());
    assert_eq!(joined["username"], "Budi Tester");

    // The server stamps who sent it, whatever the client claims.
    b.send(json!({ "type": "chat", "userId": host.id, "username": "Mallory", "payload": { "message": "halo" } })).await;
    let chat = a.expect("chat").await;
    assert_eq!(chat["payload"]["message"], "halo");
    assert_eq!(chat["userId"], guest.id.as_str());
    assert_eq!(chat["username"], "Budi Tester");
    assert!(chat["timestamp"].is_string());
    assert_eq!(b.expect("chat").await["payload"]["message"], "halo");

    b.send(json!({ "type": "chat", "payload": { "message": "x".repeat(2001) } })).await;
    assert_eq!(b.expect("error").await["payload"]["code"], "invalid_message");

    leave(&app, guest, &room).await.expect(200);
    assert_eq!(a.expect("user_left").await["userId"], guest.id.as_str());
}

#[tokio::test]
async fn two_gateways_carry_chat_and_targeted_signaling() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;

    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    let mut b = connect(&second, &room, Some(&guests[0].token)).await;
    b.expect("participants").await;
    let mut c = connect(&second, &room, Some(&guests[1].token)).await;
    c.expect("participants").await;
    b.send(json!({ "type": "join_room" })).await;
    assert_eq!(a.expect("user_joined").await["userId"], guests[0].id.as_str());

    b.send(json!({ "type": "chat", "payload": { "message": "from gateway two" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "from gateway two");
    assert_eq!(b.expect("chat").await["payload"]["message"], "from gateway two", "the sender gets its own chat back");
    a.send(json!({ "type": "chat", "payload": { "message": "from gateway one" } })).await;
    assert_eq!(b.expect("chat").await["payload"]["message"], "from gateway one");

    let sdp = json!({ "sdp": "v=0", "type": "offer" });
    a.send(json!({ "type": "offer", "targetUserId": guests[0].id, "payload": sdp })).await;
    let offer = b.expect("offer").await;
    assert_eq!(offer["payload"], sdp);
    assert_eq!(offer["userId"], host.id.as_str());
    assert_eq!(offer["targetUserId"], guests[0].id.as_str());
    b.send(json!({ "type": "answer", "targetUserId": host.id, "payload": { "sdp": "v=0", "type": "answer" } })).await;
    assert_eq!(a.expect("answer").await["userId"], guests[0].id.as_str());

    // C saw the chat but not the offer meant for B: the next thing after the
    // chats is a marker chat.
    a.send(json!({ "type": "chat", "payload": { "message": "marker" } })).await;
    let seen = c.until_marker("marker").await;
    assert!(!seen.iter().any(|m| m["type"] == "offer" || m["type"] == "answer"), "{seen:?}");

    a.send(json!({ "type": "offer", "targetUserId": guests[0].id, "payload": "v=0" })).await;
    assert_eq!(a.expect("error").await["payload"]["code"], "invalid_payload");
}

#[tokio::test]
async fn media_state_is_recorded_and_broadcast() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    let mut b = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    b.expect("participants").await;

    b.send(json!({ "type": "mute", "payload": { "muted": true } })).await;
    let mute = a.expect("mute").await;
    assert_eq!(mute["userId"], guests[0].id.as_str());
    assert_eq!(mute["payload"]["muted"], true);
    b.send(json!({ "type": "video", "payload": { "on": true } })).await;
    assert_eq!(a.expect("video").await["payload"]["on"], true);

    // Sockets hear a change once it is stored; the read model follows a moment later.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = app.get(&format!("/api/v1/rooms/{room}/participants"), &host.token).await;
        let me = listed.data().as_array().expect("list").iter().find(|p| p["userId"] == guests[0].id.as_str()).cloned();
        let me = me.expect("B is listed");
        if me["audioMuted"] == true && me["videoOn"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the change never reached the read model: {me:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    b.send(json!({ "type": "screen_share", "payload": { "sharing": "yes" } })).await;
    assert_eq!(b.expect("error").await["payload"]["code"], "invalid_payload");
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;

    a.socket.send(Message::text("{not json")).await.expect("send");
    assert_eq!(a.expect("error").await["payload"]["code"], "bad_json");
    a.send(json!({ "type": "teleport", "payload": {} })).await;
    let unknown = a.expect("error").await;
    assert_eq!(unknown["payload"]["code"], "unknown_type");
    assert!(unknown["payload"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    a.send(json!({ "type": "chat", "payload": { "message": "y".repeat(70 * 1024) } })).await;
    assert_eq!(a.expect("error").await["payload"]["code"], "message_too_large");

    a.send(json!({ "type": "chat", "payload": { "message": "still here" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "still here");
}

#[tokio::test]
async fn removal_and_room_end_close_sockets() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    let mut b = connect(&second, &room, Some(&guests[0].token)).await;
    b.expect("participants").await;
    let mut c = connect(&second, &room, Some(&guests[1].token)).await;
    c.expect("participants").await;

    let target = &guests[0].id;
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/remove"), Some(&host.token), json!({}))
        .await
        .expect(200);
    assert_eq!(b.expect("removed").await["userId"], target.as_str());
    assert_eq!(b.expect_close().await.0, 4409);
    assert_eq!(a.expect("user_left").await["userId"], target.as_str());

    end(&app, &host, &room).await.expect(200);
    for client in [&mut a, &mut c] {
        client.expect("room_ended").await;
        assert_eq!(client.expect_close().await.0, 4410);
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped() {
    let app = spawn_app_with(|config| {
        config.ws_ping_interval = Duration::from_millis(200);
        config.ws_pong_timeout = Duration::from_millis(1500);
    })
    .await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    // B never reads, so it never answers a ping.
    let b = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    presence::wait_for_status(&app, &host, &guests[0], "in_meeting", &mut [&mut a]).await;
    // Dropped: B is no longer in the meeting (a dropped socket is not a leave).
    // (Its 4408 close frame cannot be checked here: reading it would answer the
    // pings queued before it, on a connection the server has already closed.)
    presence::wait_for_status(&app, &host, &guests[0], "online", &mut [&mut a]).await;
    // A, reading, keeps answering pings and stays.
    a.send(json!({ "type": "chat", "payload": { "message": "alive" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "alive");
    assert_eq!(app.presence_of(&host, &host.id).await.data()["status"], "in_meeting");
    drop(b);
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_dropped_and_the_room_goes_on() {
    // The sender's own offer rate must not stop it first.
    let app = spawn_app_with(|config| config.ws_rate_limits.sdp.burst = 10_000).await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    // B never reads: once its socket buffers and its queue are full, it is dropped.
    let b = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    presence::wait_for_status(&app, &host, &guests[0], "in_meeting", &mut []).await;
    // Flooded until it is dropped (no longer in the meeting: a dropped socket is
    // not a leave), however much the machine's socket buffers hold.
    let bulk = json!({ "sdp": "z".repeat(60 * 1024) });
    let flood = async {
        loop {
            for _ in 0..20 {
                a.send(json!({ "type": "offer", "targetUserId": guests[0].id, "payload": bulk })).await;
            }
            if app.presence_of(&host, &guests[0].id).await.data()["status"] == "online" {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), flood)
        .await
        .expect("the slow client is dropped, and the sender is never blocked for long");
    a.send(json!({ "type": "chat", "payload": { "message": "still going" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "still going");
    drop(b);
}

#[tokio::test]
async fn each_socket_is_first_told_its_ice_servers() {
    let app = spawn_app_with(|config| {
        config.ice_servers = vec![
            rapat_gateway::IceServer {
                urls: vec!["stun:stun.example.com:3478".into()],
                username: None,
                credential: None,
            },
            rapat_gateway::IceServer {
                urls: vec!["turn:turn.example.com:3478?transport=udp".into(), "turns:turn.example.com:5349".into()],
                username: Some("rapat".into()),
                credential: Some("s3cret".into()),
            },
        ];
    })
    .await;
    let (room, host, _) = room_with(&app, &[]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    let config = a.next().await;
    assert_eq!(config["type"], "config", "the first message: {config:#}");
    assert_eq!(config["userId"], host.id.as_str());
    assert_eq!(
        config["payload"],
        json!({ "iceServers": [
            { "urls": ["stun:stun.example.com:3478"] },
            { "urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"], "username": "rapat", "credential": "s3cret" },
        ] })
    );
    assert_eq!(a.next().await["type"], "participants");

    // None configured: an empty list, still first.
    let plain = spawn_app().await;
    let (room, host, _) = room_with(&plain, &[]).await;
    let mut b = connect(&plain.base_url, &room, Some(&host.token)).await;
    assert_eq!(b.next().await["payload"], json!({ "iceServers": [] }));
}

#[tokio::test]
async fn each_socket_gets_a_time_limited_turn_credential_of_its_own() {
    use base64::Engine;
    use hmac::Mac;
    let app = spawn_app_with(|config| {
        config.turn = Some(rapat_gateway::TurnConfig {
            urls: vec!["turn:turn.example.com:3478".into()],
            secret: "shared-with-coturn".into(),
            ttl: Duration::from_secs(600),
        });
    })
    .await;
    let (room, host, guests) = room_with(&app, &["Guest"]).await;
    let mut seen = Vec::new();
    for (token, user) in [(&host.token, &host.id), (&guests[0].token, &guests[0].id)] {
        let mut socket = connect(&app.base_url, &room, Some(token)).await;
        let config = socket.next().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
        let server = &config["payload"]["iceServers"][0];
        assert_eq!(server["urls"], json!(["turn:turn.example.com:3478"]));
        let username = server["username"].as_str().expect("a username");
        let (expiry, named) = username.split_once(':').expect("expiry:userId");
        assert_eq!(named, user.as_str());
        let expiry: u64 = expiry.parse().expect("unix time");
        assert!((now + 590..=now + 600).contains(&expiry), "expires in the TTL: {expiry} vs now {now}");
        // What coturn computes with use-auth-secret to check it.
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"shared-with-coturn").expect("any key");
        mac.update(username.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(server["credential"], expected.as_str());
        seen.push(username.to_string());
    }
    assert_ne!(seen[0], seen[1], "each user gets their own");
}

#[test]
fn ice_servers_read_from_json_take_one_url_or_many() {
    let servers: Vec<rapat_gateway::IceServer> =
        serde_json::from_str(r#"[{"urls":"stun:a"},{"urls":["turn:b"],"username":"u","credential":"c"}]"#)
            .expect("valid");
    assert_eq!(servers[0].urls, ["stun:a"]);
    assert_eq!(servers[1].username.as_deref(), Some("u"));
}
