//! The `rapat` binary as an operator runs it, against the real NATS and Postgres.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Served, nats_url};

#[tokio::test]
async fn serve_creates_its_stream_and_database_and_answers_http() {
    let mut serve = Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0")]).await;

    let health = reqwest::get(serve.url("/readyz")).await.expect("answers");
    assert_eq!(health.status(), 200, "ready: NATS and Postgres are up");
    let unknown = reqwest::get(serve.url("/api/v1/no-such-thing")).await.expect("answers");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["success"], serde_json::json!(false));

    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("NATS answers"));
    let stream_name = format!("{}_EVENTS", serve.namespace.to_uppercase());
    let mut stream = jetstream.get_stream(&stream_name).await.expect("serve created the event stream");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.subjects, vec![format!("{}.events.>", serve.namespace)]);
    assert!(info.config.deny_delete && info.config.deny_purge, "acknowledged events cannot be deleted");
    assert!(serve.is_running(), "rapat serve keeps running");
}

#[test]
fn serve_without_nats_exits_with_a_clear_message() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["serve", "--nats-url", "nats://127.0.0.1:1"])
        .output()
        .expect("rapat runs");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to NATS at nats://127.0.0.1:1"), "stderr was: {stderr}");
}

#[test]
fn replay_is_rebuild_by_another_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat")).args(["replay", "nonsense"]).output().expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown projection \"nonsense\""), "stderr was: {stderr}");
}

#[test]
fn rebuild_refuses_an_unknown_projection() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat")).args(["rebuild", "nonsense"]).output().expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown projection \"nonsense\""), "stderr was: {stderr}");
    assert!(stderr.contains("rooms"), "lists the known projections: {stderr}");
}
