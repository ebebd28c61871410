//! OpenTelemetry traces through `rapat serve`: a request's trace continues in
//! the command that handles it, the projections that apply its events and the
//! SFU that reads them, all exported over OTLP/HTTP to a collector standing in
//! for an OpenTelemetry Collector (it keeps what it receives).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use support::Served;
use uuid::Uuid;

/// Receives OTLP/HTTP JSON exports; returns its address and what it got.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = Arc::clone(&received);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                if let Ok(export) = serde_json::from_slice::<Value>(&body)
                    && let Ok(mut received) = store.lock()
                {
                    received.push(export);
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("collector serves") });
    (address, received)
}

/// Every span exported so far (OTLP JSON span objects).
fn exported(received: &Mutex<Vec<Value>>) -> Vec<Value> {
    let exports = received.lock().map(|exports| exports.clone()).unwrap_or_default();
    exports
        .iter()
        .flat_map(|export| export["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|resource| resource["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_ascii_lowercase()
}

/// Every exported span of `trace_id`, as (name, span id, parent span id).
fn spans_of(received: &Mutex<Vec<Value>>, trace_id: &str) -> Vec<(String, String, String)> {
    exported(received)
        .iter()
        .filter(|span| text(&span["traceId"]) == trace_id)
        .map(|span| (text(&span["name"]), text(&span["spanId"]), text(&span["parentSpanId"])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_trace_continues_in_its_command_projections_and_the_sfu() {
    let (collector, received) = collector().await;
    let served = Served::start(&[
        ("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{collector}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let ayu = served.new_user("Ayu").await;
    let token = ayu.token.as_str();

    // The caller's own trace: rapat's spans must continue it.
    let trace_id = Uuid::new_v4().simple().to_string();
    let caller_span = &Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let room =
        served.post("/api/v1/rooms", Some(token), Some(&traceparent), json!({ "name": "Traced", "maxUsers": 5 })).await;
    let room = room["id"].as_str().expect("room id").to_string();

    let started = Instant::now();
    let wanted = ["request", "command", "projection.apply", "sfu.room_event"];
    loop {
        let spans = spans_of(&received, &trace_id);
        // The rooms and audit projections each apply the event; the audit trail's
        // batch lingers (no write waits for it), so its span may come a batch of
        // exports after the others.
        let applied = spans.iter().filter(|(name, _, _)| name == "projection.apply").count();
        if wanted.iter().all(|name| spans.iter().any(|(span, _, _)| span == name)) && applied >= 2 {
            let request = spans.iter().find(|(name, _, _)| name == "request").expect("request span");
            assert_eq!(request.2, caller_span, "the request span's parent is the caller's span");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "every span, the rooms and audit projections' each, within 20 s; so far: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A message on the WebSocket starts a trace of its own, which its command's
    // events carry on in the same way.
    served.post(&format!("/api/v1/rooms/{room}/join"), Some(token), None, json!({})).await;
    let url = format!("ws://{}/ws?roomId={room}&token={token}", served.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket upgrade");
    use futures::SinkExt;
    let mute = json!({ "type": "mute", "payload": { "muted": true } }).to_string();
    socket.send(tokio_tungstenite::tungstenite::Message::text(mute)).await.expect("send");
    let started = Instant::now();
    loop {
        let traces: Vec<String> =
            all_spans(&received).into_iter().filter(|(name, _)| name == "ws.message").map(|(_, trace)| trace).collect();
        let continued = traces.iter().any(|trace| {
            let spans = spans_of(&received, trace);
            spans.iter().any(|(name, _, _)| name == "projection.apply")
                && spans.iter().any(|(name, _, _)| name == "sfu.room_event")
        });
        if continued {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no ws.message trace reached the projections and the SFU: {traces:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every exported span as (name, trace id).
fn all_spans(received: &Mutex<Vec<Value>>) -> Vec<(String, String)> {
    exported(received).iter().map(|span| (text(&span["name"]), text(&span["traceId"]))).collect()
}
