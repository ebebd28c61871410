//! The `rapat` binary as an operator runs it, against the real NATS server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// Kills the child when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_creates_the_event_stream_and_keeps_running() {
    let namespace = format!("t{}", Uuid::new_v4().simple());
    let stream_name = format!("{}_EVENTS", namespace.to_uppercase());
    let mut serve = Running(
        Command::new(env!("CARGO_BIN_EXE_rapat"))
            .args(["serve", "--namespace", &namespace, "--nats-url", &nats_url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rapat starts"),
    );

    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("NATS answers"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        if let Ok(mut stream) = jetstream.get_stream(&stream_name).await {
            break stream.info().await.expect("stream info").clone();
        }
        assert!(Instant::now() < deadline, "rapat serve did not create {stream_name}");
        assert!(serve.0.try_wait().expect("status").is_none(), "rapat serve exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info.config.subjects, vec![format!("{namespace}.events.>")]);
    assert!(info.config.deny_delete && info.config.deny_purge, "acknowledged events cannot be deleted");
    assert!(jetstream.get_key_value(format!("{}_SNAPSHOTS", namespace.to_uppercase())).await.is_ok());
    assert!(serve.0.try_wait().expect("status").is_none(), "rapat serve keeps running");

    drop(serve);
    let _ = jetstream.delete_stream(&stream_name).await;
    let _ = jetstream.delete_key_value(format!("{}_SNAPSHOTS", namespace.to_uppercase())).await;
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
