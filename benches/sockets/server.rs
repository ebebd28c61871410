//! The coordinator: starts the servers and the client processes, orders the
//! phases, reads the servers' memory and CPU from /proc, and prints the table.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use futures::future::try_join_all;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use rapat_testkit::{NamespaceCleanup, TestDatabase};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

use crate::{MessageKind, Order, ROOM_SIZE, Report, RoomSockets};

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";
const PASSWORD: &str = "correct horse 1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Rapat,
    Bare,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Rapat => "rapat serve",
            Self::Bare => "bare axum",
        }
    }
}

pub struct Phases {
    pub seconds: f64,
    pub chat_rate: f64,
    pub max_rate: f64,
    pub media_rate: f64,
}

pub struct Coordinator {
    rapat: Child,
    address: String,
    http: reqwest::Client,
    // Guards: dropping them removes the database and the streams.
    _database: TestDatabase,
    _namespace: NamespaceCleanup,
}

impl Coordinator {
    pub async fn start(sockets: usize) -> anyhow::Result<Self> {
        let namespace = rapat_testkit::unique_namespace();
        let database = TestDatabase::for_namespace(&namespace);
        let limit = (sockets * 2 + 1_000).to_string();
        let mut rapat = Command::new(env!("CARGO_BIN_EXE_rapat"))
            .args(["serve", "--namespace", namespace.as_str(), "--nats-url", &rapat_testkit::nats_url()])
            .args(["--http-addr", "127.0.0.1:0", "--database-url", &database.url()])
            .env("RUST_LOG", "warn,rapat=info,rapat_gateway=info")
            .env("NO_COLOR", "1")
            .env("RAPAT_JWT_SECRET", JWT_SECRET)
            .env("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0")
            .env("RAPAT_HTTP_MAX_CONNECTIONS", &limit)
            .env("RAPAT_WS_MAX_SOCKETS_PER_USER", &limit)
            .env("RAPAT_ROOMS_PER_USER_PER_HOUR", "1000000")
            .env("RAPAT_AUTH_RATE_BURST", "100000")
            .env("RAPAT_AUTH_RATE_PER_MINUTE", "100000")
            .env("RAPAT_ACCESS_TTL_SECONDS", "7200")
            .env("RAPAT_REQUEST_DEADLINE_MS", "20000")
            // What is measured is fan-out, not the per-socket limits: a client's
            // timer can bunch one socket's messages together on a busy machine.
            .env("RAPAT_WS_RATE_CHAT", "1000/1s")
            .env("RAPAT_WS_RATE_MEDIA", "1000/1s")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start rapat serve")?;
        let stderr = rapat.stderr.take().context("stderr is piped")?;
        let (found, listening) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("REST API listening on http://").nth(1)
                    && let Some(sender) = found.take()
                {
                    let _ = sender.send(rest.split('/').next().unwrap_or_default().to_string());
                } else if line.contains("ERROR") {
                    eprintln!("rapat: {line}");
                }
            }
        });
        let address = tokio::time::timeout(Duration::from_secs(60), listening)
            .await
            .context("rapat serve did not start listening within a minute")??;
        Ok(Self {
            rapat,
            address,
            http: reqwest::Client::new(),
            _database: database,
            _namespace: NamespaceCleanup::new(namespace),
        })
    }

    pub async fn stop(mut self) {
        let _ = self.rapat.kill();
        let _ = self.rapat.wait();
    }

    /// Set-up requests; a 503 (a busy machine) is tried again a few times.
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut attempts = 0;
        loop {
            let mut request = self.http.post(format!("http://{}/api/v1{path}", self.address)).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status();
            let answer: Value = response.json().await?;
            attempts += 1;
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && attempts < 5 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {answer}");
            return Ok(answer);
        }
    }

    /// Logs in and returns the access token. On a busy machine the read models can
    /// lag behind the request deadline: the account is not found yet (401), or the
    /// session is stored but not yet visible (202, no token); both are tried again.
    async fn login(&self, credentials: &Value) -> anyhow::Result<String> {
        let url = format!("http://{}/api/v1/auth/login", self.address);
        let mut attempts = 0;
        loop {
            let response = self.http.post(&url).json(credentials).send().await?;
            let status = response.status();
            let answer: Value = response.json().await?;
            if let Some(token) = answer["data"]["token"].as_str() {
                return Ok(token.to_string());
            }
            attempts += 1;
            anyhow::ensure!(attempts < 30, "login answered {status} and no token: {answer}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Creates a room and returns its id. A 202 (stored, not yet visible: a busy
    /// machine) names no id, so another room is made; the first stays empty.
    async fn create_room(&self, host: &str, body: &Value) -> anyhow::Result<String> {
        for _ in 0..10 {
            let created = self.post("/rooms", Some(host), body.clone()).await?;
            if let Some(id) = created["data"]["id"].as_str() {
                return Ok(id.to_string());
            }
        }
        anyhow::bail!("creating a room answered no id ten times")
    }

    /// Registers `users`, creates `rooms` and joins ten users to each; the host of
    /// a room is its first member.
    pub async fn populate(&self, users: usize, rooms: usize) -> anyhow::Result<Vec<RoomSockets>> {
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(16));
        let tokens = try_join_all((0..users).map(|n| {
            let gate = Arc::clone(&gate);
            async move {
                let _permit = gate.acquire().await?;
                let email = format!("bench{n}.{}@example.com", uuid::Uuid::new_v4().simple());
                let credentials = json!({ "email": email, "password": PASSWORD });
                let mut register = credentials.clone();
                register["firstName"] = json!(format!("User{n}"));
                register["lastName"] = json!("Bench");
                self.post("/auth/register", None, register).await?;
                self.login(&credentials).await
            }
        }))
        .await?;
        let gate = Arc::new(Semaphore::new(64));
        let rooms = try_join_all((0..rooms).map(|room| {
            let gate = Arc::clone(&gate);
            let members: Vec<String> = (0..ROOM_SIZE).map(|k| tokens[(room * ROOM_SIZE + k) % users].clone()).collect();
            async move {
                let _permit = gate.acquire().await?;
                let body = json!({ "name": format!("Bench room {room}"), "maxUsers": ROOM_SIZE });
                let room_id = self.create_room(&members[0], &body).await?;
                for token in &members {
                    self.post(&format!("/rooms/{room_id}/join"), Some(token), json!({})).await?;
                }
                anyhow::Ok(RoomSockets { room_id, tokens: members })
            }
        }))
        .await?;
        println!("set up {} users and {} rooms in {:.1} s\n", users, rooms.len(), started.elapsed().as_secs_f64());
        Ok(rooms)
    }

    pub async fn measure(
        &self,
        target: Target,
        rooms: &[RoomSockets],
        clients: usize,
        phases: &Phases,
    ) -> anyhow::Result<Measured> {
        let mut bare = None;
        let (address, pid) = match target {
            Target::Rapat => (self.address.clone(), self.rapat.id()),
            Target::Bare => {
                let (child, address) = start_bare()?;
                let pid = child.id();
                bare = Some(child);
                (address, pid)
            }
        };
        let result = measure_on(target, &address, pid, rooms, clients, phases).await;
        if let Some(mut child) = bare {
            let _ = child.kill();
            let _ = child.wait();
        }
        result
    }
}

fn start_bare() -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env("BENCH_ROLE", "bare")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the bare server")?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line.trim().strip_prefix("listening on ").context("the bare server says where it listens")?;
    Ok((child, address.to_string()))
}

