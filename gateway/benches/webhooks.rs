//! Webhook delivery against the real write side, projector and webhook worker,
//! to a receiver on loopback, each figure beside a bare HTTP POST loop to the
//! same receiver in the same run.
//!
//!     cargo bench -p rapat-gateway --bench webhooks
//!
//! For 1, 10 and 100 endpoints (each wanting `room.*`):
//! 1. Throughput: `BENCH_WEBHOOK_EVENTS` `RoomCreated` events (default 1000) are
//!    appended and queued with the worker stopped; then the worker starts and the
//!    clock runs until the receiver has every (event, endpoint) delivery. Baseline:
//!    as many lanes as endpoints, each POSTing the same bodies one after another.
//! 2. Delay: with the worker running, `BENCH_WEBHOOK_PACED` events (default 200)
//!    appended 20 ms apart; the delay is from the append's acknowledgement to the
//!    receipt at each endpoint (p50/p99). Baseline: the bare loop's per-request
//!    latency.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path, State};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use rapat_commands::{CommandBus, CommandMetadata, JetStreamEventStore};
use rapat_delivery::RetryPolicy;
use rapat_delivery::webhooks::{WebhookConfig, WebhookWorker};
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::DomainServices;
use rapat_domain::webhook::{Webhook, WebhookCommand, WebhookSecret, WebhookUrl, parse_event_types};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use support::{NoPasswords, Stack, env_or};

const PATIENCE: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = env_or("BENCH_WEBHOOK_EVENTS", "1000").parse().context("BENCH_WEBHOOK_EVENTS")?;
    let paced: usize = env_or("BENCH_WEBHOOK_PACED", "200").parse().context("BENCH_WEBHOOK_PACED")?;
    let bench = Bench::start().await?;
    println!(
        "{:>9} {:>12} {:>12} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "endpoints", "deliv/s", "bare/s", "ratio", "p50 ms", "p99 ms", "bare p50", "bare p99"
    );
    let mut result = Ok(());
    for endpoints in [1, 10, 100] {
        if let Err(error) = round(&bench, endpoints, events, paced).await {
            result = Err(error);
            break;
        }
    }
    bench.stop().await;
    result
}

