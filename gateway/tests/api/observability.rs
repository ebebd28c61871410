//! What operators follow a request by: its trace context reaches the events.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_requests_trace_context_travels_into_its_events_headers() {
    let app = spawn_app().await;
    let host = app.new_user("Jejak").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let created = app
        .http
        .post(format!("{}/api/v1/rooms", app.base_url))
        .bearer_auth(&host.token)
        .header("traceparent", traceparent)
        .json(&json!({ "name": "Traced", "maxUsers": 3 }))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.expect("json");
    let room_id = body["data"]["id"].as_str().expect("room id").to_string();

    let client = rapat_commands::connect(&crate::helpers::nats_url()).await.expect("NATS");
    let stream = async_nats::jetstream::new(client).get_stream(app.namespace.events_stream()).await.expect("stream");
    let message = stream
        .get_last_raw_message_by_subject(&app.namespace.event_subject("room", &room_id))
        .await
        .expect("the room's first message");
    let header = message.headers.get("traceparent").map(|value| value.to_string());
    assert_eq!(header.as_deref(), Some(traceparent));
}

/// A stored message no read model can apply is parked, and that is loud: `/readyz`
/// names the parked events per projection (staying ready: see `routes/health.rs`)
/// and `/metrics` counts them.
#[tokio::test]
async fn a_parked_event_is_counted_and_reported_by_readyz() {
    let app = spawn_app().await;
    let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("answers");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["parkedEvents"], json!({}), "{body:#}");

    // Only a buggy or foreign writer could store this; the projector must step over it.
    let client = rapat_commands::connect(&crate::helpers::nats_url()).await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let subject = app.namespace.event_subject("room", uuid::Uuid::new_v4());
    jetstream.publish(subject, "not a stored commit".into()).await.expect("published").await.expect("stored");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("answers");
        assert_eq!(ready.status(), 200, "parked events do not make the process unready");
        let body: serde_json::Value = ready.json().await.expect("json");
        if body["parkedEvents"]["rooms"] == 1 && body["parkedEvents"]["audit"] == 1 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "never reported as parked: {body:#}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(body["nats"], "up");
    assert_eq!(body["postgres"], "up");

    let metrics = app.http.get(format!("{}/metrics", app.base_url)).send().await.expect("answers");
    let text = metrics.text().await.expect("text");
    for projection in ["rooms", "audit"] {
        let line = format!("rapat_projection_parked_total{{projection=\"{projection}\"}}");
        assert!(text.lines().any(|l| l.starts_with(&line)), "{line} missing from /metrics");
    }
}

/// A projection known to have applied events the stream lost makes the process
/// unready, named in `streamMismatch`, until the projector has rebuilt it from the
/// stream (which it does by itself).
#[tokio::test]
async fn a_stream_mismatch_makes_readyz_unready_until_the_rebuild() {
    let app = spawn_app().await;
    app.new_user("Cermin").await;
    let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("answers");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["streamMismatch"], json!([]), "{body:#}");

    // What the projector records when it finds its checkpoint past the stream's end.
    sqlx::query("UPDATE projection_checkpoints SET stream_mismatch = 'test' WHERE projection = 'accounts'")
        .execute(&app.db)
        .await
        .expect("marks");
    let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("answers");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["streamMismatch"], json!(["accounts"]), "{body:#}");
    assert_eq!(body["state"], "unready");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("answers");
        if ready.status() == 200 {
            let body: serde_json::Value = ready.json().await.expect("json");
            assert_eq!(body["streamMismatch"], json!([]), "{body:#}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the projector never rebuilt the accounts read model");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.expect("counts");
    assert_eq!(users, 1, "the rebuilt read model holds the stream's account");
}
