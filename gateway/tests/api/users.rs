//! `/users/profile` and `/users/{userId}/presence`.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser, spawn_app, spawn_app_with};

const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

impl TestApp {
    pub async fn presence_of(&self, asker: &TestUser, user_id: &str) -> TestResponse {
        self.get(&format!("/api/v1/users/{user_id}/presence"), &asker.token).await
    }
}

#[tokio::test]
async fn the_profile_is_the_callers_own_without_secrets() {
    let app = spawn_app().await;
    let user = app.new_user("Nadia").await;

    let profile = app.get("/api/v1/users/profile", &user.token).await;

    profile.expect(200);
    assert_eq!(profile.body["success"], json!(true));
    let data = profile.data();
    assert_eq!(data["id"], json!(user.id));
    assert_eq!(data["email"], json!(user.email));
    assert_eq!((data["firstName"].as_str(), data["lastName"].as_str()), (Some("Nadia"), Some("Tester")));
    assert_eq!((data["status"].as_str(), data["role"].as_str()), (Some("active"), Some("member")));
    assert_eq!(data["avatar"], Value::Null);
    let text = profile.body.to_string().to_lowercase();
    assert!(!text.contains("password") && !text.contains("argon2"), "{text}");
}

#[tokio::test]
async fn updating_the_profile_answers_and_keeps_the_new_values() {
    let app = spawn_app().await;
    let user = app.new_user("Oki").await;
    let before = app.get("/api/v1/users/profile", &user.token).await;

    let updated = app
        .put("/api/v1/users/profile", &user.token, json!({ "firstName": " Okta ", "avatar": PNG, "status": "busy" }))
        .await;

    updated.expect(200);
    let data = updated.data();
    assert_eq!((data["firstName"].as_str(), data["lastName"].as_str()), (Some("Okta"), Some("Tester")));
    assert_eq!((data["avatar"].as_str(), data["status"].as_str()), (Some(PNG), Some("busy")));
    assert_ne!(data["updatedAt"], before.data()["updatedAt"]);
    assert_eq!(data["createdAt"], before.data()["createdAt"]);
    assert_eq!(app.get("/api/v1/users/profile", &user.token).await.data(), data, "read your writes");

    // Absent fields stay; an empty avatar removes it.
    let removed = app.put("/api/v1/users/profile", &user.token, json!({ "avatar": "", "lastName": "Baru" })).await;
    removed.expect(200);
    assert_eq!(removed.data()["avatar"], Value::Null);
    assert_eq!(
        (removed.data()["firstName"].as_str(), removed.data()["lastName"].as_str()),
        (Some("Okta"), Some("Baru"))
    );
    assert_eq!(removed.data()["status"], "busy");

    // Nothing to change is fine too.
    let unchanged = app.put("/api/v1/users/profile", &user.token, json!({})).await;
    unchanged.expect(200);
    assert_eq!(unchanged.data(), removed.data());
}

#[tokio::test]
async fn profile_updates_refuse_bad_values() {
    let app = spawn_app().await;
    let user = app.new_user("Putri").await;
    let update = |body: Value| app.put("/api/v1/users/profile", &user.token, body);

    update(json!({ "status": "sleeping" })).await.expect_error(400, "invalid_body");
    update(json!({ "status": 3 })).await.expect_error(400, "invalid_body");
    update(json!({ "firstName": "" })).await.expect_error(400, "invalid_input");
    update(json!({ "lastName": "x".repeat(101) })).await.expect_error(400, "invalid_input");
    update(json!({ "firstName": "a\u{0}b" })).await.expect_error(400, "invalid_input");
    update(json!({ "avatar": "https://example.com/me.png" })).await.expect_error(400, "invalid_input");
    update(json!({ "avatar": "data:image/svg+xml;base64,PHN2Zz4=" })).await.expect_error(400, "invalid_input");
    update(json!({ "role": "admin" })).await.expect_error(400, "invalid_body");
    update(json!({ "email": "other@example.com" })).await.expect_error(400, "invalid_body");

    // Over the avatar's limit (256 KiB) but within the body limit: the avatar's 413.
    let big = format!("data:image/png;base64,{}", "A".repeat(300 * 1024));
    update(json!({ "avatar": big })).await.expect_error(413, "avatar_too_large");
    // Over the gateway's body limit (1 MiB): the body's 413.
    let huge = format!("data:image/png;base64,{}", "A".repeat(2 * 1024 * 1024));
    update(json!({ "avatar": huge })).await.expect_error(413, "body_too_large");

    // Nothing was changed by any of them.
    let profile = app.get("/api/v1/users/profile", &user.token).await;
    assert_eq!(
        (profile.data()["firstName"].as_str(), profile.data()["status"].as_str()),
        (Some("Putri"), Some("active"))
    );
    assert_eq!(profile.data()["avatar"], Value::Null);
    assert_eq!(profile.data()["role"], "member");
}

