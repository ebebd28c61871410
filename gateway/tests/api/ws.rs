//! WebSocket signaling (`/ws`) over real sockets, against one or two gateways.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, spawn_app, spawn_app_with};
use crate::rooms::{end, join, room_body};

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

    /// The next JSON message, skipping keep-alive frames.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON from the server"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("expected a message, got {other:?}"),
                }
            }
        })
        .await
        .expect("a message in time")
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
    b.expect("participants").await;
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

    drop(b);
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
    let mut seen = Vec::new();
    loop {
        let message = c.next().await;
        if message["payload"]["message"] == "marker" {
            break;
        }
        seen.push(message["type"].as_str().unwrap_or("").to_string());
    }
    assert!(!seen.iter().any(|kind| kind == "offer" || kind == "answer"), "{seen:?}");

    a.send(json!({ "type": "offer", "payload": { "sdp": "v=0" } })).await;
    assert_eq!(a.expect("error").await["payload"]["code"], "sfu_unavailable");
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

    let listed = app.get(&format!("/api/v1/rooms/{room}/participants"), &host.token).await;
    let me = listed.data().as_array().expect("list").iter().find(|p| p["userId"] == guests[0].id.as_str()).cloned();
    let me = me.expect("B is listed");
    assert_eq!(me["audioMuted"], true);
    assert_eq!(me["videoOn"], true);

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
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/remove"), Some(&host.token), json!({})).await.expect(200);
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
        config.ws_ping_interval = Duration::from_millis(100);
        config.ws_pong_timeout = Duration::from_millis(400);
    })
    .await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    // B never reads, so it never answers a ping.
    let mut b = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    assert_eq!(a.expect("user_joined").await["userId"], guests[0].id.as_str());
    assert_eq!(a.expect("user_left").await["userId"], guests[0].id.as_str());
    // A, reading, keeps answering pings and stays.
    a.send(json!({ "type": "chat", "payload": { "message": "alive" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "alive");
    b.socket.close(None).await.ok();
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_dropped_and_the_room_goes_on() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connect(&app.base_url, &room, Some(&host.token)).await;
    a.expect("participants").await;
    // B never reads: once its socket buffers and its queue are full, it is dropped.
    let b = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    assert_eq!(a.expect("user_joined").await["userId"], guests[0].id.as_str());
    let bulk = json!({ "sdp": "z".repeat(60 * 1024) });
    let flood = async {
        for _ in 0..1000 {
            a.send(json!({ "type": "offer", "targetUserId": guests[0].id, "payload": bulk })).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), flood).await.expect("the sender is never blocked for long");
    assert_eq!(a.expect("user_left").await["userId"], guests[0].id.as_str());
    a.send(json!({ "type": "chat", "payload": { "message": "still going" } })).await;
    assert_eq!(a.expect("chat").await["payload"]["message"], "still going");
    drop(b);
}
