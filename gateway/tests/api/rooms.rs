//! `/rooms` for everyone: create, read, list, join, leave, participants, history.
//! Host-only actions are in `rooms_host.rs`.

use rapat_domain::room::MaxUsers;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser, spawn_app};

pub fn room_body(name: &str) -> Value {
    json!({ "name": name, "maxUsers": 10 })
}

pub async fn join(app: &TestApp, user: &TestUser, room: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&user.token), body).await
}

pub async fn leave(app: &TestApp, user: &TestUser, room: &str) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&user.token), json!({})).await
}

pub async fn end(app: &TestApp, user: &TestUser, room: &str) -> TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/end"), Some(&user.token), json!({})).await
}

/// User ids of the room's current participants.
pub async fn participant_ids(app: &TestApp, user: &TestUser, room: &str) -> Vec<String> {
    let listed = app.get(&format!("/api/v1/rooms/{room}/participants"), &user.token).await;
    listed.expect(200);
    listed
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["userId"].as_str().expect("userId").to_string())
        .collect()
}

/// Ids of the rooms in a list answer.
pub fn ids(response: &TestResponse) -> Vec<String> {
    response
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|room| room["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn creating_a_room_answers_its_view_and_never_the_password() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;

    let when = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "name": "  Weekly sync ",
        "description": "Agenda: numbers",
        "password": "open sesame",
        "maxUsers": 8,
        "scheduledAt": when,
        "durationMinutes": 45,
    });
    let created = app.post("/api/v1/rooms", Some(&host.token), body).await;
    created.expect(201);
    let room = created.data();
    assert!(Uuid::parse_str(room["id"].as_str().expect("id")).is_ok());
    assert_eq!(room["name"], "Weekly sync");
    assert_eq!(room["description"], "Agenda: numbers");
    assert_eq!(room["hostId"], json!(host.id));
    assert_eq!(room["hasPassword"], true);
    assert_eq!(room["maxUsers"], 8);
    assert_eq!(room["scheduledAt"], json!(when));
    assert_eq!(room["durationMinutes"], 45);
    assert_eq!(room["status"], "active");
    // The host is not a participant until they join.
    assert_eq!(room["participantCount"], 0);
    assert!(room["createdAt"].is_string() && room["updatedAt"].is_string());
    assert_eq!(room["endedAt"], Value::Null);
    let text = created.body.to_string();
    assert!(!text.contains("open sesame") && !text.contains("argon2"), "{text}");
    assert!(room.get("password").is_none() && room.get("passwordHash").is_none());

    let fetched = app.get(&format!("/api/v1/rooms/{}", room["id"].as_str().expect("id")), &host.token).await;
    fetched.expect(200);
    assert_eq!(fetched.data(), room);

    // Only a name and a size are needed.
    let minimal = app.post("/api/v1/rooms", Some(&host.token), json!({ "name": "Quick", "maxUsers": 1 })).await;
    minimal.expect(201);
    assert_eq!(minimal.data()["description"], "");
    assert_eq!(minimal.data()["hasPassword"], false);
    assert_eq!(minimal.data()["scheduledAt"], Value::Null);
}

#[tokio::test]
async fn creating_a_room_refuses_invalid_input() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let cases = [
        (json!({ "name": "", "maxUsers": 5 }), "invalid_input"),
        (json!({ "name": "   ", "maxUsers": 5 }), "invalid_input"),
        (json!({ "name": "x".repeat(101), "maxUsers": 5 }), "invalid_input"),
        (json!({ "name": "bell\u{7}", "maxUsers": 5 }), "invalid_input"),
        (json!({ "name": "Room", "maxUsers": 0 }), "invalid_input"),
        (json!({ "name": "Room", "maxUsers": MaxUsers::LIMIT + 1 }), "invalid_input"),
        (json!({ "name": "Room", "maxUsers": 5, "description": "d".repeat(1001) }), "invalid_input"),
        (json!({ "name": "Room", "maxUsers": 5, "password": "abc" }), "invalid_password"),
        (json!({ "name": "Room", "maxUsers": -1 }), "invalid_body"),
        (json!({ "name": "Room" }), "invalid_body"),
        (json!({ "maxUsers": 5 }), "invalid_body"),
        (json!({ "name": "Room", "maxUsers": 5, "scheduledAt": "next tuesday" }), "invalid_body"),
    ];
    for (body, code) in cases {
        let answer = app.post("/api/v1/rooms", Some(&host.token), body.clone()).await;
        assert_eq!(answer.status.as_u16(), 400, "{body}: {:#}", answer.body);
        assert_eq!(answer.error_code(), code, "{body}: {:#}", answer.body);
    }
    let listed = app.get("/api/v1/rooms", &host.token).await;
    listed.expect(200);
    assert_eq!(listed.data(), &json!([]), "no invalid room was created");
}

