//! A client that wrote through REST reads its own write at once, with no sleeps
//! and no retries; and garbage in a room request gets a 400 envelope, never a 500.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::rooms::{ids, join, leave, participant_ids, room_body};

#[tokio::test]
async fn a_created_room_is_listed_by_the_very_next_request() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    for n in 0..20 {
        let room = app.create_room(&host, room_body(&format!("Room {n}"))).await;
        let listed = app.get("/api/v1/rooms", &host.token).await;
        listed.expect(200);
        let listed = ids(&listed);
        assert!(listed.contains(&room), "round {n}: {room} missing from {listed:?}");
        assert_eq!(listed.len(), n + 1);
    }
}

#[tokio::test]
async fn a_join_and_a_leave_show_in_the_very_next_participant_list() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Drop-in")).await;
    for n in 0..20 {
        join(&app, &guest, &room, json!({})).await.expect(200);
        assert_eq!(participant_ids(&app, &host, &room).await, vec![guest.id.clone()], "round {n}, after joining");
        assert_eq!(ids(&app.get("/api/v1/rooms", &guest.token).await), vec![room.clone()], "round {n}");
        leave(&app, &guest, &room).await.expect(200);
        assert!(participant_ids(&app, &host, &room).await.is_empty(), "round {n}, after leaving");
    }
}

#[tokio::test]
async fn garbage_room_requests_get_a_400_envelope_never_a_500() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let room = app.create_room(&host, room_body("Target")).await;
    let json_type = "application/json";
    let huge_name = format!(r#"{{"name": "{}", "maxUsers": 5}}"#, "n".repeat(100_000));
    let invalid_utf8 = [br#"{"name": ""#.as_slice(), &[0xff, 0xfe, 0xc3], br#"", "maxUsers": 5}"#].concat();
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // (content type, body, expected code); every one must be a 400.
    // Each body here is refused by both a create and an update (whose fields are
    // all optional, so a missing maxUsers is checked on its own below).
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (json_type, br#"{"name": 42, "maxUsers": 5}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": "five"}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": 5.5}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": 99999999999}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": ["Room"], "maxUsers": 5}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": true}"#.to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": 5, "description": ["list"]}"#.to_vec(), "invalid_body"),
        (json_type, br#"["Room", 5]"#.to_vec(), "invalid_body"),
        (json_type, b"null".to_vec(), "invalid_body"),
        (json_type, br#"{"name": "Room", "maxUsers": 5"#.to_vec(), "invalid_body"),
        (json_type, Vec::new(), "invalid_body"),
        (json_type, invalid_utf8, "invalid_body"),
        (json_type, nested.into_bytes(), "invalid_body"),
        (json_type, huge_name.into_bytes(), "invalid_input"),
        ("text/plain", br#"{"name": "Room", "maxUsers": 5}"#.to_vec(), "invalid_content_type"),
        ("application/x-www-form-urlencoded", b"name=Room&maxUsers=5".to_vec(), "invalid_content_type"),
    ];
    for (content_type, body, code) in cases {
        let shown = String::from_utf8_lossy(&body).chars().take(60).collect::<String>();
        let created = app.send_raw(Method::POST, "/api/v1/rooms", Some(&host.token), content_type, body.clone()).await;
        assert_eq!(created.status.as_u16(), 400, "POST /rooms {content_type} {shown}: {:#}", created.body);
        assert_eq!(created.body["success"], false, "{shown}");
        assert_eq!(created.error_code(), code, "POST /rooms {content_type} {shown}: {:#}", created.body);
        let updated =
            app.send_raw(Method::PUT, &format!("/api/v1/rooms/{room}"), Some(&host.token), content_type, body).await;
        assert_eq!(updated.status.as_u16(), 400, "PUT /rooms/{{id}} {content_type} {shown}: {:#}", updated.body);
        assert_eq!(updated.body["success"], false, "{shown}");
    }

    let missing =
        app.post("/api/v1/rooms", Some(&host.token), json!({ "name": "Room", "description": "no size" })).await;
    missing.expect_error(400, "invalid_body");

    let path = format!("/api/v1/rooms/{room}/join");
    for (content_type, body) in [
        (json_type, br#"{"password": 5}"#.to_vec()),
        (json_type, b"{".to_vec()),
        ("text/plain", br#"{"password": "x"}"#.to_vec()),
    ] {
        let answer = app.send_raw(Method::POST, &path, Some(&host.token), content_type, body).await;
        assert_eq!(answer.status.as_u16(), 400, "{:#}", answer.body);
        assert_eq!(answer.body["success"], false);
    }
    // An empty body is no body, whatever its declared type.
    app.send_raw(Method::POST, &path, Some(&host.token), json_type, Vec::new()).await.expect(200);

    // Over the body limit: 413 in the same envelope.
    let too_big = format!(r#"{{"name": "{}", "maxUsers": 5}}"#, "n".repeat(2 * 1024 * 1024));
    let answer = app.send_raw(Method::POST, "/api/v1/rooms", Some(&host.token), json_type, too_big.into_bytes()).await;
    answer.expect_error(413, "body_too_large");

    let listed = app.get("/api/v1/rooms", &host.token).await;
    assert_eq!(ids(&listed), vec![room.clone()], "no garbage request created a room");
    let fetched = app.get(&format!("/api/v1/rooms/{room}"), &host.token).await;
    assert_eq!(fetched.data()["name"], "Target", "no garbage request changed the room");
}
