//! What a test leaves on the shared services, removed when it is done: its own
//! database, and the streams and buckets of its own namespace.
//!
//! Both are guards: keep them in the test's fixture, and their `Drop` cleans up,
//! however the test ends (a panic included). Drop cannot await, so the cleanup
//! runs on a thread with a small runtime of its own.

use std::future::Future;

use rapat_wire::Namespace;
use sqlx::Connection as _;

use crate::shared::{nats_url, postgres_base_url};

/// A database of the test's own on the shared Postgres, named after the test's
/// namespace; dropped (`WITH (FORCE)`) with this guard. It is created by whoever
/// connects first (rapat's `connect` creates a missing database).
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    base_url: String,
}

impl TestDatabase {
    /// `rapat_test_<namespace>` on the shared Postgres.
    pub fn for_namespace(namespace: &Namespace) -> Self {
        Self::on(&postgres_base_url(), namespace)
    }

    /// `rapat_test_<namespace>` on the Postgres at `base_url` (no database name).
    pub fn on(base_url: &str, namespace: &Namespace) -> Self {
        Self { name: format!("rapat_test_{namespace}"), base_url: base_url.to_string() }
    }

    /// The URL to connect to this database with.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base_url, self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (format!("{}/postgres", self.base_url), self.name.clone());
        clean_up_on_a_thread(async move {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await;
                let _ = admin.close().await;
            }
        });
    }
}

/// Deletes every stream and bucket of a namespace from NATS when dropped: the
/// event and chat streams, the snapshot, presence and SFU placement buckets.
/// Names that were never created are skipped quietly.
#[derive(Debug)]
pub struct NamespaceCleanup {
    pub namespace: Namespace,
    nats_url: String,
}

impl NamespaceCleanup {
    /// For a namespace on the shared NATS.
    pub fn new(namespace: Namespace) -> Self {
        Self::on(&nats_url(), namespace)
    }

    /// For a namespace on the NATS at `url` (a test's own server or cluster).
    pub fn on(url: &str, namespace: Namespace) -> Self {
        Self { namespace, nats_url: url.to_string() }
    }
}

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        let (namespace, url) = (self.namespace.clone(), self.nats_url.clone());
        clean_up_on_a_thread(async move {
            let Ok(client) = async_nats::connect(url.as_str()).await else {
                return;
            };
            let jetstream = async_nats::jetstream::new(client);
            for stream in [namespace.events_stream(), namespace.chat_stream()] {
                let _ = jetstream.delete_stream(&stream).await;
            }
            for bucket in [namespace.snapshots_bucket(), namespace.presence_bucket(), namespace.sfu_rooms_bucket()] {
                let _ = jetstream.delete_key_value(&bucket).await;
            }
        });
    }
}

/// Runs `cleanup` to the end on a thread with its own runtime: `Drop` may run
/// inside a runtime (where blocking on one is refused) or outside any.
fn clean_up_on_a_thread(cleanup: impl Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(cleanup);
    });
    let _ = thread.join();
}
