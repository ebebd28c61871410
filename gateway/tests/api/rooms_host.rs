//! What only a room's host may do: change settings, end, mute, remove, read the
//! room's event history.

use rapat_domain::room::MaxUsers;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser, spawn_app};
use crate::rooms::{end, ids, join, participant_ids, room_body};

async fn mute(app: &TestApp, actor: &TestUser, room: &str, target: &str) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/mute"), Some(&actor.token), json!({})).await
}

async fn remove(app: &TestApp, actor: &TestUser, room: &str, target: &str) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/remove"), Some(&actor.token), json!({})).await
}

async fn update(app: &TestApp, actor: &TestUser, room: &str, body: Value) -> TestResponse {
    app.put(&format!("/api/v1/rooms/{room}"), &actor.token, body).await
}

#[tokio::test]
async fn the_host_changes_settings_and_nobody_else_can() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    join(&app, &guest, &room, json!({})).await.expect(200);

    update(&app, &guest, &room, json!({ "name": "Mine now" })).await.expect_error(403, "not_host");

    let body = json!({ "name": "Retro", "description": "What went well", "maxUsers": 3 });
    let updated = update(&app, &host, &room, body).await;
    updated.expect(200);
    assert_eq!(updated.data()["name"], "Retro");
    assert_eq!(updated.data()["description"], "What went well");
    assert_eq!(updated.data()["maxUsers"], 3);
    assert_eq!(updated.data()["hasPassword"], false);
    assert_eq!(app.get(&format!("/api/v1/rooms/{room}"), &guest.token).await.data(), updated.data());

    // An empty body changes nothing.
    let unchanged = update(&app, &host, &room, json!({})).await;
    unchanged.expect(200);
    assert_eq!(unchanged.data()["name"], "Retro");

    app.put(&format!("/api/v1/rooms/{}", Uuid::new_v4()), &host.token, json!({ "name": "X" }))
        .await
        .expect_error(404, "room_not_found");
    app.put("/api/v1/rooms/abc", &host.token, json!({ "name": "X" })).await.expect_error(400, "invalid_path");
    update(&app, &host, &room, json!({ "name": "" })).await.expect_error(400, "invalid_input");
    update(&app, &host, &room, json!({ "maxUsers": 0 })).await.expect_error(400, "invalid_input");
    update(&app, &host, &room, json!({ "maxUsers": MaxUsers::LIMIT + 1 })).await.expect_error(400, "invalid_input");
    update(&app, &host, &room, json!({ "password": "abc" })).await.expect_error(400, "invalid_password");
    update(&app, &host, &room, json!({ "maxUsers": "ten" })).await.expect_error(400, "invalid_body");
    // Two people are in the room now: it cannot be made smaller than that.
    join(&app, &host, &room, json!({})).await.expect(200);
    update(&app, &host, &room, json!({ "maxUsers": 1 })).await.expect_error(409, "max_users_below_participants");

    end(&app, &host, &room).await.expect(200);
    update(&app, &host, &room, json!({ "name": "Too late" })).await.expect_error(409, "room_ended");
}

#[tokio::test]
async fn the_host_sets_and_clears_the_room_password() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Open")).await;

    let locked = update(&app, &host, &room, json!({ "password": "letmein" })).await;
    locked.expect(200);
    assert_eq!(locked.data()["hasPassword"], true);
    assert!(!locked.body.to_string().contains("letmein"));
    join(&app, &guest, &room, json!({})).await.expect_error(403, "wrong_password");

    // Leaving the field out keeps the password.
    update(&app, &host, &room, json!({ "name": "Still locked" })).await.expect(200);
    join(&app, &guest, &room, json!({ "password": "nope" })).await.expect_error(403, "wrong_password");

    let opened = update(&app, &host, &room, json!({ "password": null })).await;
    opened.expect(200);
    assert_eq!(opened.data()["hasPassword"], false);
    join(&app, &guest, &room, json!({})).await.expect(200);

    update(&app, &host, &room, json!({ "password": "again!" })).await.expect(200);
    let cleared = update(&app, &host, &room, json!({ "password": "" })).await;
    cleared.expect(200);
    assert_eq!(cleared.data()["hasPassword"], false);
}