/// One client process, spoken to in JSON lines.
struct ClientProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl ClientProcess {
    fn start() -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env("BENCH_ROLE", "client")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start a client process")?;
        let stdin = child.stdin.take().context("stdin is piped")?;
        let stdout = tokio::io::BufReader::new(child.stdout.take().context("stdout is piped")?).lines();
        Ok(Self { child, stdin, stdout })
    }

    async fn order(&mut self, order: &Order) -> anyhow::Result<Report> {
        let mut line = serde_json::to_vec(order)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        let answer = self.stdout.next_line().await?.context("a client process ended")?;
        let report: Report = serde_json::from_str(&answer)?;
        if let Some(error) = &report.error {
            anyhow::bail!("a client process failed: {error}");
        }
        Ok(report)
    }
}

async fn order_all(clients: &mut [ClientProcess], order: impl Fn(usize) -> Order) -> anyhow::Result<Vec<Report>> {
    try_join_all(clients.iter_mut().enumerate().map(|(n, client)| {
        let order = order(n);
        async move { client.order(&order).await }
    }))
    .await
}

pub struct Measured {
    target: Target,
    sockets: usize,
    failed: usize,
    connect_seconds: f64,
    kb_per_socket: f64,
    idle_cores: f64,
    phases: Vec<(String, PhaseResult)>,
}

struct PhaseResult {
    sent_per_second: f64,
    delivered_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    closed: usize,
    cores: f64,
}

