//! What both projection benchmarks start from: the servers from `NATS_URL` and
//! `DATABASE_URL`, and a stream and a database of the run's own, removed after.

use std::time::Duration;

use async_nats::jetstream;
use rapat_projections::ProjectorConfig;
use rapat_wire::Namespace;
use sqlx::Connection;
use uuid::Uuid;

/// `NATS_URL`, and `DATABASE_URL` without its database name.
pub fn service_urls() -> (String, String) {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rapat".into());
    let base_url = database_url.rsplit_once('/').map_or(database_url.clone(), |(base, _)| base.to_string());
    (nats_url, base_url)
}

/// A stream (kept for an hour at most) and a database name of their own.
pub struct Scratch {
    pub config: ProjectorConfig,
    pub database: String,
    base_url: String,
}

impl Scratch {
    /// Creates the stream; the database is created by whoever connects first
    /// (`rapat_projections::connect` creates and migrates it).
    pub async fn create(jetstream: &jetstream::Context, base_url: &str) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string();
        let config = ProjectorConfig::for_namespace(Namespace::parse(&format!("bench{id}"))?);
        jetstream
            .create_stream(jetstream::stream::Config {
                name: config.namespace.events_stream(),
                subjects: vec![config.namespace.all_event_subjects()],
                max_age: Duration::from_secs(3600),
                ..Default::default()
            })
            .await?;
        Ok(Self { config, database: format!("rapat_bench_{id}"), base_url: base_url.to_string() })
    }

    pub fn database_url(&self) -> String {
        format!("{}/{}", self.base_url, self.database)
    }

    /// A connection to the server's `postgres` database, for statements about this one.
    pub async fn admin(&self) -> anyhow::Result<sqlx::PgConnection> {
        Ok(sqlx::PgConnection::connect(&format!("{}/postgres", self.base_url)).await?)
    }

    /// Deletes the stream and drops the database.
    pub async fn remove(self, jetstream: &jetstream::Context) -> anyhow::Result<()> {
        let _ = jetstream.delete_stream(self.config.namespace.events_stream()).await;
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut self.admin().await?).await?;
        Ok(())
    }
}
