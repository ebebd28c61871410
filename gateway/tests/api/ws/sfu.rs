//! The gateway's side of the SFU contract, with a plain NATS subscriber standing
//! in for the SFU: negotiation without `targetUserId` goes to
//! `<namespace>.sfu.rooms.<roomId>.in`, and what the SFU publishes on the room's
//! signal subject with `Rapat-Ws-Connection` reaches that one socket.

use async_nats::HeaderMap;
use futures::StreamExt;
use rapat_schemas::validate_sfu_message;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, WAIT, connected, room_with};
use crate::helpers::{TestApp, nats_url, spawn_app};

/// The next message the stand-in SFU receives, as JSON checked against its schema.
async fn next_for_sfu(inbox: &mut async_nats::Subscriber) -> Value {
    let message =
        tokio::time::timeout(WAIT, inbox.next()).await.expect("a message for the SFU in time").expect("subscribed");
    let body: Value = serde_json::from_slice(&message.payload).expect("JSON for the SFU");
    assert_eq!(validate_sfu_message(&body), Ok(()), "{body:#}");
    body
}

/// What the SFU sends a socket: a complete server-format message, for one connection.
async fn sfu_says(
    nats: &async_nats::Client,
    app: &TestApp,
    room: &str,
    connection: Option<&str>,
    kind: &str,
    payload: Value,
) {
    let message = json!({
        "type": kind, "roomId": room, "userId": Uuid::nil(), "username": "sfu", "payload": payload,
        "timestamp": chrono::Utc::now(),
    });
    let mut headers = HeaderMap::new();
    if let Some(connection) = connection {
        headers.insert(rapat_wire::signal::CONNECTION_HEADER, connection);
    }
    let subject = app.namespace.room_signal_subject(room);
    nats.publish_with_headers(subject, headers, message.to_string().into()).await.expect("published");
    nats.flush().await.expect("flushed");
}

async fn marker(nats: &async_nats::Client, app: &TestApp, room: &str, text: &str) {
    sfu_says(nats, app, room, None, "chat", json!({ "message": text, "id": 1 })).await;
}

async fn none_of_type(client: &mut Client, kind: &str, marker: &str) {
    let seen = client.until_marker(marker).await;
    assert!(!seen.iter().any(|message| message["type"] == kind), "{seen:?}");
}

#[tokio::test]
async fn negotiation_goes_to_the_sfu_and_its_answer_to_that_socket_only() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let mut inbox = nats.subscribe(app.namespace.sfu_inbound_subject(&room)).await.expect("subscribed");
    nats.flush().await.expect("flushed");

    // The host on two sockets (two gateways), the guest on one.
    let mut a1 = connected(&app.base_url, &room, &host.token).await;
    let mut a2 = connected(&second, &room, &host.token).await;
    let mut b = connected(&app.base_url, &room, &guests[0].token).await;

    let offer = json!({ "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "type": "offer" });
    a1.send(json!({ "type": "offer", "payload": offer })).await;
    let to_sfu = next_for_sfu(&mut inbox).await;
    assert_eq!(to_sfu["type"], "offer");
    assert_eq!(to_sfu["roomId"], room.as_str());
    assert_eq!(to_sfu["userId"], host.id.as_str());
    assert_eq!(to_sfu["username"], "Hana Tester");
    assert_eq!(to_sfu["payload"], offer, "the client's payload as it is");
    let connection = to_sfu["connectionId"].as_str().expect("connectionId").to_string();
    Uuid::parse_str(&connection).expect("a connection id is a UUID");

    let candidate = json!({ "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0 });
    a1.send(json!({ "type": "ice-candidate", "payload": candidate })).await;
    let to_sfu = next_for_sfu(&mut inbox).await;
    assert_eq!(
        (&to_sfu["type"], &to_sfu["connectionId"], &to_sfu["payload"]),
        (&json!("ice-candidate"), &json!(connection), &candidate)
    );

    // The SFU answers that connection; only that socket hears it.
    let answer = json!({ "sdp": "v=0\r\n", "type": "answer" });
    sfu_says(&nats, &app, &room, Some(&connection), "answer", answer.clone()).await;
    let heard = a1.expect("answer").await;
    assert_eq!(heard["payload"], answer);
    assert_eq!(heard["username"], "sfu");
    marker(&nats, &app, &room, "after answer").await;
    none_of_type(&mut a2, "answer", "after answer").await;
    none_of_type(&mut b, "answer", "after answer").await;
    none_of_type(&mut a1, "answer", "after answer").await;

    // The other socket of the same user negotiates on its own connection.
    a2.send(json!({ "type": "answer", "payload": { "sdp": "v=0", "type": "answer" } })).await;
    let from_a2 = next_for_sfu(&mut inbox).await;
    assert_eq!(from_a2["type"], "answer");
    assert_ne!(from_a2["connectionId"], json!(connection));

    // Lightly validated: the payload must be an object.
    a1.send(json!({ "type": "offer", "payload": "v=0" })).await;
    assert_eq!(a1.expect("error").await["payload"]["code"], "invalid_payload");

    // A socket that closes is announced, so the SFU can drop its peer.
    a1.socket.close(None).await.expect("close");
    let gone = next_for_sfu(&mut inbox).await;
    assert_eq!(gone["type"], "disconnect");
    assert_eq!(gone["connectionId"], json!(connection));
    assert_eq!(gone["userId"], host.id.as_str());
    assert_eq!(gone["payload"], json!({}));
}

#[tokio::test]
async fn a_malformed_connection_header_reaches_nobody() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let mut a = connected(&app.base_url, &room, &host.token).await;
    sfu_says(&nats, &app, &room, Some("not-a-connection"), "offer", json!({ "sdp": "v=0" })).await;
    marker(&nats, &app, &room, "after offer").await;
    none_of_type(&mut a, "offer", "after offer").await;
}
