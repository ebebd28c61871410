//! What every integration test needs from the machine's shared services, said once:
//! where they are, a namespace of the test's own, and waiting for a condition.

use std::time::{Duration, Instant};

use rapat_wire::Namespace;

/// The shared NATS (`NATS_URL`, default the local server).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// The shared Postgres (`DATABASE_URL`, default the local server's `rapat` database).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rapat".to_string())
}

/// The shared Postgres without a database name, to create a test's own database on.
pub fn postgres_base_url() -> String {
    let url = database_url();
    match url.rsplit_once('/') {
        Some((base, _database)) => base.to_string(),
        None => url,
    }
}

/// A namespace no other test uses: `t<random hex>`, so tests share NATS without
/// sharing a stream, subject, bucket or consumer.
pub fn unique_namespace() -> Namespace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Namespace::parse(&format!("t{}", &id[..20])).expect("hex digits make a valid namespace")
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], for a check that has to await (a query, a request).
pub async fn eventually_async<F: AsyncFn() -> bool>(what: &str, limit: Duration, done: F) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
