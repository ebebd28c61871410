//! The `rapat` binary as an operator runs it, against the real NATS and Postgres.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

fn postgres_base_url() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rapat".to_string());
    url.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap_or(url)
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
async fn serve_creates_its_stream_and_database_and_answers_http() {
    let namespace = format!("t{}", Uuid::new_v4().simple());
    let database = format!("rapat_test_{namespace}");
    let stream_name = format!("{}_EVENTS", namespace.to_uppercase());
    let mut serve = Running(
        Command::new(env!("CARGO_BIN_EXE_rapat"))
            .args(["serve", "--namespace", &namespace, "--nats-url", &nats_url(), "--http-addr", "127.0.0.1:0"])
            .args(["--database-url", &format!("{}/{database}", postgres_base_url())])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rapat starts"),
    );

    // The log says where the API listens. Keep draining stderr afterwards: a
    // closed pipe would make the server's log writes fail.
    let stderr = serve.0.stderr.take().expect("stderr is piped");
    let (found, address) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("REST API listening on http://").nth(1)
                && let Some(sender) = found.take()
            {
                let _ = sender.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let address = tokio::time::timeout(Duration::from_secs(60), address)
        .await
        .expect("rapat serve starts listening within a minute")
        .expect("rapat serve logs its address");

    let health = reqwest::get(format!("http://{address}/readyz")).await.expect("answers");
    assert_eq!(health.status(), 200, "ready: NATS and Postgres are up");
    let unknown = reqwest::get(format!("http://{address}/api/v1/no-such-thing")).await.expect("answers");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["success"], serde_json::json!(false));

    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("NATS answers"));
    let mut stream = jetstream.get_stream(&stream_name).await.expect("serve created the event stream");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.subjects, vec![format!("{namespace}.events.>")]);
    assert!(info.config.deny_delete && info.config.deny_purge, "acknowledged events cannot be deleted");
    assert!(serve.0.try_wait().expect("status").is_none(), "rapat serve keeps running");

    drop(serve);
    let _ = jetstream.delete_stream(&stream_name).await;
    let prefix = namespace.to_uppercase();
    let _ = jetstream.delete_key_value(format!("{prefix}_SNAPSHOTS")).await;
    let _ = jetstream.delete_key_value(format!("{prefix}_PRESENCE")).await;
    drop_database(&database).await;
}

async fn drop_database(database: &str) {
    use sqlx::Connection as _;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_base_url())).await {
        let statement = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await;
    }
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
fn rebuild_refuses_an_unknown_projection() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat")).args(["rebuild", "nonsense"]).output().expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown projection \"nonsense\""), "stderr was: {stderr}");
    assert!(stderr.contains("rooms"), "lists the known projections: {stderr}");
}
