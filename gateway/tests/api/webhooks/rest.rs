//! The admin API: who may use it, what it accepts, what it shows, and the SSRF
//! guard at registration and at delivery.

use std::time::Duration;

use rapat_testkit::eventually_async;
use serde_json::json;

use super::receiver::Receiver;
use super::{Worker, app_and_admin, create_rooms, deliveries, patch, quick, register};
use crate::helpers::spawn_app;

#[tokio::test]
async fn an_admin_manages_endpoints_and_the_secret_is_shown_once_and_never_in_the_audit_trail() {
    let (app, admin) = app_and_admin().await;
    let (id, secret) = register(&app, &admin, "http://127.0.0.1:9/hooks", json!(["room.*", "AccountRegistered"])).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let listed = app.get("/api/v1/webhooks", &admin.token).await;
    listed.expect(200);
    assert_eq!(listed.data().as_array().map(Vec::len), Some(1));
    let one = app.get(&format!("/api/v1/webhooks/{id}"), &admin.token).await;
    one.expect(200);
    assert_eq!(one.data()["eventTypes"], json!(["room.*", "AccountRegistered"]));
    assert_eq!(one.data()["enabled"], json!(true));
    assert!(!one.body.to_string().contains(&secret), "{}", one.body);

    let changed = patch(&app, &admin.token, &format!("/api/v1/webhooks/{id}"), json!({ "enabled": false })).await;
    changed.expect(200);
    assert_eq!(changed.data()["enabled"], json!(false));
    let rotated = app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), Some(&admin.token), json!({})).await;
    rotated.expect(200);
    let new_secret = rotated.data()["secret"].as_str().expect("secret").to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let one = app.get(&format!("/api/v1/webhooks/{id}"), &admin.token).await;
    assert!(one.data()["previousSecretExpiresAt"].is_string(), "{}", one.body);

    let audit = app.get("/api/v1/audit/events?aggregateType=webhook", &admin.token).await;
    audit.expect(200);
    let trail = audit.body.to_string();
    assert!(trail.contains("WebhookRegistered") && trail.contains("WebhookSecretRotated"), "{trail}");
    assert!(!trail.contains(&secret) && !trail.contains(&new_secret), "a secret in the audit trail: {trail}");

    app.delete(&format!("/api/v1/webhooks/{id}"), &admin.token).await.expect(200);
    app.get(&format!("/api/v1/webhooks/{id}"), &admin.token).await.expect_error(404, "webhook_not_found");
    app.delete(&format!("/api/v1/webhooks/{id}"), &admin.token).await.expect_error(404, "webhook_not_found");
}

#[tokio::test]
async fn only_administrators_may_and_bad_input_gets_a_400() {
    let (app, admin) = app_and_admin().await;
    let member = app.new_user("Member").await;
    let body = json!({ "url": "http://127.0.0.1:9/hooks", "eventTypes": ["*"] });
    app.post("/api/v1/webhooks", Some(&member.token), body.clone()).await.expect_error(403, "not_admin");
    app.get("/api/v1/webhooks", &member.token).await.expect_error(403, "not_admin");
    app.post("/api/v1/webhooks", None, body).await.expect(401);

    let bad = [
        (json!({ "url": "ftp://example.com/", "eventTypes": ["*"] }), "invalid_url"),
        (json!({ "url": "not a url", "eventTypes": ["*"] }), "invalid_url"),
        (json!({ "url": "https://user:pw@example.com/", "eventTypes": ["*"] }), "invalid_url"),
        (json!({ "url": "https://example.com/", "eventTypes": [] }), "invalid_event_types"),
        (json!({ "url": "https://example.com/", "eventTypes": ["room"] }), "invalid_event_types"),
        (json!({ "url": "https://example.com/", "eventTypes": ["Room.*"] }), "invalid_event_types"),
    ];
    for (body, code) in bad {
        app.post("/api/v1/webhooks", Some(&admin.token), body).await.expect_error(400, code);
    }
    let answer = app.post("/api/v1/webhooks", Some(&admin.token), json!({ "url": "https://example.com/" })).await;
    answer.expect(400);
    assert_eq!(answer.body["success"], json!(false));

    let (id, _) = register(&app, &admin, "http://127.0.0.1:9/hooks", json!(["*"])).await;
    let path = format!("/api/v1/webhooks/{id}");
    patch(&app, &admin.token, &path, json!({})).await.expect_error(400, "nothing_to_change");
    patch(&app, &admin.token, &path, json!({ "eventTypes": ["no such"] }))
        .await
        .expect_error(400, "invalid_event_types");
    app.get(&format!("{path}/deliveries?status=lost"), &admin.token).await.expect(400);
    app.get(&format!("{path}/deliveries?limit=0"), &admin.token).await.expect_error(400, "invalid_query");
    let unknown = uuid::Uuid::new_v4();
    app.post(&format!("{path}/deliveries/{unknown}/retry"), Some(&admin.token), json!({}))
        .await
        .expect_error(404, "delivery_not_found");
    app.get("/api/v1/webhooks/not-a-uuid", &admin.token).await.expect(400);
}

#[tokio::test]
async fn private_addresses_are_refused_at_registration_unless_allowed() {
    let app = spawn_app().await;
    let admin = app.new_user("Admin").await;
    crate::audit::grant(&app, &admin, rapat_domain::account::Role::Admin).await;
    for url in [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hooks",
        "http://192.168.1.1/hooks",
        "http://100.64.0.1/hooks",
        "http://[fd00::1]/hooks",
        "http://0.0.0.0/hooks",
    ] {
        let answer = app.post("/api/v1/webhooks", Some(&admin.token), json!({ "url": url, "eventTypes": ["*"] })).await;
        answer.expect_error(400, "private_address");
    }
}

/// A name that resolved to a public address when registered may resolve to a
/// private one later (DNS rebinding): the worker checks every connection itself.
#[tokio::test]
async fn the_worker_refuses_a_private_address_at_delivery_time() {
    let (app, admin) = app_and_admin().await;
    let receiver = Receiver::start().await;
    // Registered while the gateway allows private addresses; the worker does not.
    let localhost = receiver.url().replace("127.0.0.1", "localhost");
    let (id, _) = register(&app, &admin, &localhost, json!(["room.*"])).await;
    let _worker = Worker::start(
        &app,
        rapat_delivery::webhooks::WebhookConfig { allow_private: false, ..quick(Duration::from_secs(60)) },
    );
    create_rooms(&app, &admin, 1).await;
    eventually_async("an attempt refused for its address", Duration::from_secs(20), async || {
        let found = deliveries(&app, &admin, &id, "").await;
        found.first().is_some_and(|delivery| {
            delivery["attempts"].as_u64() >= Some(1)
                && delivery["lastError"].as_str().is_some_and(|error| error.contains("non-public"))
        })
    })
    .await;
    assert!(receiver.received().is_empty(), "a request reached a private address");
}
