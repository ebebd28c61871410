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
    let stream = async_nats::jetstream::new(client).get_stream(&app.event_store.stream).await.expect("stream");
    let message = stream
        .get_last_raw_message_by_subject(&app.event_store.subject_for("room", &room_id))
        .await
        .expect("the room's first message");
    let header = message.headers.get("traceparent").map(|value| value.to_string());
    assert_eq!(header.as_deref(), Some(traceparent));
}
