//! What `synchronous_commit` costs the projector: catch-up throughput and
//! read-your-writes latency with the read database's default (`on`: a commit
//! waits for its WAL flush) beside `off` (set on the database, as a projector that
//! chose it would), alternating in the same run on the same servers.
//!
//!     cargo bench -p rapat-projections --bench commit
//!
//! `BENCH_EVENTS` (default 5000) room commands are replayed from the start for
//! throughput (one event per message, batches of up to 500 per transaction);
//! `BENCH_WRITES` (default 300) commands are then appended one at a time, each
//! waited for until the rooms and audit read models show it, as the gateway does
//! before answering. `ROUNDS` (default 2) alternations of on and off.

mod scratch;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use rapat_domain::envelope::{StoredCommit, StoredEvent, schema_version_of, split_event};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use rapat_projections::projector::load_checkpoint;
use rapat_projections::{Projection, ProjectionPositions, ProjectorConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use scratch::Scratch;

struct Figures {
    /// A bare one-row transaction's commit, the ceiling of what the setting saves.
    bare_commit: Duration,
    events_per_second: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let number = |name: &str, default: usize| std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    let (events, writes, rounds) = (number("BENCH_EVENTS", 5000), number("BENCH_WRITES", 300), number("ROUNDS", 2));
    let (nats_url, base_url) = scratch::service_urls();
    let jetstream = jetstream::new(async_nats::connect(&nats_url).await?);

    let mut results: Vec<(&str, Figures)> = Vec::new();
    for _ in 0..rounds {
        for mode in ["on", "off"] {
            let figures = measure(&jetstream, &base_url, mode, events, writes).await?;
            println!(
                "synchronous_commit {mode:>3}: bare commit {:?}, {:>7.0} events/s catch-up, read-your-writes p50 {:?} p99 {:?}",
                figures.bare_commit, figures.events_per_second, figures.p50, figures.p99
            );
            results.push((mode, figures));
        }
    }
    println!(
        "\n{:<20} {:>12} {:>18} {:>12} {:>12}",
        "synchronous_commit", "bare commit", "catch-up events/s", "RYW p50", "RYW p99"
    );
    for mode in ["on", "off"] {
        let of_mode: Vec<&Figures> = results.iter().filter(|(m, _)| *m == mode).map(|(_, f)| f).collect();
        let n = of_mode.len() as u32;
        let bare = of_mode.iter().map(|f| f.bare_commit).sum::<Duration>() / n;
        let rate = of_mode.iter().map(|f| f.events_per_second).sum::<f64>() / f64::from(n);
        let p50 = of_mode.iter().map(|f| f.p50).sum::<Duration>() / n;
        let p99 = of_mode.iter().map(|f| f.p99).sum::<Duration>() / n;
        println!("{mode:<20} {:>12.2?} {rate:>18.0} {:>12.2?} {:>12.2?}", bare, p50, p99);
    }
    Ok(())
}

async fn measure(
    jetstream: &jetstream::Context,
    base_url: &str,
    mode: &str,
    events: usize,
    writes: usize,
) -> anyhow::Result<Figures> {
    let scratch = Scratch::create(jetstream, base_url).await?;
    let (config, database, url) = (scratch.config.clone(), scratch.database.clone(), scratch.database_url());
    // Migrates; then the setting is made the database's default, which every
    // connection opened afterwards takes.
    rapat_projections::connect(&url).await?.close().await;
    let mut admin = scratch.admin().await?;
    let alter = format!("ALTER DATABASE \"{database}\" SET synchronous_commit = {mode}");
    sqlx::query(sqlx::AssertSqlSafe(alter)).execute(&mut admin).await?;
    let pool = rapat_projections::connect(&url).await?;
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&pool).await?;
    anyhow::ensure!(setting == mode, "synchronous_commit is {setting}, not {mode}");
    sqlx::query("CREATE TABLE bench_commit (n int)").execute(&pool).await?;
    let started = Instant::now();
    for n in 0..200 {
        sqlx::query("INSERT INTO bench_commit VALUES ($1)").bind(n).execute(&pool).await?;
    }
    let bare_commit = started.elapsed() / 200;

    let mut history = History::default();
    for _ in 0..events {
        history.publish_next(jetstream, &config).await?;
    }
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let projector =
        tokio::spawn(rapat_projections::run_all(pool.clone(), jetstream.clone(), config.clone(), shutdown.clone()));
    for projection in [Projection::Rooms, Projection::Audit] {
        while load_checkpoint(&pool, projection).await?.last_sequence < history.last_sequence {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let events_per_second = events as f64 / started.elapsed().as_secs_f64();

    let positions = ProjectionPositions::start(pool.clone());
    let mut latencies = Vec::with_capacity(writes);
    for _ in 0..writes {
        let started = Instant::now();
        let sequence = history.publish_next(jetstream, &config).await?;
        positions.wait_for(&[Projection::Rooms, Projection::Audit], sequence, Duration::from_secs(30)).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)];

    shutdown.cancel();
    projector.await??;
    pool.close().await;
    drop(admin);
    scratch.remove(jetstream).await?;
    Ok(Figures { bare_commit, events_per_second, p50: at(0.5), p99: at(0.99) })
}

/// Rooms of 10 seats: created, filled, then microphones toggled.
#[derive(Default)]
struct History {
    written: usize,
    room: Uuid,
    version: u64,
    users: Vec<UserId>,
    last_sequence: u64,
}

impl History {
    async fn publish_next(&mut self, jetstream: &jetstream::Context, config: &ProjectorConfig) -> anyhow::Result<u64> {
        let n = self.written;
        self.written += 1;
        let event = match n % 50 {
            0 => {
                (self.room, self.version) = (Uuid::new_v4(), 0);
                self.users = (0..10).map(|_| UserId::new_random()).collect();
                RoomEvent::RoomCreated {
                    host_id: self.users[0],
                    name: RoomName::parse(format!("Room {n}")).expect("valid name"),
                    description: RoomDescription::parse(String::new()).expect("valid description"),
                    password_hash: None,
                    max_users: MaxUsers::parse(10).expect("valid max users"),
                    scheduled_at: None,
                    duration_minutes: None,
                }
            }
            step @ 1..=10 => RoomEvent::ParticipantJoined { user_id: self.users[step - 1] },
            step => RoomEvent::ParticipantAudioChanged { user_id: self.users[step % 10], muted: (step / 10) % 2 == 1 },
        };
        self.version += 1;
        let (event_type, payload) = split_event(&event).expect("room events split");
        let command_id = Uuid::new_v4().to_string();
        let stored = StoredEvent {
            event_id: Uuid::new_v4(),
            aggregate_type: "room".into(),
            aggregate_id: self.room.to_string(),
            aggregate_version: self.version,
            event_type,
            schema_version: schema_version_of(&event).expect("numeric version"),
            timestamp: Utc::now(),
            actor: None,
            correlation_id: None,
            command_id: command_id.clone(),
            payload,
        };
        let subject = config.namespace.event_subject("room", self.room);
        let body = serde_json::to_vec(&StoredCommit { events: vec![stored] })?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", command_id.as_str());
        self.last_sequence = jetstream.publish_with_headers(subject, headers, body.into()).await?.await?.sequence;
        Ok(self.last_sequence)
    }
}
