//! A whole rapat for a benchmark (write side, projector, gateway) on the
//! machine's NATS and Postgres, with a stream and a database of its own that
//! `stop` removes. Each bench uses the parts it needs.
#![allow(dead_code)]

use anyhow::Context as _;
use std::net::SocketAddr;
use std::time::Duration;

use rapat_commands::EventStoreConfig;
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::services::{HashingError, PasswordHasher};
use rapat_gateway::{Application, Backends, GatewayConfig};
use rapat_projections::{ProjectionPositions, ProjectorConfig};
use rapat_wire::Namespace;
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The access tokens' signing secret of every bench stack.
pub const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret";

#[derive(Clone)]
pub struct Stack {
    pub address: SocketAddr,
    pub db: PgPool,
    pub nats: async_nats::Client,
    pub nats_url: String,
    pub namespace: Namespace,
    pub event_store: EventStoreConfig,
    database: String,
    postgres: String,
    shutdown: CancellationToken,
}

impl Stack {
    /// Starts it on `NATS_URL` and `DATABASE_URL`'s server; `configure` adjusts
    /// the gateway's settings first.
    pub async fn start(configure: impl FnOnce(&mut GatewayConfig)) -> anyhow::Result<Self> {
        let nats_url = env_or("NATS_URL", "nats://127.0.0.1:4222");
        let database_url = env_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rapat");
        let postgres = database_url.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap_or(database_url);
        let namespace = Namespace::parse(&format!("bench{}", Uuid::new_v4().simple()))?;
        let mut event_store = EventStoreConfig::for_namespace(namespace.clone());
        event_store.max_age = Some(Duration::from_secs(3600));

        let nats = rapat_commands::connect(&nats_url).await?;
        let jetstream = async_nats::jetstream::new(nats.clone());
        rapat_commands::ensure_event_store(&jetstream, &event_store).await?;
        let database = format!("rapat_{namespace}");
        let db = rapat_projections::connect(&format!("{postgres}/{database}")).await?;
        let positions = ProjectionPositions::start(db.clone());
        let shutdown = CancellationToken::new();
        let mut projector = ProjectorConfig::for_namespace(namespace.clone());
        // The server's setting, so a run can try another linger; a value the server
        // would refuse (not a number, or over its maximum) stops the run rather
        // than being measured.
        if let Ok(linger) = std::env::var("RAPAT_PROJECTION_LINGER_MS") {
            let ms: u64 = linger.parse().context("RAPAT_PROJECTION_LINGER_MS")?;
            let max = ProjectorConfig::MAX_LINGER_MS;
            anyhow::ensure!(ms <= max, "RAPAT_PROJECTION_LINGER_MS: at most {max}, as `rapat` takes it");
            projector.linger = Duration::from_millis(ms);
        }
        tokio::spawn(rapat_projections::run_all(db.clone(), jetstream, projector, shutdown.child_token()));

        let mut config = GatewayConfig::new("127.0.0.1:0".parse()?, SECRET.to_vec());
        configure(&mut config);
        let backends = Backends {
            nats: nats.clone(),
            event_store: event_store.clone(),
            db: db.clone(),
            positions,
            metrics: None,
            shutdown: rapat_gateway::Shutdown::new(shutdown.child_token()),
        };
        let application = Application::build(config, backends).await?;
        let address = application.address();
        tokio::spawn(application.run_until_stopped());
        Ok(Self { address, db, nats, nats_url, namespace, event_store, database, postgres, shutdown })
    }

    /// Stops the app and removes its database, streams and buckets.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.db.close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", self.postgres)).await {
            let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
        }
        let jetstream = async_nats::jetstream::new(self.nats);
        let _ = jetstream.delete_stream(self.namespace.events_stream()).await;
        let _ = jetstream.delete_stream(self.namespace.chat_stream()).await;
        let _ = jetstream.delete_key_value(self.namespace.snapshots_bucket()).await;
        let _ = jetstream.delete_key_value(self.namespace.presence_bucket()).await;
    }
}

impl Stack {
    /// A token cancelled when the stack stops, for tasks a bench starts beside it.
    pub fn stopping(&self) -> CancellationToken {
        self.shutdown.child_token()
    }
}

/// Setup commands run as the system: nothing in a bench hashes a password.
pub struct NoPasswords;

#[async_trait::async_trait]
impl PasswordHasher for NoPasswords {
    async fn hash(&self, _: &Password) -> Result<PasswordHash, HashingError> {
        Err(HashingError::Failed("the bench hashes no passwords".into()))
    }

    async fn verify(&self, _: &Password, _: &PasswordHash) -> Result<bool, HashingError> {
        Err(HashingError::Failed("the bench checks no passwords".into()))
    }
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
