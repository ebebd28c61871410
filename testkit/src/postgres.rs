//! A PostgreSQL server owned by one test: its own data directory (initdb), port
//! and Unix socket directory, trust authentication for the `postgres` superuser.
//!
//! Postgres refuses to run as root, so when the test runs as root every server
//! tool runs as the `postgres` system user (`runuser -u postgres`), in a
//! directory that user creates, as `infra/services.sh` does for its own cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::free_port;

/// How long `pg_ctl` waits for the server to accept connections after a start.
const READY_WITHIN_SECONDS: u32 = 60;

/// One Postgres server; stopped (immediately) and its directory removed when dropped.
pub struct PostgresServer {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
}

impl PostgresServer {
    /// Creates a cluster with initdb in a fresh temporary directory and starts it
    /// on a free loopback port.
    pub async fn start() -> Self {
        let as_postgres_user = running_as_root();
        // The postgres user must reach the directory: root's TMPDIR may be private.
        let parent = if as_postgres_user { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = parent.join(format!("rapat-test-pg-{}", uuid::Uuid::new_v4().simple()));
        let mut server = Self { bindir: postgres_bindir(), dir, port: free_port(), as_postgres_user, running: false };
        let data = server.data_dir();
        let initdb = server.tool("initdb");
        server
            .run(
                initdb,
                &["-D", path_str(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            )
            .await;
        server.restart().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>`, without a database: append
    /// `/<name>` for one.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// `pg_ctl -m immediate stop`: every backend is killed without a checkpoint,
    /// as a crash would; the next start recovers from the write-ahead log.
    pub async fn stop_immediate(&mut self) {
        let data = self.data_dir();
        let pg_ctl = self.tool("pg_ctl");
        self.run(pg_ctl, &["-D", path_str(&data), "-m", "immediate", "-w", "stop"]).await;
        self.running = false;
    }

    /// Starts the (stopped) server again on the same port and data, and waits
    /// until it accepts connections.
    pub async fn restart(&mut self) {
        if self.running {
            self.stop_immediate().await;
        }
        let data = self.data_dir();
        let log = self.dir.join("postgres.log");
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, path_str(&self.dir));
        let pg_ctl = self.tool("pg_ctl");
        let timeout = READY_WITHIN_SECONDS.to_string();
        self.run(pg_ctl, &["-D", path_str(&data), "-l", path_str(&log), "-w", "-t", &timeout, "-o", &options, "start"])
            .await;
        self.running = true;
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// Runs a server tool (as the postgres user when root) and panics with its
    /// output if it fails.
    async fn run(&self, program: PathBuf, args: &[&str]) {
        let mut command = if self.as_postgres_user {
            let mut command = tokio::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            tokio::process::Command::new(&program)
        };
        // The postgres user may not be able to enter the test's working directory.
        command.args(args).current_dir("/").stdin(Stdio::null());
        let output = tokio::time::timeout(Duration::from_secs(u64::from(READY_WITHIN_SECONDS) + 30), command.output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} did not finish", program.display()))
            .unwrap_or_else(|error| panic!("{} runs: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed ({}):\n{}{}\n{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let pg_ctl = self.tool("pg_ctl");
            let mut command = if self.as_postgres_user {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(&pg_ctl);
                command
            } else {
                std::process::Command::new(&pg_ctl)
            };
            let _ = command
                .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
                .current_dir("/")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Where initdb and pg_ctl are: `RAPAT_TEST_PG_BINDIR`, else next to a `pg_ctl`
/// on the PATH, else the newest Debian `/usr/lib/postgresql/<version>/bin`.
fn postgres_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAPAT_TEST_PG_BINDIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file());
    if let Some(dir) = on_path {
        return dir;
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    debian.pop().map(|(_, bin)| bin).expect("PostgreSQL server binaries (initdb, pg_ctl): set RAPAT_TEST_PG_BINDIR")
}
