//! REST read throughput and command-to-visible latency, against the real gateway.
//!
//!     cargo bench -p rapat-gateway --bench rest
//!
//! 1. `GET /api/v1/rooms/{id}` requests per second with N keep-alive clients, beside
//!    a bare axum handler in the same process that runs the same single SQL query
//!    on the same pool and answers JSON. The gateway's request also authenticates
//!    (JWT check plus a session lookup in Postgres) and runs its middleware, so
//!    the ratio is the whole cost of the real endpoint over the bare query.
//! 2. Latency of `POST /rooms/{id}/join` and `/leave`, sent open-loop at fixed rates:
//!    from sending the request until its answer, which the gateway sends only once
//!    the rooms read model shows the change (read-your-writes; audit queries wait
//!    for the audit trail themselves). So this is command-to-visible latency as a
//!    client sees it, split into stages along each command's critical path
//!    (`stages/mod.rs`).
//!
//! Settings come from the environment: `NATS_URL`, `DATABASE_URL` (its database
//! name is replaced by a fresh one, dropped at the end), `BENCH_SECONDS` per
//! measurement (default 5), `BENCH_CLIENTS` (default "1,16,64"), `BENCH_RATES`
//! commands per second (default "200,1000"), `BENCH_WARMUP_SECONDS` (default 2:
//! commands sent at each rate before it is measured, so the first joins of the
//! fresh rooms, each starting a meeting, are not in the figures; printed on their
//! own line), `BENCH_TIMELINE_MS` (when set, the latency run also prints its
//! commands in windows of that many milliseconds of send time: how many, p50, p99
//! and max, to tell a tail spread over the run from one made in a few stalls), and
//! the server's `RAPAT_PROJECTION_LINGER_MS` (default 50).

mod stages;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::{PgPool, Row as _};
use tokio::sync::Semaphore;
use uuid::Uuid;

use stages::{Breakdown, Recorder, Sent};
use support::{Stack, env_or};

/// The query `queries::rooms::by_id` runs.
const ROOM_BY_ID: &str = "SELECT r.id, r.host_id, r.name, r.description, r.has_password, r.max_users, r.scheduled_at, \
     r.status, r.participant_count, r.created_at, r.updated_at, r.ended_at FROM rooms r WHERE r.id = $1";

/// Rooms the latency run spreads its commands over. A room gets its next command
/// only once its previous one has answered: overlapping commands on one room would
/// queue behind each other by design, and a join overtaken by its own leave would
/// measure a race instead of the path.
const LATENCY_ROOMS: usize = 512;
/// Most commands in flight in the latency run; beyond it the sender waits, and the
/// rate achieved shows that the server could not keep up.
const MAX_IN_FLIGHT: usize = 2048;

struct Throughput {
    per_second: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = env_or("BENCH_SECONDS", "5").parse().context("BENCH_SECONDS")?;
    let clients: Vec<usize> = numbers(&env_or("BENCH_CLIENTS", "1,16,64"));
    let rates: Vec<u64> = numbers(&env_or("BENCH_RATES", "200,1000"));
    let duration = Duration::from_secs(seconds);

    let recorder = Recorder::install()?;
    let bench = Bench::start().await?;
    let result = run(&bench, &recorder, duration, &clients, &rates).await;
    bench.stop().await;
    result
}

