//! What one user or one client address may do: guess room passwords, create rooms,
//! list them a page at a time, name its request, and be told apart behind a proxy.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::rooms::{ids, join, room_body};

fn retry_after(response: &crate::helpers::TestResponse) -> u64 {
    response
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After header: {:?}", response.headers))
}

async fn locked_room(app: &TestApp, host: &crate::helpers::TestUser) -> String {
    app.create_room(host, json!({ "name": "Locked", "maxUsers": 10, "password": "open sesame" })).await
}

#[tokio::test]
async fn wrong_room_passwords_are_throttled_per_user_and_room() {
    let app = spawn_app_with(|config| {
        config.room_join_failures.per_user_and_room = 3;
        config.room_join_failures.per_room = 100;
    })
    .await;
    let host = app.new_user("Hana").await;
    let guesser = app.new_user("Gita").await;
    let room = locked_room(&app, &host).await;
    let other_room = locked_room(&app, &host).await;

    for guess in ["aaaa", "bbbb", "cccc"] {
        join(&app, &guesser, &room, json!({ "password": guess })).await.expect_error(403, "wrong_password");
    }
    let throttled = join(&app, &guesser, &room, json!({ "password": "open sesame" })).await;
    throttled.expect_error(429, "rate_limited");
    let wait = retry_after(&throttled);
    assert!((1..=60).contains(&wait), "Retry-After {wait} is within the minute window");

    // Only offered passwords count, and only for that room.
    join(&app, &guesser, &room, json!({})).await.expect_error(403, "wrong_password");
    join(&app, &guesser, &other_room, json!({ "password": "open sesame" })).await.expect(200);
    let someone_else = app.new_user("Budi").await;
    join(&app, &someone_else, &room, json!({ "password": "open sesame" })).await.expect(200);
}

#[tokio::test]
async fn wrong_room_passwords_from_many_users_are_throttled_per_room() {
    let app = spawn_app_with(|config| {
        config.room_join_failures.per_user_and_room = 100;
        config.room_join_failures.per_room = 4;
    })
    .await;
    let host = app.new_user("Hana").await;
    let room = locked_room(&app, &host).await;
    let mut guessers = Vec::new();
    for name in ["Ana", "Budi"] {
        guessers.push(app.new_user(name).await);
    }
    for guess in 0..4 {
        let guesser = &guessers[guess % 2];
        join(&app, guesser, &room, json!({ "password": format!("guess {guess}") }))
            .await
            .expect_error(403, "wrong_password");
    }
    let late = app.new_user("Citra").await;
    let throttled = join(&app, &late, &room, json!({ "password": "open sesame" })).await;
    throttled.expect_error(429, "rate_limited");
    assert!(retry_after(&throttled) >= 1);
    // The host needs no password, so guessing does not lock them out.
    join(&app, &host, &room, json!({})).await.expect(200);
}

#[tokio::test]
async fn a_user_creates_at_most_the_configured_rooms_per_hour_even_all_at_once() {
    let app = spawn_app_with(|config| config.rooms_per_user_per_hour = 3).await;
    let host = app.new_user("Hana").await;
    let attempts = (0..6).map(|n| app.post("/api/v1/rooms", Some(&host.token), room_body(&format!("Room {n}"))));
    let answers = futures::future::join_all(attempts).await;
    let created = answers.iter().filter(|answer| answer.status == 201).count();
    assert_eq!(created, 3, "{:?}", answers.iter().map(|answer| answer.status).collect::<Vec<_>>());
    for refused in answers.iter().filter(|answer| answer.status != 201) {
        refused.expect_error(429, "rate_limited");
        let wait = retry_after(refused);
        assert!((3000..=3600).contains(&wait), "Retry-After {wait} s is when the oldest room leaves the hour");
    }
    // Another user has a cap of their own.
    let other = app.new_user("Gita").await;
    app.create_room(&other, room_body("Mine")).await;
}

#[tokio::test]
async fn get_rooms_is_paginated() {
    let app = spawn_app_with(|config| config.rooms_per_user_per_hour = 0).await;
    let host = app.new_user("Hana").await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(app.create_room(&host, room_body(&format!("Room {n}"))).await);
    }
    created.reverse(); // newest first

    let first = app.get("/api/v1/rooms?limit=2", &host.token).await;
    first.expect(200);
    assert_eq!(ids(&first), created[..2]);
    assert_eq!(first.body["pagination"], json!({ "page": 1, "limit": 2, "total": 5 }));
    let last = app.get("/api/v1/rooms?page=3&limit=2", &host.token).await;
    assert_eq!(ids(&last), created[4..]);
    let default = app.get("/api/v1/rooms", &host.token).await;
    assert_eq!(ids(&default), created);
    assert_eq!(default.body["pagination"], json!({ "page": 1, "limit": 20, "total": 5 }));

    for bad in ["limit=0", "limit=101", "page=0", "page=abc", "limit=-1"] {
        app.get(&format!("/api/v1/rooms?{bad}"), &host.token).await.expect_error(400, "invalid_query");
    }
}

