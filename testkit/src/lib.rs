//! Fixtures for rapat's tests: the shared services' addresses, a namespace of
//! the test's own and `eventually`; guards that remove a test's own database
//! ([`TestDatabase`]) and its namespace's streams and buckets
//! ([`NamespaceCleanup`]) when dropped; and for tests that break things on purpose:
//!
//! - [`NatsServer`] / [`NatsCluster`]: nats-server processes of the test's own,
//!   on free loopback ports with their own store directories, to kill -9,
//!   restart, stop for a while or damage on disk. The machine's shared NATS is
//!   never touched.
//! - [`PostgresServer`]: a Postgres cluster of the test's own (initdb in a
//!   temporary directory, a free port), to stop immediately and start again.
//! - [`TcpProxy`]: a loopback TCP proxy that a test can cut (every connection
//!   dropped, new ones refused) and restore, to take a backend away from one
//!   process without stopping it for everyone.
//!
//! The nats-server binary is `RAPAT_TEST_NATS_SERVER` when set (`infra/run-tests.sh`
//! sets it to the NATS ≥ 2.10 that `infra/services.sh nats-bin` provides), else
//! `nats-server` on the PATH, else `/usr/sbin/nats-server`.

mod cleanup;
mod nats;
mod postgres;
mod proxy;
mod shared;

pub use cleanup::{NamespaceCleanup, TestDatabase};
pub use nats::{NatsCluster, NatsServer};
pub use postgres::PostgresServer;
pub use proxy::TcpProxy;
pub use shared::{database_url, eventually, eventually_async, nats_url, postgres_base_url, unique_namespace};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the loopback interface gives out ports")
}