async fn run(
    bench: &Bench,
    recorder: &Recorder,
    duration: Duration,
    clients: &[usize],
    rates: &[u64],
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let token = bench.new_user(&http, "Bench").await?;
    let room = bench.create_room(&http, &token, "Benchmark room").await?;
    let bare = serve_bare(bench.stack.db.clone()).await?;
    println!("gateway at {}, bare handler at {bare}; {} s per measurement", bench.stack.address, duration.as_secs());
    let server = bench.stack.nats.server_info();
    println!(
        "NATS {} at {} (fsync before ack only if it runs sync_interval: always)\n",
        server.version, bench.stack.nats_url
    );

    println!("GET /api/v1/rooms/{{id}} (real: JWT + session lookup + middleware + query; bare: the query alone)");
    println!(
        "{:>7} | {:>10} {:>7} {:>7} | {:>10} {:>7} {:>7} | {:>10}",
        "clients", "real req/s", "p50 µs", "p99 µs", "bare req/s", "p50 µs", "p99 µs", "real/bare"
    );
    for &n in clients {
        let real_url = format!("http://{}/api/v1/rooms/{room}", bench.stack.address);
        let bare_url = format!("http://{bare}/rooms/{room}");
        let real = measure_gets(n, duration, real_url, Some(token.clone())).await?;
        let bare = measure_gets(n, duration, bare_url, None).await?;
        println!(
            "{:>7} | {:>10.0} {:>7} {:>7} | {:>10.0} {:>7} {:>7} | {:>10.2}{}",
            n,
            real.per_second,
            real.p50_us,
            real.p99_us,
            bare.per_second,
            bare.p50_us,
            bare.p99_us,
            real.per_second / bare.per_second,
            errors_note(real.errors + bare.errors)
        );
    }

    println!("\ncommand-to-visible latency: POST /rooms/{{id}}/join|leave, sent open-loop at a fixed rate,");
    println!("timed from send to answer (answered only once the rooms read model shows the change)");
    println!(
        "{:>13} | {:>10} | {:>8} {:>8} {:>8} | {:>6} {:>7}",
        "target/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "errors", "skipped"
    );
    let mut rooms = Vec::with_capacity(LATENCY_ROOMS);
    for batch in 0..LATENCY_ROOMS / 16 {
        let mut created = tokio::task::JoinSet::new();
        for n in 0..16 {
            let (bench, http, token) = (bench.clone(), http.clone(), token.clone());
            let name = format!("Latency room {}", batch * 16 + n);
            created.spawn(async move { bench.create_room(&http, &token, &name).await });
        }
        while let Some(room) = created.join_next().await {
            rooms.push(Slot { id: room??, joined: AtomicBool::new(false), busy: AtomicBool::new(false) });
        }
    }
    let rooms = Arc::new(rooms);
    let mut breakdowns = Vec::new();
    let warm_up = Duration::from_secs(env_or("BENCH_WARMUP_SECONDS", "2").parse().context("BENCH_WARMUP_SECONDS")?);
    for &rate in rates {
        // The rooms are fresh: the first pass over them starts a meeting in every
        // one (its first join), a burst of work steady traffic does not have. It
        // runs first, at the same rate, and is printed apart.
        if !warm_up.is_zero() {
            let warming = measure_commands(bench, &token, rate, warm_up, &rooms).await?;
            print_latency(&format!("{rate} warm-up"), &warming);
        }
        recorder.clear();
        let measured = measure_commands(bench, &token, rate, duration, &rooms).await?;
        print_latency(&rate.to_string(), &measured);
        breakdowns.push((rate, Breakdown::of(recorder, &measured.sent)?, measured.timeline));
    }
    for (rate, by_action, timeline) in breakdowns {
        println!("\nat {rate} commands/s:");
        for (action, breakdown) in by_action {
            match action {
                "all" => breakdown.print(),
                action => breakdown.print_stages(&format!("{action}s alone")),
            }
        }
        if !timeline.is_empty() {
            println!(
                "\n  by send time, windows of {} ms: start ms, commands, p50 / p99 / max ms",
                timeline_window()?.as_millis()
            );
            for line in timeline {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

fn errors_note(errors: u64) -> String {
    if errors == 0 { String::new() } else { format!("  ({errors} errors)") }
}

/// `n` clients, each with its own keep-alive connection, sending GETs back to back.
async fn measure_gets(n: usize, duration: Duration, url: String, token: Option<String>) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (url, token) = (url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                let mut request = client.get(&url);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
                let ok = response.status() == StatusCode::OK;
                response.bytes().await?;
                histogram.record(began.elapsed().as_micros() as u64)?;
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((histogram, errors))
        }));
    }
    let mut total = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for task in tasks {
        let (histogram, failed) = task.await??;
        total.add(histogram)?;
        errors += failed;
    }
    Ok(Throughput {
        per_second: total.len() as f64 / started.elapsed().as_secs_f64(),
        p50_us: total.value_at_quantile(0.50),
        p99_us: total.value_at_quantile(0.99),
        errors,
    })
}