#[tokio::test]
async fn a_client_request_id_is_kept_only_when_short_and_visible() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let create = |request_id: String| {
        app.http
            .post(format!("{}/api/v1/rooms", app.base_url))
            .bearer_auth(&host.token)
            .header("x-request-id", request_id)
            .json(&room_body("Correlated"))
            .send()
    };
    let correlation_of = |room: String| {
        let db = app.db.clone();
        async move {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT correlation_id FROM audit_events WHERE aggregate_id = $1")
                    .bind(room)
                    .fetch_one(&db)
                    .await
                    .expect("the room's creation is audited");
            stored.expect("a correlation id")
        }
    };

    for unfit in ["x".repeat(200_000), "y".repeat(129), "has a space".to_string()] {
        let answer = create(unfit.clone()).await.expect("answers");
        assert_eq!(answer.status(), 201);
        let echoed = answer.headers()["x-request-id"].to_str().expect("ascii").to_string();
        assert_ne!(echoed, unfit);
        assert!(echoed.len() <= 128, "a generated id, not {} bytes", echoed.len());
        let body: serde_json::Value = answer.json().await.expect("json");
        app.audit_caught_up().await;
        let stored = correlation_of(body["data"]["id"].as_str().expect("id").to_string()).await;
        assert_eq!(stored, echoed, "the generated id is the stored correlation id");
    }

    let fit = "a".repeat(128);
    let answer = create(fit.clone()).await.expect("answers");
    assert_eq!(answer.headers()["x-request-id"], fit.as_str());
    let body: serde_json::Value = answer.json().await.expect("json");
    app.audit_caught_up().await;
    assert_eq!(correlation_of(body["data"]["id"].as_str().expect("id").to_string()).await, fit);
}

/// Logins (wrong, so cheap to refuse at the limiter) from one TCP peer that claims
/// to forward for `forwarded_for`: how many are throttled.
async fn throttled_logins(app: &TestApp, forwarded_for: impl Fn(usize) -> String) -> usize {
    let mut throttled = 0;
    for n in 0..4 {
        let answer = app
            .http
            .post(format!("{}/api/v1/auth/login", app.base_url))
            .header("x-forwarded-for", forwarded_for(n))
            .json(&json!({ "email": "nobody@example.com", "password": "wrong password 1" }))
            .send()
            .await
            .expect("answers");
        if answer.status() == 429 {
            throttled += 1;
        }
    }
    throttled
}

fn strict_auth_limit(config: &mut rapat_gateway::GatewayConfig) {
    config.auth_rate_limit.burst = 2;
    config.auth_rate_limit.replenish_every = Duration::from_secs(3600);
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(strict_auth_limit).await;
    // Every request claims another client, but the peer (127.0.0.1) is not a proxy.
    assert_eq!(throttled_logins(&app, |n| format!("203.0.113.{n}")).await, 2);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn_app_with(|config| {
        strict_auth_limit(config);
        config.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    })
    .await;
    assert_eq!(throttled_logins(&app, |n| format!("203.0.113.{n}")).await, 0, "four clients, one request each");
    assert_eq!(throttled_logins(&app, |_| "198.51.100.9".to_string()).await, 2, "one client, four requests");
    // What a client prepends is not believed: the proxy's own entry (the last) is.
    assert_eq!(throttled_logins(&app, |n| format!("10.0.0.{n}, 198.51.100.10")).await, 2);
}

#[tokio::test]
async fn the_openapi_document_states_these_limits() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let list = &document["paths"]["/api/v1/rooms"]["get"];
    let limit =
        list["parameters"].as_array().expect("parameters").iter().find(|p| p["name"] == "limit").expect("limit");
    assert_eq!(limit["schema"]["maximum"], json!(100));
    let create = &document["paths"]["/api/v1/rooms"]["post"]["responses"];
    for status in ["408", "429", "503"] {
        assert!(create[status].is_object(), "POST /rooms documents {status}");
    }
    let join = &document["paths"]["/api/v1/rooms/{roomId}/join"]["post"]["responses"];
    assert!(join["429"].is_object() && join["503"].is_object(), "join documents 429 and 503");
    assert!(document["paths"]["/api/v1/auth/login"]["post"]["responses"]["503"].is_object());
}
