//! Everything one fault run owns: its NATS (one server or a cluster), its
//! Postgres and its `rapat serve`. Nothing here touches the machine's shared
//! NATS or Postgres.

use std::path::PathBuf;

use rapat_testkit::{NatsCluster, NatsServer, PostgresServer};

use crate::rapat::Rapat;

pub enum Nats {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    pub fn url(&self) -> String {
        match self {
            Self::Single(server) => server.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// The single server; panics for a cluster.
    pub fn server(&mut self) -> &mut NatsServer {
        match self {
            Self::Single(server) => server,
            Self::Cluster(_) => panic!("this run has a NATS cluster, not one server"),
        }
    }

    /// The cluster; panics for a single server.
    pub fn cluster(&mut self) -> &mut NatsCluster {
        match self {
            Self::Cluster(cluster) => cluster,
            Self::Single(_) => panic!("this run has one NATS server, not a cluster"),
        }
    }
}

/// Fields drop in order: rapat goes before the services it uses.
pub struct Stack {
    pub rapat: Rapat,
    pub nats: Nats,
    pub postgres: PostgresServer,
    /// The run's scratch directory (rapat's log, the export, store copies).
    pub dir: PathBuf,
}

impl Stack {
    /// One NATS (fsync before ack when the binary can), one Postgres, rapat.
    pub async fn single() -> Self {
        let nats = NatsServer::start().await;
        assert!(
            nats.fsyncs_before_ack(),
            "the fault suite needs a NATS >= 2.10 that writes to disk before it acknowledges: \
             set RAPAT_TEST_NATS_SERVER (infra/services.sh nats-bin prints one)"
        );
        Self::around(Nats::Single(nats), &[]).await
    }

    /// A three-node NATS cluster and a stream with three replicas; rapat gets
    /// every node's URL.
    pub async fn cluster() -> Self {
        let cluster = NatsCluster::start(3).await;
        Self::around(Nats::Cluster(cluster), &[("RAPAT_STREAM_REPLICAS", "3")]).await
    }

    async fn around(nats: Nats, env: &[(&str, &str)]) -> Self {
        let (dir, postgres) = Self::scratch_and_postgres().await;
        let rapat = Rapat::start(&nats.url(), &database_url(&postgres), env, &dir).await;
        Self { rapat, nats, postgres, dir }
    }

    async fn scratch_and_postgres() -> (PathBuf, PostgresServer) {
        let dir = std::env::temp_dir().join(format!("rapat-faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("the run's directory can be created");
        (dir, PostgresServer::start().await)
    }

    pub fn database_url(&self) -> String {
        database_url(&self.postgres)
    }
}

fn database_url(postgres: &PostgresServer) -> String {
    format!("{}/rapat", postgres.url())
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::env::var_os("RAPAT_FAULTS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
