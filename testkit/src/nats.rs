//! nats-server processes owned by one test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long a (re)started server gets to report healthy JetStream.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The nats-server binary tests run (see the crate documentation).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RAPAT_TEST_NATS_SERVER").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// `(major, minor)` of a nats-server binary, from `--version`.
fn binary_version(binary: &Path) -> (u64, u64) {
    let output = Command::new(binary).arg("--version").output().expect("nats-server --version runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().find_map(|word| word.trim_start_matches('v').split_once('.'));
    let Some((major, rest)) = version else { return (0, 0) };
    let minor = rest.split('.').next().and_then(|minor| minor.parse().ok()).unwrap_or(0);
    (major.parse().unwrap_or(0), minor)
}

/// One nats-server with JetStream on its own ports and store directory. Killed
/// and its directory removed when dropped.
pub struct NatsServer {
    name: String,
    binary: PathBuf,
    port: u16,
    monitor_port: u16,
    dir: PathBuf,
    /// `cluster { ... }` block, for a node of a [`NatsCluster`].
    cluster_block: Option<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a single server and waits until its JetStream is healthy.
    pub async fn start() -> Self {
        let mut server = Self::configure(format!("rapat-test-{}", uuid::Uuid::new_v4().simple()), None);
        server.spawn();
        server.wait_healthy().await;
        server
    }

    fn configure(name: String, cluster_block: Option<String>) -> Self {
        let dir = std::env::temp_dir().join(&name);
        fs::create_dir_all(dir.join("jetstream")).expect("the test's NATS directory can be created");
        Self {
            name,
            binary: nats_server_binary(),
            port: free_port(),
            monitor_port: free_port(),
            dir,
            cluster_block,
            child: None,
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where JetStream keeps its files (`<dir>/jetstream`); streams live under
    /// `jetstream/$G/streams/<name>/msgs/*.blk`.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Whether this binary can write to disk before acknowledging (NATS ≥ 2.10),
    /// and so runs with `sync_interval: always`.
    pub fn fsyncs_before_ack(&self) -> bool {
        binary_version(&self.binary) >= (2, 10)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9: no flush, no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and store, and waits until its
    /// JetStream is healthy.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_healthy().await;
    }

    /// Starts a killed cluster node again and waits until it takes client
    /// connections. Whether it has caught up is the caller's to check: a node that
    /// rejoins while writes go on reports unhealthy until every stream and consumer
    /// it holds a replica of is current again, which can take a while.
    pub async fn rejoin(&mut self) {
        self.kill();
        self.spawn();
        let deadline = Instant::now() + READY_WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "NATS {} takes no connections after {READY_WITHIN:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the killed server without waiting for it (a cluster node waits for
    /// its peers).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let config = self.dir.join("nats.conf");
        fs::write(&config, self.config_text()).expect("the NATS configuration can be written");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .expect("the NATS log can be opened");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("{} starts: {error}", self.binary.display()));
        self.child = Some(child);
    }

    fn config_text(&self) -> String {
        let sync = if self.fsyncs_before_ack() { "  sync_interval: always\n" } else { "" };
        let cluster = self.cluster_block.as_deref().unwrap_or_default();
        format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{\n  store_dir: \"{store}\"\n{sync}}}\n{cluster}\n",
            name = self.name,
            port = self.port,
            monitor = self.monitor_port,
            store = self.store_dir().display(),
        )
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default()
    }

    /// Waits until `/healthz` says JetStream is up (streams recovered, and in a
    /// cluster a meta leader elected).
    pub async fn wait_healthy(&self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor_port);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "NATS {} is not healthy after {READY_WITHIN:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Three (or more) nats-servers clustered on loopback, each with its own store.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` clustered servers and waits until each is healthy.
    pub async fn start(size: usize) -> Self {
        let cluster_name = format!("rapat-test-{}", uuid::Uuid::new_v4().simple());
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports.iter().map(|port| format!("nats-route://127.0.0.1:{port}")).collect();
        let mut nodes: Vec<NatsServer> = route_ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                let block = format!(
                    "cluster {{\n  name: {cluster_name}\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}",
                    routes.join(", ")
                );
                NatsServer::configure(format!("{cluster_name}-n{index}"), Some(block))
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_healthy().await;
        }
        Self { nodes }
    }

    /// Every node's client URL, comma-separated, as NATS clients take them.
    pub fn url(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }
}
