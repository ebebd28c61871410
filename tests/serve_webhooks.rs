//! `rapat serve` runs the webhook worker, and a delivery outlives the process: a
//! webhook in flight when rapat is killed is sent again by the next process.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use support::{Served, nats_url, postgres_base_url};

/// A receiver that never answers its first request (rapat is killed meanwhile)
/// and answers every later one 200; it records each request's `webhook-id`
/// once the signature verifies with the secret it is given.
#[derive(Default)]
struct Holding {
    requests: AtomicUsize,
    secret: Mutex<String>,
    verified_ids: Mutex<Vec<String>>,
}

async fn receive(State(holding): State<Arc<Holding>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secret = holding.secret.lock().expect("lock").clone();
    let verifier = standardwebhooks::Webhook::new(&secret).expect("a secret");
    if verifier.verify(&body, &headers).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers.get("webhook-id").and_then(|id| id.to_str().ok()).unwrap_or_default().to_owned();
    holding.verified_ids.lock().expect("lock").push(id);
    if holding.requests.fetch_add(1, Ordering::SeqCst) == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::OK
}

async fn eventually<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_webhook_in_flight_when_serve_is_killed_is_delivered_by_the_next_process() {
    let holding = Arc::new(Holding::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let receiver_url = format!("http://{}/hooks", listener.local_addr().expect("address"));
    let app = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(Arc::clone(&holding));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = [
        ("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"),
        ("RAPAT_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("RAPAT_WEBHOOK_RETRY_BASE_MS", "200"),
        ("RAPAT_WEBHOOK_LEASE_SECONDS", "12"),
    ];
    let mut serve = Served::start(&env).await;
    let admin = serve.new_user("Admin").await;
    let granted = std::process::Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["admin", "grant", &admin.email, "--namespace", serve.namespace.as_str(), "--nats-url", &nats_url()])
        .args(["--database-url", &format!("{}/{}", postgres_base_url(), serve.database)])
        .env("RUST_LOG", "warn")
        .output()
        .expect("rapat admin grant runs");
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));

    let http = reqwest::Client::new();
    let body = json!({ "url": receiver_url, "eventTypes": ["RoomCreated"] });
    // The role shows once the accounts read model has the grant.
    let webhook: Value = eventually("the admin role", Duration::from_secs(20), async || {
        let answer =
            http.post(serve.url("/api/v1/webhooks")).bearer_auth(&admin.token).json(&body).send().await.ok()?;
        (answer.status() == 201).then_some(())?;
        answer.json::<Value>().await.ok()
    })
    .await;
    let id = webhook["data"]["id"].as_str().expect("id").to_owned();
    *holding.secret.lock().expect("lock") = webhook["data"]["secret"].as_str().expect("secret").to_owned();

    serve.post("/api/v1/rooms", Some(&admin.token), None, json!({ "name": "Killed mid-send", "maxUsers": 5 })).await;
    eventually("the delivery in flight", Duration::from_secs(30), async || {
        (holding.requests.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    serve.kill_and_restart(Duration::ZERO, &env).await;

    let delivered = eventually("the delivery after the restart", Duration::from_secs(60), async || {
        let page: Value = http
            .get(serve.url(&format!("/api/v1/webhooks/{id}/deliveries?status=delivered")))
            .bearer_auth(&admin.token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        page["data"].as_array().filter(|rows| !rows.is_empty()).cloned()
    })
    .await;
    assert_eq!(delivered.len(), 1);
    let ids = holding.verified_ids.lock().expect("lock").clone();
    assert_eq!(ids.len(), 2, "sent once before the kill and once after: {ids:?}");
    assert_eq!(ids[0], ids[1], "the same webhook-id both times");
    assert_eq!(delivered[0]["eventId"].as_str(), Some(ids[0].as_str()));
}