async fn measure_on(
    target: Target,
    address: &str,
    pid: u32,
    rooms: &[RoomSockets],
    count: usize,
    phases: &Phases,
) -> anyhow::Result<Measured> {
    let mut clients = (0..count).map(|_| ClientProcess::start()).collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kb(pid)?;
    let started = Instant::now();
    let connected = order_all(&mut clients, |n| Order::Connect {
        address: address.to_string(),
        rooms: rooms.iter().skip(n).step_by(count).cloned().collect(),
        // Each client process its own part of 127.0.0.0/8.
        first_source: (n as u32 + 1) << 16,
    })
    .await?;
    let connect_seconds = started.elapsed().as_secs_f64();
    let sockets: usize = connected.iter().map(|report| report.connected).sum();
    let failed: usize = connected.iter().map(|report| report.failed).sum();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let kb_per_socket = rss_kb(pid)?.saturating_sub(rss_before) as f64 / sockets.max(1) as f64;
    let idle = CpuWatch::start(pid)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cores = idle.cores()?;

    let mut results = Vec::new();
    let mut runs = vec![
        (format!("chat at {}/s", phases.chat_rate), MessageKind::Chat, phases.chat_rate),
        (format!("chat at {}/s", phases.max_rate), MessageKind::Chat, phases.max_rate),
    ];
    if target == Target::Rapat {
        runs.push((format!("media state at {}/s", phases.media_rate), MessageKind::Mute, phases.media_rate));
    }
    for (name, kind, rate) in runs {
        let cpu = CpuWatch::start(pid)?;
        let per_client = rate / count as f64;
        let reports =
            order_all(&mut clients, |_| Order::Send { kind, rate: per_client, seconds: phases.seconds }).await?;
        let cores = cpu.cores()?;
        for (reason, count) in reports.iter().flat_map(|report| &report.close_reasons) {
            println!("{} during {name}: {count} sockets closed: {reason}", target.name());
        }
        results.push((name, phase_result(&reports, phases.seconds, cores)?));
    }
    for client in &mut clients {
        let mut line = serde_json::to_vec(&Order::Quit)?;
        line.push(b'\n');
        let _ = client.stdin.write_all(&line).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.child.wait()).await;
    }
    Ok(Measured { target, sockets, failed, connect_seconds, kb_per_socket, idle_cores, phases: results })
}

fn phase_result(reports: &[Report], seconds: f64, cores: f64) -> anyhow::Result<PhaseResult> {
    let mut delays = Histogram::<u64>::new(3)?;
    for report in reports {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&report.delays)?;
        let histogram: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
        delays.add(histogram)?;
    }
    let sent: u64 = reports.iter().map(|report| report.sent).sum();
    let delivered: u64 = reports.iter().map(|report| report.delivered).sum();
    Ok(PhaseResult {
        sent_per_second: sent as f64 / seconds,
        delivered_per_second: delivered as f64 / seconds,
        p50_ms: delays.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: delays.value_at_quantile(0.99) as f64 / 1000.0,
        closed: reports.iter().map(|report| report.closed).sum(),
        cores,
    })
}

/// A process's resident memory, from /proc.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// A process's CPU time (user + system), from /proc, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat format")?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Linux reports CPU times in USER_HZ ticks, 100 per second on every architecture
/// it runs this bench on.
const TICKS_PER_SECOND: f64 = 100.0;

struct CpuWatch {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuWatch {
    fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(Self { pid, ticks: cpu_ticks(pid)?, at: Instant::now() })
    }

    /// Cores used on average since the start.
    fn cores(&self) -> anyhow::Result<f64> {
        let used = cpu_ticks(self.pid)?.saturating_sub(self.ticks) as f64 / TICKS_PER_SECOND;
        Ok(used / self.at.elapsed().as_secs_f64())
    }
}

pub fn print(results: &[Measured]) {
    println!(
        "{:<12} {:>8} {:>7} {:>10} {:>12} {:>10}",
        "server", "sockets", "failed", "connect s", "KB/socket", "idle cores"
    );
    for result in results {
        println!(
            "{:<12} {:>8} {:>7} {:>10.1} {:>12.1} {:>10.2}",
            result.target.name(),
            result.sockets,
            result.failed,
            result.connect_seconds,
            result.kb_per_socket,
            result.idle_cores
        );
    }
    println!(
        "\n{:<12} {:<24} {:>10} {:>13} {:>9} {:>9} {:>7} {:>6}",
        "server", "phase", "sent/s", "delivered/s", "p50 ms", "p99 ms", "closed", "cores"
    );
    for result in results {
        for (name, phase) in &result.phases {
            println!(
                "{:<12} {:<24} {:>10.0} {:>13.0} {:>9.2} {:>9.2} {:>7} {:>6.2}",
                result.target.name(),
                name,
                phase.sent_per_second,
                phase.delivered_per_second,
                phase.p50_ms,
                phase.p99_ms,
                phase.closed,
                phase.cores
            );
        }
    }
    if let [rapat, bare] = results
        && let (Some((_, rapat_max)), Some((_, bare_max))) = (rapat.phases.get(1), bare.phases.get(1))
    {
        println!(
            "\nfan-out at the high rate, rapat / bare: {:.2}× the deliveries per second, {:.2}× the deliveries per core-second",
            rapat_max.delivered_per_second / bare_max.delivered_per_second.max(1.0),
            (rapat_max.delivered_per_second / rapat_max.cores.max(0.01))
                / (bare_max.delivered_per_second / bare_max.cores.max(0.01)).max(1.0)
        );
    }
}
