//! A client that wrote through REST reads its own write at once, with no sleeps
//! and no retries; and garbage in a room request gets a 400 envelope, never a 500.

use std::time::Duration;

use rapat_domain::account::Role;
use reqwest::Method;
use serde_json::json;

use crate::audit::grant;
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

/// A room write waits for the rooms read model only; the audit trail is read
/// through queries that wait for it, so a write shows there at once as well.
#[tokio::test]
async fn a_room_write_shows_in_the_room_events_and_the_audit_trail_by_the_very_next_request() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let admin = app.new_user("Ada").await;
    grant(&app, &admin, Role::Admin).await;
    let room = app.create_room(&host, room_body("Audited")).await;
    for n in 0..20 {
        if n % 2 == 0 {
            join(&app, &host, &room, json!({})).await.expect(200);
        } else {
            leave(&app, &host, &room).await.expect(200);
        }
        // The room's creation and the n + 1 joins and leaves since.
        let expected = n + 2;
        let events = app.get(&format!("/api/v1/rooms/{room}/events?limit=100"), &host.token).await;
        events.expect(200);
        assert_eq!(events.body["pagination"]["total"], expected, "round {n}: the room's events");
        let trail = app.get(&format!("/api/v1/audit/events?aggregateId={room}&limit=100"), &admin.token).await;
        trail.expect(200);
        let listed = trail.data().as_array().map_or(0, Vec::len);
        assert_eq!(listed, expected, "round {n}: the audit trail");
    }
}

/// The audit trail held back (its checkpoint row locked, as a long batch would
/// hold it): the room write is answered all the same, and a query of the room's
/// events sent meanwhile answers once the trail shows the write, not before.
#[tokio::test]
async fn a_room_events_query_waits_for_a_lagging_audit_trail() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let room = app.create_room(&host, room_body("Held back")).await;
    app.audit_caught_up().await;
    let mut holder = app.db.begin().await.expect("a transaction");
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = 'audit' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("the audit checkpoint locked");
    join(&app, &host, &room, json!({})).await.expect(200);
    let path = format!("/api/v1/rooms/{room}/events?limit=100");
    let query = app.get(&path, &host.token);
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        holder.rollback().await.expect("released");
    };
    let (events, ()) = tokio::join!(query, release);
    events.expect(200);
    assert_eq!(events.body["pagination"]["total"], 2, "the join is missing: {:#}", events.body);
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
