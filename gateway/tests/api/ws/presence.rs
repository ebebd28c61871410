//! Presence follows WebSockets: `in_meeting` while a socket is open (on any
//! gateway), `online` while seen lately, `offline` otherwise.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Client, WAIT, connect, room_with};
use crate::helpers::{TestApp, TestUser, nats_url, spawn_app, spawn_app_with};

/// Polls `user`'s presence until it is `status`, reading `keep_alive` sockets
/// meanwhile so that they keep answering pings.
pub(super) async fn wait_for_status(
    app: &TestApp,
    asker: &TestUser,
    user: &TestUser,
    status: &str,
    keep_alive: &mut [&mut Client],
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let presence = app.presence_of(asker, &user.id).await;
        presence.expect(200);
        if presence.data()["status"] == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never became {status}: {:#}",
            user.first_name,
            presence.body
        );
        for client in keep_alive.iter_mut() {
            client.pump(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn last_seen(presence: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = presence["lastSeenAt"].as_str().expect("lastSeenAt");
    chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn a_user_is_in_a_meeting_until_their_last_socket_closes_on_any_gateway() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    // Joined through REST, no socket yet: active, not in a meeting.
    assert_eq!(app.presence_of(&host, &guest.id).await.data()["status"], "online");
    let before = last_seen(app.presence_of(&host, &guest.id).await.data());

    let mut first = connect(&app.base_url, &room, Some(&guest.token)).await;
    first.expect("participants").await;
    let mut other = connect(&second, &room, Some(&guest.token)).await;
    other.expect("participants").await;
    let presence = app.presence_of(&host, &guest.id).await;
    assert_eq!(presence.data()["status"], "in_meeting", "{:#}", presence.body);
    assert!(last_seen(presence.data()) > before, "opening a socket is a sighting");

    // One of two sockets closes: still in the meeting through the other gateway.
    first.socket.close(None).await.expect("close");
    let opened = last_seen(presence.data());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let presence = app.presence_of(&host, &guest.id).await;
        assert_eq!(presence.data()["status"], "in_meeting", "the other socket is still open: {:#}", presence.body);
        if last_seen(presence.data()) > opened {
            break; // the close was recorded
        }
        assert!(tokio::time::Instant::now() < deadline, "the first socket's close was never recorded");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    other.socket.close(None).await.expect("close");
    wait_for_status(&app, &host, guest, "online", &mut []).await;
}

#[tokio::test]
async fn without_sockets_or_requests_a_user_is_offline() {
    let app = spawn_app_with(|config| config.presence_window = Duration::ZERO).await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    assert_eq!(app.presence_of(&host, &guest.id).await.data()["status"], "offline");

    let mut socket = connect(&app.base_url, &room, Some(&guest.token)).await;
    socket.expect("participants").await;
    assert_eq!(app.presence_of(&host, &guest.id).await.data()["status"], "in_meeting");
    socket.socket.close(None).await.expect("close");
    wait_for_status(&app, &host, guest, "offline", &mut []).await;
    assert!(app.presence_of(&host, &guest.id).await.data()["lastSeenAt"].is_string());
}

#[tokio::test]
async fn an_open_socket_is_refreshed_so_it_outlives_its_ttl() {
    let app = spawn_app_with(|config| config.presence_socket_ttl = Duration::from_millis(600)).await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut socket = connect(&app.base_url, &room, Some(&guests[0].token)).await;
    socket.expect("participants").await;
    let first = last_seen(app.presence_of(&host, &guests[0].id).await.data());
    for _ in 0..4 {
        socket.pump(Duration::from_millis(500)).await;
        assert_eq!(app.presence_of(&host, &guests[0].id).await.data()["status"], "in_meeting");
    }
    assert!(last_seen(app.presence_of(&host, &guests[0].id).await.data()) > first, "refreshes are sightings");
}

/// A gateway that dies cannot remove its sockets; they stop counting once their
/// `expiresAt` passes. Written straight into the bucket, as a dead gateway leaves it.
#[tokio::test]
async fn a_socket_left_by_a_dead_gateway_expires() {
    let app = spawn_app().await;
    let asker = app.new_user("Asti").await;
    let ghost = app.new_user("Gita").await;
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let jetstream = async_nats::jetstream::new(nats);
    let bucket = jetstream.get_key_value(app.namespace.presence_bucket()).await.expect("the presence bucket");
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let record = |expires_at: chrono::DateTime<chrono::Utc>| {
        let sockets = json!({ Uuid::new_v4().to_string(): { "roomId": Uuid::new_v4(), "expiresAt": expires_at } });
        json!({ "lastSeenAt": long_ago, "sockets": sockets }).to_string()
    };

    bucket.put(ghost.id.as_str(), record(long_ago).into()).await.expect("put");
    let presence = app.presence_of(&asker, &ghost.id).await;
    assert_eq!(presence.data()["status"], "offline", "{:#}", presence.body);

    bucket.put(ghost.id.as_str(), record(chrono::Utc::now() + chrono::Duration::minutes(1)).into()).await.expect("put");
    assert_eq!(app.presence_of(&asker, &ghost.id).await.data()["status"], "in_meeting");
}