#[tokio::test]
async fn ending_a_room_empties_it_and_moves_it_to_history() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Town hall")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);

    end(&app, &guest, &room).await.expect_error(403, "not_host");
    end(&app, &host, &Uuid::new_v4().to_string()).await.expect_error(404, "room_not_found");
    end(&app, &host, "zzz").await.expect_error(400, "invalid_path");

    let ended = end(&app, &host, &room).await;
    ended.expect(200);
    assert_eq!(ended.data()["status"], "ended");
    assert!(ended.data()["endedAt"].is_string());
    assert_eq!(ended.data()["participantCount"], 0);

    assert!(participant_ids(&app, &host, &room).await.is_empty());
    for user in [&host, &guest] {
        assert!(ids(&app.get("/api/v1/rooms", &user.token).await).is_empty());
        assert_eq!(ids(&app.get("/api/v1/rooms/history", &user.token).await), vec![room.clone()]);
    }
    join(&app, &guest, &room, json!({})).await.expect_error(409, "room_ended");
    end(&app, &host, &room).await.expect_error(409, "room_ended");
    mute(&app, &host, &room, &guest.id).await.expect_error(409, "room_ended");
    remove(&app, &host, &room, &guest.id).await.expect_error(409, "room_ended");
}

#[tokio::test]
async fn the_host_mutes_a_participant_and_it_shows() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let bystander = app.new_user("Bima").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    join(&app, &guest, &room, json!({})).await.expect(200);
    join(&app, &bystander, &room, json!({})).await.expect(200);

    // Being in the room does not make someone its host.
    mute(&app, &bystander, &room, &guest.id).await.expect_error(403, "not_host");

    let muted = mute(&app, &host, &room, &guest.id).await;
    muted.expect(200);
    assert_eq!(muted.data()["userId"], json!(guest.id));
    assert_eq!(muted.data()["audioMuted"], true);
    assert_eq!(muted.data()["mutedByHost"], true);

    let listed = app.get(&format!("/api/v1/rooms/{room}/participants"), &bystander.token).await;
    listed.expect(200);
    let people = listed.data().as_array().expect("list");
    let gita = people.iter().find(|p| p["userId"] == json!(guest.id)).expect("Gita is listed");
    assert_eq!((gita["audioMuted"].clone(), gita["mutedByHost"].clone()), (json!(true), json!(true)));
    let bima = people.iter().find(|p| p["userId"] == json!(bystander.id)).expect("Bima is listed");
    assert_eq!(bima["audioMuted"], false);

    // Muting again changes nothing and answers the same.
    mute(&app, &host, &room, &guest.id).await.expect(200);

    let stranger = app.new_user("Sari").await;
    mute(&app, &host, &room, &stranger.id).await.expect_error(404, "not_a_participant");
    mute(&app, &host, &room, &Uuid::new_v4().to_string()).await.expect_error(404, "not_a_participant");
    mute(&app, &host, &Uuid::new_v4().to_string(), &guest.id).await.expect_error(404, "room_not_found");
    mute(&app, &host, &room, "not-a-user").await.expect_error(400, "invalid_path");
}

async fn allow_unmute(app: &TestApp, actor: &TestUser, room: &str, target: &str) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/participants/{target}/allow-unmute"), Some(&actor.token), json!({})).await
}

fn listed<'a>(list: &'a TestResponse, user: &TestUser) -> &'a Value {
    list.data().as_array().expect("list").iter().find(|p| p["userId"] == json!(user.id)).expect("listed")
}

#[tokio::test]
async fn the_hosts_mute_holds_until_the_host_allows_unmuting() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    join(&app, &guest, &room, json!({})).await.expect(200);
    mute(&app, &host, &room, &guest.id).await.expect(200);

    // Leaving and joining again does not shake it off.
    crate::rooms::leave(&app, &guest, &room).await.expect(200);
    let back = join(&app, &guest, &room, json!({})).await;
    back.expect(200);
    assert_eq!(
        (back.data()["participant"]["audioMuted"].clone(), back.data()["participant"]["mutedByHost"].clone()),
        (json!(true), json!(true))
    );

    // Only the host may allow it.
    allow_unmute(&app, &guest, &room, &guest.id).await.expect_error(403, "not_host");
    let allowed = allow_unmute(&app, &host, &room, &guest.id).await;
    allowed.expect(200);
    // No longer the host's mute, but the microphone stays off until they turn it on.
    assert_eq!(
        (allowed.data()["audioMuted"].clone(), allowed.data()["mutedByHost"].clone()),
        (json!(true), json!(false))
    );
    let list = app.get(&format!("/api/v1/rooms/{room}/participants"), &host.token).await;
    assert_eq!(listed(&list, &guest)["mutedByHost"], false);
    // Allowing again changes nothing and answers the same.
    allow_unmute(&app, &host, &room, &guest.id).await.expect(200);

    let stranger = app.new_user("Sari").await;
    allow_unmute(&app, &host, &room, &stranger.id).await.expect_error(404, "not_a_participant");
    allow_unmute(&app, &host, &Uuid::new_v4().to_string(), &guest.id).await.expect_error(404, "room_not_found");
    allow_unmute(&app, &host, &room, "nobody").await.expect_error(400, "invalid_path");
}