#[tokio::test]
async fn every_room_endpoint_needs_a_valid_token() {
    let app = spawn_app().await;
    let room = Uuid::new_v4();
    let user = Uuid::new_v4();
    let endpoints = [
        (Method::POST, "/api/v1/rooms".to_string()),
        (Method::GET, "/api/v1/rooms".to_string()),
        (Method::GET, "/api/v1/rooms/history".to_string()),
        (Method::GET, format!("/api/v1/rooms/{room}")),
        (Method::PUT, format!("/api/v1/rooms/{room}")),
        (Method::POST, format!("/api/v1/rooms/{room}/join")),
        (Method::POST, format!("/api/v1/rooms/{room}/leave")),
        (Method::GET, format!("/api/v1/rooms/{room}/participants")),
        (Method::POST, format!("/api/v1/rooms/{room}/end")),
        (Method::POST, format!("/api/v1/rooms/{room}/participants/{user}/mute")),
        (Method::POST, format!("/api/v1/rooms/{room}/participants/{user}/remove")),
        (Method::GET, format!("/api/v1/rooms/{room}/events")),
    ];
    for (method, path) in endpoints {
        let body = (method != Method::GET).then(|| room_body("Room"));
        app.request(method.clone(), &path, None, body.clone()).await.expect_error(401, "missing_token");
        app.request(method, &path, Some("not.a.jwt"), body).await.expect_error(401, "invalid_token");
    }
}

#[tokio::test]
async fn a_room_can_be_looked_up_by_anyone_signed_in_and_unknown_ids_are_refused() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Lobby")).await;

    let seen = app.get(&format!("/api/v1/rooms/{room}"), &guest.token).await;
    seen.expect(200);
    assert_eq!(seen.data()["name"], "Lobby");

    app.get(&format!("/api/v1/rooms/{}", Uuid::new_v4()), &guest.token).await.expect_error(404, "room_not_found");
    for bad in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
        app.get(&format!("/api/v1/rooms/{bad}"), &guest.token).await.expect_error(400, "invalid_path");
    }
}

#[tokio::test]
async fn listing_rooms_shows_those_hosted_or_joined_and_not_ended() {
    let app = spawn_app().await;
    let hana = app.new_user("Hana").await;
    let gita = app.new_user("Gita").await;
    let hosted = app.create_room(&hana, room_body("Hana's")).await;
    let joined = app.create_room(&gita, room_body("Gita's, joined")).await;
    let other = app.create_room(&gita, room_body("Gita's, not joined")).await;
    let ended = app.create_room(&hana, room_body("Hana's, ended")).await;
    join(&app, &hana, &joined, json!({})).await.expect(200);
    end(&app, &hana, &ended).await.expect(200);

    let listed = app.get("/api/v1/rooms", &hana.token).await;
    listed.expect(200);
    let mut listed = ids(&listed);
    listed.sort();
    let mut expected = vec![hosted.clone(), joined.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Leaving a room someone else hosts takes it off the list.
    leave(&app, &hana, &joined).await.expect(200);
    assert_eq!(ids(&app.get("/api/v1/rooms", &hana.token).await), vec![hosted]);
    let mut gitas = ids(&app.get("/api/v1/rooms", &gita.token).await);
    gitas.sort();
    let mut expected = vec![joined, other];
    expected.sort();
    assert_eq!(gitas, expected);
}

#[tokio::test]
async fn joining_answers_the_room_and_the_participant_and_is_idempotent() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;

    // No body at all is fine for a room without a password.
    let first = app.request(Method::POST, &format!("/api/v1/rooms/{room}/join"), Some(&guest.token), None).await;
    first.expect(200);
    assert_eq!(first.data()["room"]["id"], json!(room));
    assert_eq!(first.data()["room"]["participantCount"], 1);
    let me = &first.data()["participant"];
    assert_eq!(me["userId"], json!(guest.id));
    assert_eq!(me["firstName"], "Gita");
    assert_eq!(me["lastName"], "Tester");
    assert_eq!(
        (me["audioMuted"].clone(), me["videoOn"].clone(), me["screenSharing"].clone()),
        (json!(false), json!(false), json!(false))
    );
    assert_eq!(me["mutedByHost"], false);

    let again = join(&app, &guest, &room, json!({})).await;
    again.expect(200);
    assert_eq!(again.data()["room"]["participantCount"], 1);
    assert_eq!(again.data()["participant"]["joinedAt"], me["joinedAt"], "a repeated join keeps the first stay");
    assert_eq!(participant_ids(&app, &host, &room).await, vec![guest.id.clone()]);

    // The host joins their own room like anyone else.
    join(&app, &host, &room, json!({})).await.expect(200);
    assert_eq!(participant_ids(&app, &guest, &room).await, vec![guest.id.clone(), host.id.clone()]);
}

