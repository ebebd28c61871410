//! Webhooks (SPEC §7) against real receivers on loopback: the admin API, the
//! SSRF guard, signatures and rotation, order, outages, give-up and manual
//! retry, and two workers sharing one database.

mod delivery;
mod receiver;
mod rest;

use std::time::Duration;

use rapat_delivery::RetryPolicy;
use rapat_delivery::webhooks::{WebhookConfig, WebhookWorker};
use rapat_domain::account::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::audit::grant;
use crate::helpers::{TestApp, TestUser, spawn_app_with};

/// An app whose webhook URLs may be on loopback, and an administrator.
pub async fn app_and_admin() -> (TestApp, TestUser) {
    let app = spawn_app_with(|config| config.webhook_allow_private = true).await;
    let admin = app.new_user("Admin").await;
    grant(&app, &admin, Role::Admin).await;
    (app, admin)
}

/// A quick retry schedule: the first retry within 200 ms, at most a second apart,
/// for `give_up_after`.
pub fn quick(give_up_after: Duration) -> WebhookConfig {
    WebhookConfig {
        retry: RetryPolicy { base: Duration::from_millis(200), max_delay: Duration::from_secs(1), give_up_after },
        allow_private: true,
        lease: Duration::from_secs(15),
        poll_every: Duration::from_millis(500),
        ..Default::default()
    }
}

/// A webhook worker on the app's database until the guard drops.
pub struct Worker(CancellationToken);

impl Worker {
    pub fn start(app: &TestApp, config: WebhookConfig) -> Self {
        let stop = CancellationToken::new();
        let worker = WebhookWorker::new(app.db.clone(), config).expect("an HTTP client");
        tokio::spawn(worker.run(stop.clone()));
        Self(stop)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Registers an endpoint; returns its id and secret.
pub async fn register(app: &TestApp, admin: &TestUser, url: &str, event_types: Value) -> (String, String) {
    let created =
        app.post("/api/v1/webhooks", Some(&admin.token), json!({ "url": url, "eventTypes": event_types })).await;
    created.expect(201);
    let id = created.data()["id"].as_str().expect("id").to_owned();
    let secret = created.data()["secret"].as_str().expect("secret").to_owned();
    (id, secret)
}

pub async fn patch(app: &TestApp, token: &str, path: &str, body: Value) -> crate::helpers::TestResponse {
    app.request(Method::PATCH, path, Some(token), Some(body)).await
}

/// Creates `count` rooms as `host`: one `RoomCreated` each.
pub async fn create_rooms(app: &TestApp, host: &TestUser, count: usize) -> Vec<String> {
    let mut rooms = Vec::with_capacity(count);
    for n in 0..count {
        rooms.push(app.create_room(host, json!({ "name": format!("Standup {n}"), "maxUsers": 5 })).await);
    }
    rooms
}

/// The event ids queued for an endpoint, in stream order.
pub async fn queued_in_order(app: &TestApp, endpoint: &str) -> Vec<String> {
    let endpoint = uuid::Uuid::parse_str(endpoint).expect("uuid");
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY stream_sequence, event_index",
    )
    .bind(endpoint)
    .fetch_all(&app.db)
    .await
    .expect("deliveries");
    ids.into_iter().map(|id| id.to_string()).collect()
}

/// The deliveries of an endpoint through the API, with `query` (e.g. `?status=failed`).
pub async fn deliveries(app: &TestApp, admin: &TestUser, endpoint: &str, query: &str) -> Vec<Value> {
    let answer = app.get(&format!("/api/v1/webhooks/{endpoint}/deliveries{query}"), &admin.token).await;
    answer.expect(200);
    answer.data().as_array().expect("a list").clone()
}