#[tokio::test]
async fn a_removed_participant_is_gone_until_they_join_again() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);

    remove(&app, &guest, &room, &host.id).await.expect_error(403, "not_host");

    let removed = remove(&app, &host, &room, &guest.id).await;
    removed.expect(200);
    assert_eq!(removed.body["success"], true);
    assert_eq!(participant_ids(&app, &host, &room).await, vec![host.id.clone()]);
    assert!(ids(&app.get("/api/v1/rooms", &guest.token).await).is_empty());
    // Removed twice: they are no longer a participant.
    remove(&app, &host, &room, &guest.id).await.expect_error(404, "not_a_participant");

    // A new join lets them back in, as a fresh participant.
    let back = join(&app, &guest, &room, json!({})).await;
    back.expect(200);
    assert_eq!(back.data()["participant"]["mutedByHost"], false);
    assert_eq!(participant_ids(&app, &host, &room).await, vec![host.id.clone(), guest.id.clone()]);

    remove(&app, &host, &room, &host.id).await.expect_error(400, "cannot_remove_host");
    remove(&app, &host, &Uuid::new_v4().to_string(), &guest.id).await.expect_error(404, "room_not_found");
    remove(&app, &host, &room, "42").await.expect_error(400, "invalid_path");
}

#[tokio::test]
async fn the_host_reads_the_room_events_page_by_page() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, json!({ "name": "Audited", "maxUsers": 5, "password": "hunter22" })).await;
    join(&app, &guest, &room, json!({ "password": "hunter22" })).await.expect(200);
    mute(&app, &host, &room, &guest.id).await.expect(200);
    remove(&app, &host, &room, &guest.id).await.expect(200);
    end(&app, &host, &room).await.expect(200);

    let path = format!("/api/v1/rooms/{room}/events");
    app.get(&path, &guest.token).await.expect_error(403, "not_host");

    let all = app.get(&path, &host.token).await;
    all.expect(200);
    assert_eq!(all.body["pagination"], json!({ "page": 1, "limit": 20, "total": 5 }));
    let events = all.data().as_array().expect("list");
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().expect("eventType")).collect();
    assert_eq!(
        types,
        ["RoomCreated", "ParticipantJoined", "ParticipantMutedByHost", "ParticipantRemoved", "RoomEnded"]
    );
    let versions: Vec<u64> = events.iter().map(|e| e["aggregateVersion"].as_u64().expect("version")).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let created = &events[0];
    assert!(created["streamSequence"].as_u64().is_some_and(|s| s > 0));
    assert!(Uuid::parse_str(created["eventId"].as_str().expect("eventId")).is_ok());
    assert_eq!(created["schemaVersion"], 1);
    assert_eq!(created["actor"], json!(host.id));
    assert!(created["correlationId"].is_string(), "the request id is the correlation id");
    assert!(created["occurredAt"].is_string());
    assert_eq!(created["payload"]["name"], "Audited");
    assert_eq!(events[1]["actor"], json!(guest.id));
    assert_eq!(events[1]["payload"]["userId"], json!(guest.id));
    let text = all.body.to_string();
    assert!(!text.contains("argon2") && !text.contains("hunter22"), "no password or hash in the audit: {text}");

    let page = app.get(&format!("{path}?page=2&limit=2"), &host.token).await;
    page.expect(200);
    assert_eq!(page.body["pagination"], json!({ "page": 2, "limit": 2, "total": 5 }));
    let types: Vec<&str> =
        page.data().as_array().expect("list").iter().map(|e| e["eventType"].as_str().expect("type")).collect();
    assert_eq!(types, ["ParticipantMutedByHost", "ParticipantRemoved"]);
    let last = app.get(&format!("{path}?page=3&limit=2"), &host.token).await;
    last.expect(200);
    assert_eq!(last.data().as_array().expect("list").len(), 1);

    app.get(&format!("{path}?limit=0"), &host.token).await.expect_error(400, "invalid_query");
    app.get(&format!("{path}?page=0"), &host.token).await.expect_error(400, "invalid_query");
    app.get(&format!("/api/v1/rooms/{}/events", Uuid::new_v4()), &host.token).await.expect_error(404, "room_not_found");
    app.get("/api/v1/rooms/nope/events", &host.token).await.expect_error(400, "invalid_path");
}