struct Latency {
    per_second: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    errors: u64,
    /// Ticks with every room still busy: the server could not keep up.
    skipped: u64,
    /// The commands answered OK.
    sent: Vec<Sent>,
    /// `BENCH_TIMELINE_MS`'s lines, one per window of send time.
    timeline: Vec<String>,
}

/// One room of the latency run.
struct Slot {
    id: String,
    /// Whether the bench user is in the room now.
    joined: AtomicBool,
    /// A command on the room has not answered yet.
    busy: AtomicBool,
}

/// Sends a join or a leave every `1 / rate` seconds, whether or not earlier ones
/// have answered (open loop: a slow answer does not slow the sender down, so
/// queueing shows in the latency instead of hiding in a lower rate).
async fn measure_commands(
    bench: &Bench,
    token: &str,
    rate: u64,
    duration: Duration,
    rooms: &Arc<Vec<Slot>>,
) -> anyhow::Result<Latency> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(MAX_IN_FLIGHT).build()?;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let (mut sent, mut skipped, mut cursor) = (0u64, 0u64, 0usize);
    while started.elapsed() < duration {
        ticker.tick().await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        // The next room with nothing in flight.
        let free = (0..rooms.len()).map(|step| (cursor + step) % rooms.len()).find(|&index| {
            rooms[index].busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        });
        let Some(index) = free else {
            skipped += 1;
            continue;
        };
        cursor = index + 1;
        sent += 1;
        // Alternate join and leave per room, so every command changes something
        // (appends one event) rather than being an idempotent no-op.
        let action = if rooms[index].joined.fetch_xor(true, Ordering::Relaxed) { "leave" } else { "join" };
        let url = format!("http://{}/api/v1/rooms/{}/{action}", bench.stack.address, rooms[index].id);
        let request = client.post(url).bearer_auth(token).json(&json!({}));
        let rooms = Arc::clone(rooms);
        tasks.spawn(async move {
            let began = Instant::now();
            let outcome = match request.send().await {
                Ok(response) if response.status() == StatusCode::OK => {
                    response.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                }
                Ok(response) => {
                    let status = response.status();
                    Err(format!("{status} {}", response.text().await.unwrap_or_default()))
                }
                Err(error) => Err(error.to_string()),
            };
            let answered = Instant::now();
            let room = rooms[index].id.clone();
            rooms[index].busy.store(false, Ordering::Release);
            drop(permit);
            (Sent { room, action, sent: began, answered }, outcome)
        });
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    let mut first_error = None;
    let mut answered = Vec::new();
    let window = timeline_window()?;
    let mut windows: Vec<Histogram<u64>> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (command, outcome) = done?;
        let took = command.answered.duration_since(command.sent).as_micros() as u64;
        histogram.record(took)?;
        if !window.is_zero() {
            let index = (command.sent.duration_since(started).as_micros() / window.as_micros()) as usize;
            while windows.len() <= index {
                windows.push(Histogram::new(3)?);
            }
            windows[index].record(took)?;
        }
        match outcome {
            Ok(()) => answered.push(command),
            Err(error) => {
                errors += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        println!("  first error at {rate}/s: {error}");
    }
    Ok(Latency {
        per_second: sent as f64 / started.elapsed().as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.50),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
        errors,
        skipped,
        sent: answered,
        timeline: windows
            .iter()
            .enumerate()
            .map(|(n, w)| {
                let ms = |us: u64| us as f64 / 1e3;
                format!(
                    "{:>6} {:>5} {:>8.1} {:>8.1} {:>8.1}",
                    n as u128 * window.as_millis(),
                    w.len(),
                    ms(w.value_at_quantile(0.5)),
                    ms(w.value_at_quantile(0.99)),
                    ms(w.max())
                )
            })
            .collect(),
    })
}

fn print_latency(label: &str, measured: &Latency) {
    println!(
        "{:>13} | {:>10.0} | {:>8.1} {:>8.1} {:>8.1} | {:>6} {:>7}",
        label,
        measured.per_second,
        measured.p50_us as f64 / 1e3,
        measured.p99_us as f64 / 1e3,
        measured.max_us as f64 / 1e3,
        measured.errors,
        measured.skipped
    );
}