#[tokio::test]
async fn joining_checks_password_capacity_and_existence() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let late = app.new_user("Lala").await;
    let locked = app.create_room(&host, json!({ "name": "Locked", "maxUsers": 2, "password": "s3cret" })).await;

    join(&app, &guest, &locked, json!({})).await.expect_error(403, "wrong_password");
    join(&app, &guest, &locked, json!({ "password": "" })).await.expect_error(403, "wrong_password");
    join(&app, &guest, &locked, json!({ "password": "guess" })).await.expect_error(403, "wrong_password");
    join(&app, &guest, &locked, json!({ "password": "x".repeat(2000) })).await.expect_error(400, "invalid_password");
    join(&app, &guest, &locked, json!({ "password": "s3cret" })).await.expect(200);
    // The host set the password and is never asked for it.
    join(&app, &host, &locked, json!({})).await.expect(200);
    // Two of two: the next one is turned away, even with the right password.
    join(&app, &late, &locked, json!({ "password": "s3cret" })).await.expect_error(409, "room_full");
    leave(&app, &guest, &locked).await.expect(200);
    join(&app, &late, &locked, json!({ "password": "s3cret" })).await.expect(200);

    join(&app, &guest, &Uuid::new_v4().to_string(), json!({})).await.expect_error(404, "room_not_found");
    join(&app, &guest, "nope", json!({})).await.expect_error(400, "invalid_path");
    join(&app, &guest, &locked, json!({ "password": 1234 })).await.expect_error(400, "invalid_body");

    end(&app, &host, &locked).await.expect(200);
    join(&app, &guest, &locked, json!({ "password": "s3cret" })).await.expect_error(409, "room_ended");
}

#[tokio::test]
async fn leaving_takes_the_caller_out_and_is_idempotent() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);

    let left = leave(&app, &guest, &room).await;
    left.expect(200);
    assert_eq!(left.body["success"], true);
    assert!(left.body["message"].is_string());
    assert_eq!(participant_ids(&app, &host, &room).await, vec![host.id.clone()]);
    assert_eq!(app.get(&format!("/api/v1/rooms/{room}"), &host.token).await.data()["participantCount"], 1);
    // Not in the room (any more): nothing to do, same answer.
    leave(&app, &guest, &room).await.expect(200);

    leave(&app, &guest, &Uuid::new_v4().to_string()).await.expect_error(404, "room_not_found");
    leave(&app, &guest, "1").await.expect_error(400, "invalid_path");
    end(&app, &host, &room).await.expect(200);
    leave(&app, &host, &room).await.expect_error(409, "room_ended");
}

#[tokio::test]
async fn participants_are_listed_with_names_and_media_state() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;

    let empty = app.get(&format!("/api/v1/rooms/{room}/participants"), &host.token).await;
    empty.expect(200);
    assert_eq!(empty.data(), &json!([]));

    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);
    let listed = app.get(&format!("/api/v1/rooms/{room}/participants"), &guest.token).await;
    listed.expect(200);
    let people = listed.data().as_array().expect("a list");
    assert_eq!(people.len(), 2);
    assert_eq!(people[0]["userId"], json!(host.id));
    assert_eq!(people[0]["firstName"], "Hana");
    assert_eq!(people[1]["userId"], json!(guest.id));
    for person in people {
        for field in ["joinedAt", "audioMuted", "videoOn", "screenSharing", "mutedByHost", "lastName"] {
            assert!(person.get(field).is_some(), "{field} missing in {person}");
        }
    }

    app.get(&format!("/api/v1/rooms/{}/participants", Uuid::new_v4()), &guest.token)
        .await
        .expect_error(404, "room_not_found");
    app.get("/api/v1/rooms/xyz/participants", &guest.token).await.expect_error(400, "invalid_path");
}

