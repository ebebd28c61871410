//! Abuse limits of `/ws`: sockets per user (over every gateway) and per room,
//! message rates per socket by kind, and the size of one message.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Client, WAIT, connect, connected, room_with};
use crate::helpers::{TestApp, nats_url, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_user_over_the_socket_cap_is_refused_counting_every_gateway() {
    let app = spawn_app_with(|config| {
        config.ws_max_sockets_per_user = 3;
        config.ws_max_sockets_per_room = 0;
    })
    .await;
    let second = app.second_gateway().await;
    let (room, host, _) = room_with(&app, &[]).await;

    let mut held = vec![connected(&second, &room, &host.token).await, connected(&second, &room, &host.token).await];
    held.push(connected(&app.base_url, &room, &host.token).await);

    let (code, reason) = connect(&app.base_url, &room, Some(&host.token)).await.expect_close().await;
    assert_eq!(code, 4429, "{reason}");
    assert!(reason.contains("too many"), "{reason}");

    // Closing one makes room for another.
    let mut closed = held.remove(0);
    closed.socket.close(None).await.expect("close");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut again = connect(&app.base_url, &room, Some(&host.token)).await;
        let first = again.socket.next().await;
        if matches!(first, Some(Ok(Message::Text(_)))) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed socket never stopped counting: {first:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_socket_over_the_room_cap_replaces_the_oldest_on_any_gateway() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    let mut listener = connected(&app.base_url, &room, &host.token).await;

    // The default cap is 3 per user and room; the oldest is on the other gateway.
    let mut oldest = connected(&second, &room, &guest.token).await;
    let _b = connected(&app.base_url, &room, &guest.token).await;
    let _c = connected(&second, &room, &guest.token).await;
    // A reconnect while the three are still counted gets in...
    let mut newest = connected(&app.base_url, &room, &guest.token).await;
    // ... and the oldest makes way.
    let (code, reason) = oldest.expect_close().await;
    assert_eq!(code, 4420, "{reason}");

    newest.send(json!({ "type": "chat", "payload": { "message": "reconnected" } })).await;
    assert_eq!(listener.expect("chat").await["payload"]["message"], "reconnected");
}

/// How many commits the room's event subject holds.
async fn room_commits(app: &TestApp, room: &str) -> u64 {
    let jetstream = async_nats::jetstream::new(rapat_commands::connect(&nats_url()).await.expect("NATS"));
    let stream = jetstream.get_stream(app.namespace.events_stream()).await.expect("the event stream");
    let subject = app.namespace.event_subject("room", room);
    let info = stream.info_with_subjects(subject.clone()).await.expect("stream info");
    let counts: Vec<(String, usize)> =
        info.collect::<Vec<_>>().await.into_iter().map(|item| item.expect("a subject")).collect();
    counts.into_iter().find(|(name, _)| *name == subject).map_or(0, |(_, count)| count as u64)
}

/// Sends `count` messages without reading, stopping early if the server closed.
async fn flood(client: &mut Client, count: usize, message: impl Fn(usize) -> serde_json::Value) {
    for n in 0..count {
        if client.socket.send(Message::text(message(n).to_string())).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_join_room_flooder_is_closed_and_listeners_keep_receiving() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let mut listener = connected(&app.base_url, &room, &guests[1].token).await;
    let mut flooder = connected(&app.base_url, &room, &guests[0].token).await;

    flood(&mut flooder, 5000, |_| json!({ "type": "join_room" })).await;
    let (code, reason) = flooder.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("join_room"), "{reason}");

    let mut host_socket = connected(&app.base_url, &room, &host.token).await;
    host_socket.send(json!({ "type": "chat", "payload": { "message": "after the flood" } })).await;
    let seen = listener.until_marker("after the flood").await;
    let joins = seen.iter().filter(|m| m["type"] == "user_joined").count();
    assert!(joins <= 6, "at most the join_room burst reached the room, got {joins}");
}

#[tokio::test]
async fn mute_toggles_over_the_limit_never_reach_the_stream() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut listener = connected(&app.base_url, &room, &host.token).await;
    let mut flooder = connected(&app.base_url, &room, &guests[0].token).await;
    let before = room_commits(&app, &room).await;

    flood(&mut flooder, 300, |n| json!({ "type": "mute", "payload": { "muted": n % 2 == 0 } })).await;
    assert_eq!(flooder.expect_close().await.0, 1008);

    let stored = room_commits(&app, &room).await - before;
    // The burst (10) and what refilled while the flood was handled (one a second).
    assert!((1..=20).contains(&stored), "{stored} mute events stored out of 300");
    let mut host_chat = connected(&app.base_url, &room, &host.token).await;
    host_chat.send(json!({ "type": "chat", "payload": { "message": "marker" } })).await;
    let seen = listener.until_marker("marker").await;
    assert!(seen.iter().filter(|m| m["type"] == "mute").count() as u64 <= stored);
}

#[tokio::test]
async fn a_chat_flooder_is_closed() {
    let app = spawn_app_with(|config| config.ws_rate_limits.chat.burst = 5).await;
    let (room, host, _) = room_with(&app, &[]).await;
    let mut flooder = connected(&app.base_url, &room, &host.token).await;
    flood(&mut flooder, 500, |n| json!({ "type": "chat", "payload": { "message": format!("spam {n}") } })).await;
    let (code, reason) = flooder.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    let history = app.get(&format!("/api/v1/rooms/{room}/chat"), &host.token).await;
    let stored = history.data()["messages"].as_array().map_or(0, Vec::len);
    assert!(stored <= 10, "{stored} chats stored out of 500");
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() {
    let app = spawn_app_with(|config| config.ws_max_message_bytes = 1024 * 1024).await;
    let (room, host, _) = room_with(&app, &[]).await;
    let client = connected(&app.base_url, &room, &host.token).await;
    let (mut sink, mut stream) = client.socket.split();
    // 16 MB: the server refuses it on the frame header, long before it has arrived.
    let big = Message::text("x".repeat(16 * 1024 * 1024));
    let sending = tokio::spawn(async move {
        let _ = sink.send(big).await;
        sink
    });
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the socket closes in time");
    assert_eq!(close.map(|(code, _)| code), Some(1009));
    sending.abort();
}
