//! Room events reach sockets exactly once, whichever way the change was made: the
//! REST API or a socket's own message.

use serde_json::{Value, json};

use super::{Client, connect, connected, room_with};
use crate::helpers::spawn_app;
use crate::rooms::{join, leave};

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|message| message["type"] == kind).collect()
}

/// Sends the chat `marker` from `from` and returns what `to` saw before it.
async fn seen_before_marker(from: &mut Client, to: &mut Client, marker: &str) -> Vec<Value> {
    from.send(json!({ "type": "chat", "payload": { "message": marker } })).await;
    to.until_marker(marker).await
}

#[tokio::test]
async fn a_host_mute_through_rest_reaches_every_socket_once() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&second, &room, &guests[0].token).await;
    let mut c = connected(&second, &room, &guests[1].token).await;

    let target = &guests[0].id;
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/mute"), Some(&host.token), json!({}))
        .await
        .expect(200);

    for client in [&mut b, &mut c] {
        let mute = client.expect("mute").await;
        assert_eq!(mute["userId"], target.as_str());
        assert_eq!(mute["username"], "Budi Tester");
        assert_eq!(mute["payload"], json!({ "muted": true, "byHost": true }));
    }
    let seen = seen_before_marker(&mut a, &mut c, "after host mute").await;
    assert!(of_type(&seen, "mute").is_empty(), "one mute only: {seen:?}");
    let seen = a.until_marker("after host mute").await;
    assert_eq!(of_type(&seen, "mute").len(), 1, "the host's own socket sees it once too: {seen:?}");

    // The host's mute holds: unmuting is refused until the host allows it.
    b.send(json!({ "type": "mute", "payload": { "muted": false } })).await;
    assert_eq!(b.expect("error").await["payload"]["code"], "muted_by_host");
    // Someone else cannot allow it.
    c.send(json!({ "type": "allow_unmute", "targetUserId": target })).await;
    assert_eq!(c.expect("error").await["payload"]["code"], "not_host");
    // The request reaches the host's socket (on the other gateway), and only it.
    b.send(json!({ "type": "request_unmute" })).await;
    let request = a.expect("unmute_requested").await;
    assert_eq!(request["userId"], target.as_str());
    let seen = seen_before_marker(&mut b, &mut c, "after the request").await;
    assert!(of_type(&seen, "unmute_requested").is_empty(), "for the host only: {seen:?}");
    a.until_marker("after the request").await;
    // The host allows it: everyone hears it once; the microphone is still off.
    a.send(json!({ "type": "allow_unmute", "targetUserId": target })).await;
    for client in [&mut a, &mut b, &mut c] {
        let allowed = client.expect("unmute_allowed").await;
        assert_eq!(
            (allowed["userId"].as_str(), allowed["payload"]["allowedBy"].as_str()),
            (Some(target.as_str()), Some(host.id.as_str()))
        );
    }

    // The muted user unmutes through their socket: recorded, and broadcast once by the event.
    b.send(json!({ "type": "mute", "payload": { "muted": false } })).await;
    let unmute = c.expect("mute").await;
    assert_eq!(unmute["userId"], target.as_str());
    assert_eq!(unmute["payload"], json!({ "muted": false }));
    let seen = seen_before_marker(&mut b, &mut c, "after unmute").await;
    assert!(of_type(&seen, "mute").is_empty(), "one unmute only: {seen:?}");
    let seen = a.until_marker("after unmute").await;
    assert_eq!(of_type(&seen, "mute").len(), 1, "{seen:?}");
}

#[tokio::test]
async fn media_changes_from_a_socket_are_broadcast_once_and_repeats_not_at_all() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&app.base_url, &room, &guests[0].token).await;

    b.send(json!({ "type": "video", "payload": { "on": true } })).await;
    b.send(json!({ "type": "screen_share", "payload": { "sharing": true } })).await;
    // Already on: nothing changes, so nothing is said.
    b.send(json!({ "type": "video", "payload": { "on": true } })).await;
    let seen = seen_before_marker(&mut b, &mut a, "after media").await;
    let videos = of_type(&seen, "video");
    assert_eq!(videos.len(), 1, "{seen:?}");
    assert_eq!(videos[0]["payload"], json!({ "on": true }));
    assert_eq!(videos[0]["userId"], guests[0].id.as_str());
    let shares = of_type(&seen, "screen_share");
    assert_eq!(shares.len(), 1, "{seen:?}");
    assert_eq!(shares[0]["payload"], json!({ "sharing": true }));
    // The sender hears its own change back, once.
    let own = b.until_marker("after media").await;
    assert_eq!(of_type(&own, "video").len(), 1, "{own:?}");
}

#[tokio::test]
async fn a_rest_join_is_announced_as_user_joined() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let newcomer = app.new_user("Dewi").await;
    join(&app, &newcomer, &room, json!({})).await.expect(200);
    let joined = a.expect("user_joined").await;
    assert_eq!(joined["userId"], newcomer.id.as_str());
    assert_eq!(joined["username"], "Dewi Tester", "named from the users read model");
    // Joining again changes nothing, so nobody hears of it.
    join(&app, &newcomer, &room, json!({})).await.expect(200);
    let mut d = connected(&app.base_url, &room, &newcomer.token).await;
    let seen = seen_before_marker(&mut d, &mut a, "after rejoin").await;
    assert!(of_type(&seen, "user_joined").is_empty(), "{seen:?}");
}

#[tokio::test]
async fn a_rest_leave_closes_the_leavers_sockets_and_others_hear_it_once() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let leaver = &guests[0];
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut c = connected(&second, &room, &guests[1].token).await;
    let mut b1 = connected(&app.base_url, &room, &leaver.token).await;
    let mut b2 = connected(&second, &room, &leaver.token).await;

    leave(&app, leaver, &room).await.expect(200);
    for socket in [&mut b1, &mut b2] {
        let (code, reason) = socket.expect_close().await;
        assert_eq!(code, 4499, "{reason}");
    }
    for client in [&mut a, &mut c] {
        let left = client.expect("user_left").await;
        assert_eq!(left["userId"], leaver.id.as_str());
        assert_eq!(left["username"], "Budi Tester");
        assert_eq!(left["payload"], json!({}));
    }
    let seen = seen_before_marker(&mut a, &mut c, "after leave").await;
    assert!(of_type(&seen, "user_left").is_empty(), "one user_left for two sockets: {seen:?}");
    let seen = a.until_marker("after leave").await;
    assert!(of_type(&seen, "user_left").is_empty(), "{seen:?}");
    // Out of the room, so no longer admitted.
    assert_eq!(connect(&app.base_url, &room, Some(&leaver.token)).await.expect_close().await.0, 4403);
}

#[tokio::test]
async fn a_removal_tells_the_removed_and_the_others_once() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi", "Citra"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&app.base_url, &room, &guests[0].token).await;
    let mut c = connected(&app.base_url, &room, &guests[1].token).await;
    let target = &guests[0].id;
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/remove"), Some(&host.token), json!({}))
        .await
        .expect(200);

    let removed = b.expect("removed").await;
    assert_eq!(removed["payload"]["removedBy"], host.id.as_str());
    assert_eq!(b.expect_close().await.0, 4409);
    let left = c.expect("user_left").await;
    assert_eq!(left["userId"], target.as_str());
    assert_eq!(left["payload"]["removedBy"], host.id.as_str());
    let seen = seen_before_marker(&mut a, &mut c, "after removal").await;
    assert!(of_type(&seen, "user_left").is_empty(), "{seen:?}");
}