#[tokio::test]
async fn only_the_host_and_participants_see_who_is_in_a_room() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let outsider = app.new_user("Omar").await;
    let room = app.create_room(&host, json!({ "name": "Private", "maxUsers": 5, "password": "hunter22" })).await;
    let path = format!("/api/v1/rooms/{room}/participants");
    join(&app, &guest, &room, json!({ "password": "hunter22" })).await.expect(200);

    // Someone who cannot join learns nothing about who is inside.
    let refused = app.get(&path, &outsider.token).await;
    refused.expect_error(403, "not_a_participant");
    assert!(!refused.body.to_string().contains(&guest.id), "{:#}", refused.body);

    // The host (not joined) and the participant may.
    assert_eq!(participant_ids(&app, &host, &room).await, vec![guest.id.clone()]);
    assert_eq!(participant_ids(&app, &guest, &room).await, vec![guest.id.clone()]);

    // Once gone, the guest is an outsider again.
    leave(&app, &guest, &room).await.expect(200);
    app.get(&path, &guest.token).await.expect_error(403, "not_a_participant");
}

#[tokio::test]
async fn history_pages_through_ended_rooms_newest_first() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let mut ended = Vec::new();
    for n in 1..=3 {
        let room = app.create_room(&host, room_body(&format!("Meeting {n}"))).await;
        if n == 2 {
            join(&app, &guest, &room, json!({})).await.expect(200);
            leave(&app, &guest, &room).await.expect(200);
        }
        end(&app, &host, &room).await.expect(200);
        ended.push(room);
    }
    let running = app.create_room(&host, room_body("Still running")).await;

    let first = app.get("/api/v1/rooms/history?page=1&limit=2", &host.token).await;
    first.expect(200);
    assert_eq!(first.body["pagination"], json!({ "page": 1, "limit": 2, "total": 3 }));
    assert_eq!(ids(&first), vec![ended[2].clone(), ended[1].clone()]);
    assert!(
        first
            .data()
            .as_array()
            .expect("list")
            .iter()
            .all(|room| room["status"] == "ended" && room["endedAt"].is_string())
    );
    let second = app.get("/api/v1/rooms/history?page=2&limit=2", &host.token).await;
    second.expect(200);
    assert_eq!(second.body["pagination"], json!({ "page": 2, "limit": 2, "total": 3 }));
    assert_eq!(ids(&second), vec![ended[0].clone()]);
    let beyond = app.get("/api/v1/rooms/history?page=3&limit=2", &host.token).await;
    beyond.expect(200);
    assert_eq!(beyond.data(), &json!([]));
    assert_eq!(beyond.body["pagination"]["total"], 3);

    let defaults = app.get("/api/v1/rooms/history", &host.token).await;
    defaults.expect(200);
    assert_eq!(defaults.body["pagination"], json!({ "page": 1, "limit": 20, "total": 3 }));
    assert!(!ids(&defaults).contains(&running));

    // A participant sees the ended rooms they were in, even after leaving.
    let theirs = app.get("/api/v1/rooms/history", &guest.token).await;
    theirs.expect(200);
    assert_eq!(ids(&theirs), vec![ended[1].clone()]);
    assert_eq!(theirs.body["pagination"]["total"], 1);
}

#[tokio::test]
async fn history_refuses_bad_pages() {
    let app = spawn_app().await;
    let user = app.new_user("Hana").await;
    for query in ["page=0", "limit=0", "limit=101", "page=-1", "page=abc", "limit=1.5", "page=99999999999"] {
        let answer = app.get(&format!("/api/v1/rooms/history?{query}"), &user.token).await;
        answer.expect_error(400, "invalid_query");
    }
    app.get("/api/v1/rooms/history?limit=100", &user.token).await.expect(200);
}