/// `BENCH_TIMELINE_MS`, zero when unset.
fn timeline_window() -> anyhow::Result<Duration> {
    let ms: u64 = env_or("BENCH_TIMELINE_MS", "0").parse().context("BENCH_TIMELINE_MS")?;
    Ok(Duration::from_millis(ms))
}

/// The bare baseline: the same query on the same pool, answered as JSON.
async fn serve_bare(db: PgPool) -> anyhow::Result<SocketAddr> {
    let router = axum::Router::new().route("/rooms/{id}", axum::routing::get(bare_room)).with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(address)
}

async fn bare_room(State(db): State<PgPool>, Path(id): Path<Uuid>) -> Response {
    let row = match sqlx::query(ROOM_BY_ID).bind(id).fetch_optional(&db).await {
        Ok(Some(row)) => row,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let view = (|| -> Result<Value, sqlx::Error> {
        Ok(json!({
            "id": row.try_get::<Uuid, _>("id")?,
            "hostId": row.try_get::<Uuid, _>("host_id")?,
            "name": row.try_get::<String, _>("name")?,
            "description": row.try_get::<String, _>("description")?,
            "hasPassword": row.try_get::<bool, _>("has_password")?,
            "maxUsers": row.try_get::<i32, _>("max_users")?,
            "scheduledAt": row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("scheduled_at")?,
            "status": row.try_get::<String, _>("status")?,
            "participantCount": row.try_get::<i32, _>("participant_count")?,
            "createdAt": row.try_get::<chrono::DateTime<chrono::Utc>, _>("created_at")?,
            "updatedAt": row.try_get::<chrono::DateTime<chrono::Utc>, _>("updated_at")?,
            "endedAt": row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("ended_at")?,
        }))
    })();
    match view {
        Ok(view) => axum::Json(json!({ "success": true, "data": view })).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The bench stack (`support`) with limits raised for one user's hundreds of rooms.
#[derive(Clone)]
struct Bench {
    stack: Stack,
}

impl Bench {
    async fn start() -> anyhow::Result<Self> {
        let stack = Stack::start(|config| {
            config.auth_rate_limit.burst = 1000;
            // One user sets up hundreds of rooms.
            config.rooms_per_user_per_hour = 0;
        })
        .await?;
        Ok(Self { stack })
    }

    /// Registers and logs in a user; answers their access token.
    async fn new_user(&self, http: &reqwest::Client, name: &str) -> anyhow::Result<String> {
        let email = format!("{}.{}@example.com", name.to_lowercase(), Uuid::new_v4().simple());
        let credentials = json!({ "email": email, "password": "correct horse 1" });
        let mut register = credentials.clone();
        register["firstName"] = json!(name);
        register["lastName"] = json!("Bench");
        self.post(http, "/api/v1/auth/register", None, register).await?;
        let login = self.post(http, "/api/v1/auth/login", None, credentials).await?;
        login["data"]["token"].as_str().map(str::to_string).context("login answered no token")
    }

    async fn create_room(&self, http: &reqwest::Client, token: &str, name: &str) -> anyhow::Result<String> {
        let created = self.post(http, "/api/v1/rooms", Some(token), json!({ "name": name, "maxUsers": 100 })).await?;
        created["data"]["id"].as_str().map(str::to_string).context("no room id")
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        // A pooled keep-alive connection the server closed as it was reused
        // ("connection reset by peer") failed whole runs' set-up; such a request
        // is sent again, up to three times (for a room: at worst one more room).
        let mut attempts = 0;
        let response = loop {
            let mut request = http.post(format!("http://{}{path}", self.stack.address)).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) => break response,
                Err(error) if attempts < 3 && (error.is_request() || error.is_connect()) => attempts += 1,
                Err(error) => return Err(error.into()),
            }
        };
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {body}");
        Ok(body)
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}

fn numbers<T: std::str::FromStr>(list: &str) -> Vec<T> {
    list.split(',').filter_map(|n| n.trim().parse().ok()).collect()
}
