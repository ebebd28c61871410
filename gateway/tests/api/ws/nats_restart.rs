//! After a NATS kill -9 and restart (a server of the test's own), everything a
//! gateway follows works again: room fan-out and chat between two gateways,
//! session revocation closing sockets on the other gateway (even when stored
//! while that gateway was still cut off), presence, and the projections behind
//! REST.

use std::time::{Duration, Instant};

use rapat_testkit::{NatsServer, TcpProxy};
use serde_json::{Value, json};

use super::presence::wait_for_status;
use super::{Client, connected, room_with};
use crate::helpers::{TestApp, TestResponse, postgres_base_url, spawn_app_on};
use crate::rooms::{join, leave, participant_ids, room_body};

/// How long NATS stays dead: 3 s, or `RAPAT_TEST_NATS_DOWN_SECS` (a longer
/// outage by hand, e.g. 60).
fn down_for() -> Duration {
    let seconds = std::env::var("RAPAT_TEST_NATS_DOWN_SECS").ok().and_then(|value| value.parse().ok());
    Duration::from_secs(seconds.unwrap_or(3))
}
/// How long the gateways get to be back on NATS after it restarted.
const BACK_WITHIN: Duration = Duration::from_secs(20);

/// Kills NATS and restarts it after `down_for()`, reading `sockets` meanwhile so
/// that they answer the gateway's pings.
async fn kill_and_restart(server: &mut NatsServer, sockets: &mut [&mut Client]) {
    server.kill();
    let back_at = Instant::now() + down_for();
    while Instant::now() < back_at {
        for socket in sockets.iter_mut() {
            socket.pump(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart().await;
}

/// Sends chat from `from` until `to` hears one: then both gateways are back on
/// NATS, with their subscriptions.
async fn until_chat_flows(from: &mut Client, to: &mut Client) {
    let deadline = Instant::now() + BACK_WITHIN;
    for attempt in 0.. {
        from.send(json!({ "type": "chat", "payload": { "message": format!("probe {attempt}") } })).await;
        let heard = to.pump(Duration::from_millis(500)).await;
        let probe = |message: &Value| {
            message["type"] == "chat" && message["payload"]["message"].as_str().is_some_and(|m| m.starts_with("probe "))
        };
        if heard.iter().any(probe) {
            return;
        }
        from.pump(Duration::from_millis(10)).await;
        assert!(Instant::now() < deadline, "no chat crossed the gateways within {BACK_WITHIN:?} of the restart");
    }
}

/// Repeats a request until it succeeds (2xx): the gateway is back on NATS.
async fn until_ok<F: Future<Output = TestResponse>>(what: &str, mut request: impl FnMut() -> F) -> TestResponse {
    let deadline = Instant::now() + BACK_WITHIN;
    loop {
        let response = request().await;
        if response.status.is_success() {
            return response;
        }
        assert!(Instant::now() < deadline, "{what} still fails after the restart: {:#}", response.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn app_on(server: &NatsServer) -> TestApp {
    spawn_app_on(&server.url(), &postgres_base_url(), |_| {}).await
}

#[tokio::test]
async fn after_a_nats_restart_chat_and_room_events_reach_sockets_on_both_gateways() {
    let mut server = NatsServer::start().await;
    let app = app_on(&server).await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let mut here = connected(&app.base_url, &room, &host.token).await;
    let mut there = connected(&second, &room, &guests[0].token).await;

    kill_and_restart(&mut server, &mut [&mut here, &mut there]).await;
    until_chat_flows(&mut there, &mut here).await;

    here.send(json!({ "type": "chat", "payload": { "message": "after the restart" } })).await;
    there.until_marker("after the restart").await;
    here.until_marker("after the restart").await;
    let history = app.get(&format!("/api/v1/rooms/{room}/chat"), &host.token).await;
    history.expect(200);
    let stored =
        history.data()["messages"].as_array().expect("messages").iter().any(|m| m["message"] == "after the restart");
    assert!(stored, "the chat message is not in the history: {:#}", history.body);

    // A room event written after the restart reaches the sockets on both gateways.
    leave(&app, &guests[1], &room).await.expect(200);
    assert_eq!(here.expect("user_left").await["userId"], guests[1].id.as_str());
    assert_eq!(there.expect("user_left").await["userId"], guests[1].id.as_str());
}

#[tokio::test]
async fn a_logout_stored_while_a_gateway_was_cut_off_from_a_restarting_nats_closes_its_socket() {
    let mut server = NatsServer::start().await;
    let app = app_on(&server).await;
    // The second gateway reaches NATS through a proxy, so it stays cut off while
    // the first is already back.
    let proxy = TcpProxy::start(&format!("127.0.0.1:{}", server.port())).await;
    let second = app.second_gateway_on(&format!("nats://{}", proxy.address())).await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    let mut here = connected(&app.base_url, &room, &host.token).await;
    let mut there = connected(&second, &room, &guest.token).await;
    until_chat_flows(&mut here, &mut there).await;

    proxy.cut();
    kill_and_restart(&mut server, &mut [&mut here, &mut there]).await;
    // Stored while the second gateway is cut off and its consumer died with the server.
    until_ok("logging out", || app.logout(&guest.token)).await;
    proxy.restore();
    let (code, reason) = there.expect_close().await;
    assert_eq!(code, 4401, "{reason}");
}

#[tokio::test]
async fn after_a_nats_restart_presence_follows_sockets() {
    let mut server = NatsServer::start().await;
    let app = app_on(&server).await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];

    kill_and_restart(&mut server, &mut []).await;
    // Joining again changes nothing but needs NATS.
    until_ok("joining again", || join(&app, guest, &room, json!({}))).await;

    let mut socket = connected(&app.base_url, &room, &guest.token).await;
    wait_for_status(&app, &host, guest, "in_meeting", &mut [&mut socket]).await;
    drop(socket);
    wait_for_status(&app, &host, guest, "online", &mut []).await;
}

#[tokio::test]
async fn after_a_nats_restart_projections_apply_new_events() {
    let mut server = NatsServer::start().await;
    let app = app_on(&server).await;
    let host = app.new_user("Hana").await;

    kill_and_restart(&mut server, &mut []).await;
    let created =
        until_ok("creating a room", || app.post("/api/v1/rooms", Some(&host.token), room_body("After"))).await;
    let room = created.data()["id"].as_str().expect("room id").to_string();
    // Each of these reads a read model the projector fills from events written after the restart.
    app.get(&format!("/api/v1/rooms/{room}"), &host.token).await.expect(200);
    let guest = app.new_user("Budi").await;
    join(&app, &guest, &room, json!({})).await.expect(200);
    assert!(participant_ids(&app, &host, &room).await.contains(&guest.id));
}
