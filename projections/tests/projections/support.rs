//! `TestEnv`: a database and a stream namespace of its own per test, removed when
//! dropped, and helpers that put domain events into the stream the way the write
//! side stores them (without depending on the write side).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use cqrs_es::DomainEvent;
use rapat_domain::envelope::{StoredCommit, StoredEvent, schema_version_of, split_event};
use rapat_projections::projector::load_checkpoint;
use rapat_projections::{Projection, ProjectorConfig, run_all};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use rapat_testkit::nats_url;
use rapat_testkit::{NamespaceCleanup, TestDatabase, unique_namespace};

/// Postgres keeps microseconds: events stamped with more would not compare equal
/// to what the read model gives back.
pub fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::microseconds(1)).expect("truncates")
}

pub struct TestEnv {
    pub database_url: String,
    pub pool: PgPool,
    pub jetstream: jetstream::Context,
    pub config: ProjectorConfig,
    versions: Mutex<HashMap<(String, String), u64>>,
    last_sequences: Mutex<HashMap<String, u64>>,
    // Dropped with the environment: the database, and (unless the environment
    // reads another one's stream) the stream.
    _database: TestDatabase,
    _stream: Option<NamespaceCleanup>,
}

/// Logs to the test output when `TEST_LOG` is set (e.g. `TEST_LOG=debug`).
fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::on_nats(&nats_url()).await
    }

    /// An environment whose stream lives on the NATS at `url` (a test's own server).
    pub async fn on_nats(url: &str) -> Self {
        init_tracing();
        let namespace = unique_namespace();
        let database = TestDatabase::for_namespace(&namespace);
        let database_url = database.url();
        let pool = rapat_projections::connect(&database_url).await.expect("Postgres must be running");

        let client = async_nats::connect(url).await.expect("NATS with JetStream must be running");
        let jetstream = jetstream::new(client);
        let mut config = ProjectorConfig::for_namespace(namespace.clone());
        // Tests want takeovers and idle checks to be quick.
        config.standby_retry = Duration::from_millis(100);
        config.idle_check = Duration::from_millis(100);
        config.max_backoff = Duration::from_millis(500);
        jetstream
            .create_stream(stream::Config {
                name: config.namespace.events_stream(),
                subjects: vec![config.namespace.all_event_subjects()],
                // Whatever a crashed test leaves behind expires on its own.
                max_age: Duration::from_secs(3600),
                ..Default::default()
            })
            .await
            .expect("creates the test stream");
        Self {
            database_url,
            pool,
            jetstream,
            config,
            versions: Mutex::new(HashMap::new()),
            last_sequences: Mutex::new(HashMap::new()),
            _database: database,
            _stream: Some(NamespaceCleanup::on(url, namespace)),
        }
    }

    /// A fresh database of its own reading this environment's stream: what building
    /// every read model from scratch gives. It keeps this environment's namespace, and
    /// so its consumer names: run its projector only while this environment's is
    /// stopped (each recreates the consumers from its own checkpoint).
    pub async fn fresh_database_on_same_stream(&self) -> TestEnv {
        // Only the database is its own.
        let database = TestDatabase::for_namespace(&unique_namespace());
        let database_url = database.url();
        let pool = rapat_projections::connect(&database_url).await.expect("Postgres must be running");
        Self {
            database_url,
            pool,
            jetstream: self.jetstream.clone(),
            config: self.config.clone(),
            versions: Mutex::new(HashMap::new()),
            last_sequences: Mutex::new(self.last_sequences.lock().expect("not poisoned").clone()),
            _database: database,
            _stream: None,
        }
    }

    /// Another pool on the same database: what a second process would have.
    pub async fn second_pool(&self) -> PgPool {
        rapat_projections::connect(&self.database_url).await.expect("connects again")
    }

    /// Appends one command's typed events to an aggregate, numbered after the ones
    /// this environment appended before. Returns the stream sequence.
    pub async fn append<E: Serialize + DomainEvent>(&self, aggregate_type: &str, id: Uuid, events: &[E]) -> u64 {
        self.append_at(aggregate_type, id, events, now()).await
    }

    /// Appends events given as `(event type, schema version, payload)`.
    pub async fn append_raw(&self, aggregate_type: &str, id: Uuid, events: Vec<(String, u32, Value)>) -> u64 {
        self.append_raw_at(aggregate_type, id, events, now()).await
    }

    /// [`Self::append`] with the events stamped `timestamp`.
    pub async fn append_at<E: Serialize + DomainEvent>(
        &self,
        aggregate_type: &str,
        id: Uuid,
        events: &[E],
        timestamp: DateTime<Utc>,
    ) -> u64 {
        let raw: Vec<(String, u32, Value)> = events
            .iter()
            .map(|event| {
                let (event_type, payload) = split_event(event).expect("a struct variant");
                (event_type, schema_version_of(event).expect("a numeric version"), payload)
            })
            .collect();
        self.append_raw_at(aggregate_type, id, raw, timestamp).await
    }

    /// [`Self::append_raw`] with the events stamped `timestamp`.
    pub async fn append_raw_at(
        &self,
        aggregate_type: &str,
        id: Uuid,
        events: Vec<(String, u32, Value)>,
        timestamp: DateTime<Utc>,
    ) -> u64 {
        let aggregate_id = id.to_string();
        let command_id = Uuid::new_v4().to_string();
        let first_version = {
            let mut versions = self.versions.lock().expect("not poisoned");
            let version = versions.entry((aggregate_type.to_owned(), aggregate_id.clone())).or_insert(0);
            let first = *version + 1;
            *version += events.len() as u64;
            first
        };
        let events = events
            .into_iter()
            .enumerate()
            .map(|(offset, (event_type, schema_version, payload))| StoredEvent {
                event_id: Uuid::new_v4(),
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.clone(),
                aggregate_version: first_version + offset as u64,
                event_type,
                schema_version,
                timestamp,
                actor: Some(aggregate_id.clone()),
                correlation_id: Some(command_id.clone()),
                command_id: command_id.clone(),
                payload,
            })
            .collect();
        let body = serde_json::to_vec(&StoredCommit { events }).expect("serialises");
        // As the write side stores a command: its id is the message id.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", command_id.as_str());
        self.publish_with(aggregate_type, &aggregate_id, body, headers).await
    }

    /// Publishes any body on an aggregate's subject. Returns the stream sequence.
    pub async fn publish(&self, aggregate_type: &str, aggregate_id: &str, body: Vec<u8>) -> u64 {
        self.publish_with(aggregate_type, aggregate_id, body, async_nats::HeaderMap::new()).await
    }

    async fn publish_with(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        body: Vec<u8>,
        headers: async_nats::HeaderMap,
    ) -> u64 {
        let subject = self.config.namespace.event_subject(aggregate_type, aggregate_id);
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publishes")
            .await
            .expect("stored");
        let mut last = self.last_sequences.lock().expect("not poisoned");
        last.insert(aggregate_type.to_owned(), ack.sequence);
        last.insert(String::new(), ack.sequence);
        ack.sequence
    }

    /// The stream sequence each projection must reach to have seen everything
    /// published so far.
    pub fn targets(&self) -> Vec<(Projection, u64)> {
        let last = self.last_sequences.lock().expect("not poisoned");
        Projection::ALL
            .into_iter()
            .map(|projection| {
                let key = projection.aggregate_type().unwrap_or("");
                (projection, last.get(key).copied().unwrap_or(0))
            })
            .collect()
    }

    /// Polls the checkpoints until every projection has reached what was published.
    pub async fn wait_caught_up(&self, deadline: Duration) {
        let started = Instant::now();
        for (projection, target) in self.targets() {
            loop {
                let checkpoint = load_checkpoint(&self.pool, projection).await.expect("reads checkpoint");
                if checkpoint.last_sequence >= target {
                    break;
                }
                assert!(
                    started.elapsed() < deadline,
                    "{projection} at {} has not reached {target} in {deadline:?}",
                    checkpoint.last_sequence
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Runs every projection in the background, as one projector process would.
    pub fn spawn_projector(&self, pool: PgPool) -> Projector {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_all(pool, self.jetstream.clone(), self.config.clone(), shutdown.clone()));
        Projector { shutdown, task }
    }

    /// Every row of `table`, as JSON, in a stable order.
    pub async fn table(&self, table: &str, order_by: &str) -> Value {
        let sql = format!("SELECT coalesce(json_agg(t ORDER BY {order_by}), '[]') FROM {table} t");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await.expect("reads table")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("counts")
    }
}

pub struct Projector {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), rapat_projections::ProjectorError>>,
}

impl Projector {
    /// A clean stop: the current batch finishes and the locks are released.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = self.task.await.expect("projector task did not panic");
        result.expect("projector stopped cleanly");
    }

    /// A crash: the task is dropped wherever it is, as if the process died.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