#[tokio::test]
async fn profile_endpoints_need_a_token() {
    let app = spawn_app().await;
    app.request(Method::GET, "/api/v1/users/profile", None, None).await.expect_error(401, "missing_token");
    let body = Some(json!({ "firstName": "Mallory" }));
    app.request(Method::PUT, "/api/v1/users/profile", None, body).await.expect_error(401, "missing_token");
}

#[tokio::test]
async fn presence_follows_activity() {
    let app = spawn_app().await;
    let asker = app.new_user("Qori").await;
    let user = app.new_user("Rina").await;

    // Registering and logging in are not activity: no authenticated request yet.
    let before = app.presence_of(&asker, &user.id).await;
    before.expect(200);
    assert_eq!(before.data()["userId"], json!(user.id));
    assert_eq!(before.data()["status"], "offline");
    assert_eq!(before.data()["lastSeenAt"], Value::Null);

    app.get("/api/v1/users/profile", &user.token).await.expect(200);

    let after = app.presence_of(&asker, &user.id).await;
    after.expect(200);
    assert_eq!(after.data()["status"], "online");
    let seen = after.data()["lastSeenAt"].as_str().expect("lastSeenAt");
    assert!(chrono::DateTime::parse_from_rfc3339(seen).is_ok(), "{seen}");
    // Asking is activity too.
    assert_eq!(app.presence_of(&asker, &asker.id).await.data()["status"], "online");
}

#[tokio::test]
async fn presence_turns_offline_after_the_window() {
    let app = spawn_app_with(|config| config.presence_window = std::time::Duration::ZERO).await;
    let asker = app.new_user("Sari").await;
    let user = app.new_user("Tono").await;
    app.get("/api/v1/users/profile", &user.token).await.expect(200);

    let presence = app.presence_of(&asker, &user.id).await;

    presence.expect(200);
    assert_eq!(presence.data()["status"], "offline");
    assert!(presence.data()["lastSeenAt"].is_string(), "the last sighting is still told: {:#}", presence.body);
}

/// `in_meeting` follows WebSockets (see `ws/presence.rs`); joining through REST
/// alone is activity, not a meeting.
#[tokio::test]
async fn presence_is_online_in_a_room_without_a_socket() {
    let app = spawn_app().await;
    let host = app.new_user("Umar").await;
    let guest = app.new_user("Vina").await;
    let room = app.create_room(&host, json!({ "name": "Standup", "maxUsers": 5 })).await;

    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&guest.token), json!({})).await.expect(200);
    assert_eq!(app.presence_of(&host, &guest.id).await.data()["status"], "online");

    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&guest.token), json!({})).await.expect(200);
    assert_eq!(app.presence_of(&host, &guest.id).await.data()["status"], "online");
}

#[tokio::test]
async fn presence_of_unknown_or_malformed_ids_is_refused() {
    let app = spawn_app().await;
    let asker = app.new_user("Wati").await;
    app.presence_of(&asker, &Uuid::new_v4().to_string()).await.expect_error(404, "user_not_found");
    app.presence_of(&asker, "not-a-uuid").await.expect_error(400, "invalid_path");
    app.request(Method::GET, &format!("/api/v1/users/{}/presence", asker.id), None, None)
        .await
        .expect_error(401, "missing_token");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_commands_by_outcome() {
    let app = crate::helpers::spawn_app().await;
    let user = app.new_user("Metrik").await;
    app.get("/api/v1/users/profile", &user.token).await.expect(200);
    let metrics = app.http.get(format!("{}/metrics", app.base_url)).send().await.expect("answers");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(
        text.lines().any(|line| line.starts_with("rapat_http_requests_total")
            && line.contains(r#"route="/api/v1/users/profile""#)
            && line.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(
        text.lines().any(|line| line.starts_with("rapat_commands_total") && line.contains(r#"aggregate="account""#))
    );
    assert!(text.contains("rapat_projection_position"), "{text}");
}
