//! `rapat serve` as a child process, on its own namespace and database, for
//! tests that use the binary the way an operator does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rapat_testkit::{NamespaceCleanup, TestDatabase};
pub use rapat_testkit::{nats_url, postgres_base_url};
use serde_json::{Value, json};
use uuid::Uuid;

/// A running `rapat serve`; killed, and its stream, buckets and database
/// removed, when dropped.
pub struct Served {
    child: std::process::Child,
    pub namespace: rapat_wire::Namespace,
    pub database: String,
    jwt_secret: String,
    /// `host:port` of the HTTP listener.
    pub address: String,
    /// Every line the server logged so far.
    log: Arc<Mutex<Vec<String>>>,
    // Dropped after `Drop::drop` has killed the server: they remove its
    // database, streams and buckets.
    _database: TestDatabase,
    _nats_names: NamespaceCleanup,
}

impl Served {
    /// Starts `rapat serve` with `env` added, and waits until it listens.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let namespace = rapat_testkit::unique_namespace();
        let test_database = TestDatabase::for_namespace(&namespace);
        let database = test_database.name.clone();
        // Every token of this server verifies, also after a restart (a random key
        // is only logged about).
        let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let log = Arc::new(Mutex::new(Vec::new()));
        let child = spawn(&namespace, &database, &jwt_secret, env, &log);
        // Owned from here on, so a timeout below still stops and cleans up.
        let mut served = Self {
            child: child.0,
            namespace: namespace.clone(),
            database,
            jwt_secret,
            address: String::new(),
            log,
            _database: test_database,
            _nats_names: NamespaceCleanup::new(namespace),
        };
        served.address = listening(child.1).await;
        served
    }

    /// Kills the server at once (SIGKILL: no drain, no cleanup), waits `down`,
    /// and starts it again on the same stream and database with `env`.
    pub async fn kill_and_restart(&mut self, down: Duration, env: &[(&str, &str)]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        let (child, address) = spawn(&self.namespace, &self.database, &self.jwt_secret, env, &self.log);
        self.child = child;
        self.address = listening(address).await;
    }

    /// The server's process id (to read its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("status").is_none()
    }

    /// Sends SIGTERM, as a service manager stopping the server does.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named `name` (`TERM`, `INT`, ...) to the server.
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits up to `limit` for the process to exit; `None` if it still runs.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("status") {
                return Some(status);
            }
            if started.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a line the server logged contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().expect("log").iter().any(|line| line.contains(text))
    }

    /// Everything the server logged, for a failure message.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs JSON, asserts success and returns the envelope's `data`.
    pub async fn post(&self, path: &str, token: Option<&str>, traceparent: Option<&str>, body: Value) -> Value {
        let mut request = reqwest::Client::new().post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        let body: Value = response.json().await.expect("json body");
        assert!(status.is_success(), "POST {path} answered {status}: {body}");
        body["data"].clone()
    }

    /// Registers a user with a fresh email and logs them in.
    pub async fn new_user(&self, name: &str) -> User {
        let email = format!("{}.{}@example.com", name.to_lowercase(), Uuid::new_v4().simple());
        let password = PASSWORD;
        let registered = self
            .post(
                "/api/v1/auth/register",
                None,
                None,
                json!({ "email": email, "password": password, "firstName": name, "lastName": "Tester" }),
            )
            .await;
        let login = self.post("/api/v1/auth/login", None, None, json!({ "email": email, "password": password })).await;
        User {
            id: registered["user"]["id"].as_str().expect("user id").into(),
            email,
            token: login["token"].as_str().expect("token").into(),
        }
    }
}

/// The password of every user `new_user` registers.
pub const PASSWORD: &str = "correct horse 1";

pub struct User {
    pub id: String,
    /// Registered with the password [`PASSWORD`].
    pub email: String,
    pub token: String,
}

/// Starts `rapat serve` on `namespace` and `database`; the receiver gets the
/// address it listens on. Its log lines go to `log`.
fn spawn(
    namespace: &rapat_wire::Namespace,
    database: &str,
    jwt_secret: &str,
    env: &[(&str, &str)],
    log: &Arc<Mutex<Vec<String>>>,
) -> (std::process::Child, tokio::sync::oneshot::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["serve", "--namespace", namespace.as_str(), "--nats-url", &nats_url(), "--http-addr", "127.0.0.1:0"])
        .args(["--database-url", &format!("{}/{database}", postgres_base_url())])
        .env("RUST_LOG", "info")
        .env("RAPAT_JWT_SECRET", jwt_secret)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rapat starts");
    // The log says where the API listens. Keep draining stderr afterwards: a
    // closed pipe would make the server's log writes fail.
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, address) = tokio::sync::oneshot::channel();
    let lines = Arc::clone(log);
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line.clone());
            }
            if let Some(rest) = line.split("REST API listening on http://").nth(1)
                && let Some(sender) = found.take()
            {
                let _ = sender.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    (child, address)
}

async fn listening(address: tokio::sync::oneshot::Receiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(60), address)
        .await
        .expect("rapat serve starts listening within a minute")
        .expect("rapat serve logs its address")
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
