//! Live notifications (SPEC §6): every socket of the recipient, room or lobby,
//! on whichever gateway, gets `notification`; a lobby socket gets nothing of any
//! room, counts towards the user's socket cap, and receives only.

use super::*;

/// Opens the lobby socket (`/ws` without `roomId`) and reads its `unread_count`.
async fn lobby(base_url: &str, token: &str) -> (Client, Value) {
    let base = base_url.replace("http://", "ws://");
    let mut client = connect_url(format!("{base}/ws?token={token}")).await;
    let count = client.next().await;
    assert_eq!(count["type"], "unread_count", "{count}");
    (client, count)
}

async fn add_contact(app: &TestApp, adder: &TestUser, contact: &TestUser) {
    app.post("/api/v1/users/contacts", Some(&adder.token), json!({ "contactId": contact.id })).await.expect(201);
}

#[tokio::test]
async fn a_notification_reaches_the_room_and_lobby_sockets_of_its_recipient_on_two_gateways() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Gita"]).await;
    let gita = &guests[0];
    let budi = app.new_user("Budi").await;

    // Gita in the room on the first gateway, and in the lobby on the second.
    let mut in_room = connected(&app.base_url, &room, &gita.token).await;
    let (mut in_lobby, count) = lobby(&second, &gita.token).await;
    assert_eq!(count["payload"], json!({ "count": 0 }));
    assert_eq!(count["userId"], gita.id.as_str());
    assert!(count.get("roomId").is_none(), "{count}");
    let mut host_socket = connected(&app.base_url, &room, &host.token).await;

    add_contact(&app, &budi, gita).await;
    let from_room = in_room.expect("notification").await;
    let from_lobby = in_lobby.next().await;
    assert_eq!(from_lobby["type"], "notification", "{from_lobby}");
    assert_eq!(from_room["payload"], from_lobby["payload"], "the same notification on both");
    assert_eq!(from_lobby["payload"]["kind"], "contact_added");
    assert_eq!(from_lobby["payload"]["payload"]["actor"]["id"], budi.id.as_str());
    assert_eq!(from_lobby["userId"], gita.id.as_str());
    // As the REST list has it.
    let listed = app.get("/api/v1/notifications", &gita.token).await;
    let listed: Value = serde_json::from_value(listed.data()[0].clone()).expect("a notification");
    assert_eq!(from_lobby["payload"], listed);

    // Room traffic reaches the room socket only; the next thing the lobby sees is
    // the next notification.
    host_socket.send(json!({ "type": "chat", "payload": { "message": "room only" } })).await;
    in_room.expect("chat").await;
    let dewi = app.new_user("Dewi").await;
    join(&app, &dewi, &room, json!({})).await.expect(200);
    in_room.expect("user_joined").await;
    add_contact(&app, &dewi, gita).await;
    let next = in_lobby.next().await;
    assert_eq!(next["type"], "notification", "{next}");
    assert_eq!(next["payload"]["payload"]["actor"]["id"], dewi.id.as_str());
    // Others' sockets are not told.
    let others: Vec<Value> = host_socket.pump(Duration::from_millis(300)).await;
    assert!(others.iter().all(|m| m["type"] != "notification"), "{others:?}");

    // The lobby only receives.
    in_lobby.send(json!({ "type": "chat", "payload": { "message": "hi" } })).await;
    let refused = in_lobby.next().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["payload"]["code"], "lobby_is_receive_only");
}

#[tokio::test]
async fn lobby_sockets_count_towards_the_users_cap_and_need_a_token() {
    let app = spawn_app_with(|config| config.ws_max_sockets_per_user = 2).await;
    let ana = app.new_user("Ana").await;
    let (_first, _) = lobby(&app.base_url, &ana.token).await;
    let (_second, _) = lobby(&app.base_url, &ana.token).await;
    let base = app.base_url.replace("http://", "ws://");
    let mut third = connect_url(format!("{base}/ws?token={}", ana.token)).await;
    assert_eq!(third.expect_close().await.0, 4429);
    let mut no_token = connect_url(format!("{base}/ws")).await;
    no_token.send(json!({ "type": "chat", "payload": { "message": "hi" } })).await;
    assert_eq!(no_token.expect_close().await.0, 4401);
    let mut bad_token = connect_url(format!("{base}/ws?token=not.a.token")).await;
    assert_eq!(bad_token.expect_close().await.0, 4401);
}