async fn round(bench: &Bench, endpoints: usize, events: usize, paced: usize) -> anyhow::Result<()> {
    let ids = bench.register(endpoints).await?;
    // 1. Throughput.
    bench.create_rooms(events).await?;
    bench.wait_queued(&ids, events * endpoints).await?;
    bench.receiver.reset();
    let worker = bench.start_worker()?;
    let started = Instant::now();
    bench.receiver.wait_for(events * endpoints).await?;
    let rate = (events * endpoints) as f64 / started.elapsed().as_secs_f64();
    worker.cancel();
    let body: String =
        sqlx::query_scalar("SELECT body FROM webhook_deliveries LIMIT 1").fetch_one(&bench.stack.db).await?;
    let (bare_rate, bare_latency) = bench.bare_loop(endpoints, events, body).await?;

    // 2. Delay from append to receipt.
    bench.receiver.reset();
    let worker = bench.start_worker()?;
    let mut appended = HashMap::new();
    for _ in 0..paced {
        let room = bench.create_room().await?;
        appended.insert(room.to_string(), Instant::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bench.receiver.wait_for(paced * endpoints).await?;
    worker.cancel();
    let mut delays = Histogram::<u64>::new(3)?;
    for (room, at) in bench.receiver.receipts() {
        if let Some(appended) = appended.get(&room) {
            delays.record(at.saturating_duration_since(*appended).as_micros() as u64)?;
        }
    }
    bench.delete(&ids).await?;
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "{endpoints:>9} {rate:>12.0} {bare_rate:>12.0} {:>6.2} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        rate / bare_rate,
        ms(delays.value_at_quantile(0.5)),
        ms(delays.value_at_quantile(0.99)),
        ms(bare_latency.value_at_quantile(0.5)),
        ms(bare_latency.value_at_quantile(0.99)),
    );
    Ok(())
}

/// Records the `aggregateId` of every webhook body and when it came.
#[derive(Default)]
struct Receiver {
    count: AtomicUsize,
    receipts: Mutex<Vec<(String, Instant)>>,
}

impl Receiver {
    fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
        self.receipts.lock().expect("lock").clear();
    }

    fn receipts(&self) -> Vec<(String, Instant)> {
        self.receipts.lock().expect("lock").clone()
    }

    async fn wait_for(&self, count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.count.load(Ordering::SeqCst) < count {
            anyhow::ensure!(
                started.elapsed() < PATIENCE,
                "only {} of {count} arrived",
                self.count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

async fn hook(
    State(receiver): State<Arc<Receiver>>,
    Path((_kind, _endpoint)): Path<(String, String)>,
    body: Bytes,
) -> &'static str {
    let now = Instant::now();
    if let Ok(body) = serde_json::from_slice::<Value>(&body) {
        let room = body["aggregateId"].as_str().unwrap_or_default().to_owned();
        receiver.receipts.lock().expect("lock").push((room, now));
    }
    receiver.count.fetch_add(1, Ordering::SeqCst);
    ""
}

/// The bench stack (`support`), a receiver on loopback, and command buses of its own for setup.
struct Bench {
    stack: Stack,
    rooms: CommandBus<Room>,
    webhooks: CommandBus<Webhook>,
    receiver: Arc<Receiver>,
    receiver_url: String,
    host: UserId,
}

impl Bench {
    async fn start() -> anyhow::Result<Self> {
        let stack = Stack::start(|_| {}).await?;
        let receiver = Arc::new(Receiver::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver_url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/{kind}/{endpoint}", axum::routing::post(hook))
            .with_state(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let (nats, event_store) = (&stack.nats, &stack.event_store);
        let services = DomainServices::new(Arc::new(NoPasswords));
        let rooms = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, services);
        let webhooks = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ());
        let host = UserId::new_random();
        Ok(Self { stack, rooms, webhooks, receiver, receiver_url, host })
    }

    async fn register(&self, endpoints: usize) -> anyhow::Result<Vec<Uuid>> {
        let mut ids = Vec::with_capacity(endpoints);
        for n in 0..endpoints {
            let id = Uuid::new_v4();
            let command = WebhookCommand::Register {
                url: WebhookUrl::parse(&format!("{}/hooks/{n}", self.receiver_url))?,
                event_types: parse_event_types(&["room.*"])?,
                description: String::new(),
                secret: WebhookSecret::from_key(&rand::random()),
            };
            self.webhooks.execute(&id.to_string(), command, CommandMetadata::system()).await?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn delete(&self, ids: &[Uuid]) -> anyhow::Result<()> {
        for id in ids {
            self.webhooks.execute(&id.to_string(), WebhookCommand::Delete, CommandMetadata::system()).await?;
        }
        Ok(())
    }

    async fn create_room(&self) -> anyhow::Result<RoomId> {
        let room = RoomId::new_random();
        let command = RoomCommand::Create {
            host: self.host,
            name: RoomName::parse("Bench".to_owned())?,
            description: RoomDescription::parse(String::new())?,
            password: None,
            max_users: MaxUsers::parse(10)?,
            scheduled_at: None,
            duration_minutes: None,
        };
        self.rooms.execute(&room.to_string(), command, CommandMetadata::by(self.host.to_string())).await?;
        Ok(room)
    }

    async fn create_rooms(&self, count: usize) -> anyhow::Result<Vec<RoomId>> {
        let created: Vec<anyhow::Result<RoomId>> =
            futures::stream::iter(0..count).map(|_| self.create_room()).buffer_unordered(64).collect().await;
        created.into_iter().collect()
    }

    async fn wait_queued(&self, endpoints: &[Uuid], count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ANY($1)")
                .bind(endpoints)
                .fetch_one(&self.stack.db)
                .await?;
            if queued as usize >= count {
                return Ok(());
            }
            anyhow::ensure!(started.elapsed() < PATIENCE, "only {queued} of {count} queued");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn start_worker(&self) -> anyhow::Result<CancellationToken> {
        let config = WebhookConfig {
            retry: RetryPolicy { base: Duration::from_millis(100), ..Default::default() },
            allow_private: true,
            ..Default::default()
        };
        let stop = self.stack.stopping();
        tokio::spawn(WebhookWorker::new(self.stack.db.clone(), config)?.run(stop.clone()));
        Ok(stop)
    }

    /// `lanes` tasks, each POSTing `per_lane` bodies one after another.
    async fn bare_loop(&self, lanes: usize, per_lane: usize, body: String) -> anyhow::Result<(f64, Histogram<u64>)> {
        self.receiver.reset();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let started = Instant::now();
        let tasks: Vec<_> = (0..lanes)
            .map(|lane| {
                let (http, body, url) = (http.clone(), body.clone(), format!("{}/bare/{lane}", self.receiver_url));
                tokio::spawn(async move {
                    let mut latency = Histogram::<u64>::new(3)?;
                    for _ in 0..per_lane {
                        let sent = Instant::now();
                        let answer = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await?;
                        answer.error_for_status()?.bytes().await?;
                        latency.record(sent.elapsed().as_micros() as u64)?;
                    }
                    anyhow::Ok(latency)
                })
            })
            .collect();
        let mut latency = Histogram::<u64>::new(3)?;
        for task in tasks {
            latency.add(task.await??)?;
        }
        Ok(((lanes * per_lane) as f64 / started.elapsed().as_secs_f64(), latency))
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}
