//! `rapat serve` as a child process on a fixed port, so that it can be killed
//! -9 and started again where the load driver expects it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace every fault run uses: its NATS and Postgres are its own.
pub const NAMESPACE: &str = "faults";

/// The NATS names of [`NAMESPACE`].
pub fn namespace() -> rapat_wire::Namespace {
    rapat_wire::Namespace::parse(NAMESPACE).expect("a valid namespace")
}

pub struct Rapat {
    child: Option<Child>,
    port: u16,
    nats_url: String,
    database_url: String,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Rapat {
    /// Starts `rapat serve` with `env` added and waits until it answers `/healthz`.
    pub async fn start(nats_url: &str, database_url: &str, env: &[(&str, &str)], dir: &Path) -> Self {
        match Self::try_start(nats_url, database_url, env, dir).await {
            Ok(rapat) => rapat,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// [`Rapat::start`], or why rapat did not come up.
    pub async fn try_start(
        nats_url: &str,
        database_url: &str,
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Result<Self, String> {
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        // One secret across restarts: tokens issued before a kill still verify after.
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        env.push(("RAPAT_JWT_SECRET".into(), secret));
        let mut rapat = Self {
            child: None,
            port: rapat_testkit::free_port(),
            nats_url: nats_url.to_string(),
            database_url: database_url.to_string(),
            env,
            log: dir.join("rapat.log"),
        };
        rapat.spawn();
        rapat.wait_healthy().await?;
        Ok(rapat)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "rapat is already running");
        let log = File::options().create(true).append(true).open(&self.log).expect("the rapat log can be opened");
        let child = Command::new(env!("CARGO_BIN_EXE_rapat"))
            .args(["serve", "--namespace", NAMESPACE, "--nats-url", &self.nats_url])
            .args(["--database-url", &self.database_url, "--http-addr", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0")
            // The load comes from one address and creates many rooms: no limits in the way.
            .env("RAPAT_AUTH_RATE_BURST", "1000000")
            .env("RAPAT_AUTH_RATE_PER_MINUTE", "1000000")
            .env("RAPAT_ROOMS_PER_USER_PER_HOUR", "0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rapat starts");
        self.child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed process again and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        if let Err(failure) = self.wait_healthy().await {
            panic!("{failure}");
        }
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        let url = format!("{}/healthz", self.base_url());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(exited) = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("rapat exited ({exited}) while starting:\n{}", self.log_tail(40)));
            }
            if Instant::now() >= deadline {
                return Err(format!("rapat did not answer /healthz within 90 s:\n{}", self.log_tail(40)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `lines` lines rapat logged, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `rapat events export` of the whole stream into `output`, as an operator runs it.
    pub async fn export(&self, output: &Path) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rapat"));
        command
            .args(["events", "export", "--namespace", NAMESPACE, "--nats-url", &self.nats_url])
            .args(["--database-url", &self.database_url])
            .arg("--output")
            .arg(output)
            .stdin(Stdio::null());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the export task runs")
            .expect("rapat events export runs");
        assert!(output.status.success(), "rapat events export failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Rapat {
    fn drop(&mut self) {
        self.kill();
    }
}
