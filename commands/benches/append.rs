//! Write-side throughput: commands appended per second through the command bus,
//! beside raw JetStream publish-with-ack of same-size messages on the same server
//! in the same run.
//!
//!     cargo bench -p rapat-commands --bench append
//!
//! Settings come from the environment: `NATS_URL` (default nats://127.0.0.1:4222),
//! `BENCH_SECONDS` per measurement (default 5), `BENCH_IN_FLIGHT` (default
//! "1,16,64"), `BENCH_ROUNDS` (default 5): each measurement's seconds are cut into
//! that many slices, and the three (commands, raw, guarded) take turns slice by
//! slice in a rotating order, so a machine that slows down during the run slows
//! all three alike instead of moving their ratio. Each in-flight worker drives its
//! own room, toggling a participant's microphone, so every command appends exactly
//! one event. The run also times loading a room with 10,000 events from its
//! snapshot and by full replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::testing::MarkedHasher;
use rapat_wire::Namespace;
use uuid::Uuid;

/// What one kind of operation did over the slices it ran.
struct Tally {
    latencies_us: Histogram<u64>,
    seconds: f64,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { latencies_us: Histogram::new(3)?, seconds: 0.0 })
    }

    fn add(&mut self, slice: Tally) -> anyhow::Result<()> {
        self.latencies_us.add(slice.latencies_us)?;
        self.seconds += slice.seconds;
        Ok(())
    }

    fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.seconds
    }

    fn p50_us(&self) -> u64 {
        self.latencies_us.value_at_quantile(0.50)
    }

    fn p99_us(&self) -> u64 {
        self.latencies_us.value_at_quantile(0.99)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let in_flight: Vec<usize> = std::env::var("BENCH_IN_FLIGHT")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rounds: u32 = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let slice = Duration::from_secs(seconds) / rounds;

    let namespace = Namespace::parse(&format!("bench{}", Uuid::new_v4().simple()))?;
    let mut config = EventStoreConfig::for_namespace(namespace.clone());
    config.max_age = Some(Duration::from_secs(3600));
    let client = rapat_commands::connect(&nats_url).await?;
    let store = JetStreamEventStore::<Room>::open(client.clone(), config.clone()).await?;
    let bus = Arc::new(CommandBus::new(store.clone(), MarkedHasher::services()));
    let jetstream = async_nats::jetstream::new(client.clone());
    // The raw measurements' own stream and subjects, beside the namespace's.
    let raw_stream = format!("{}_RAW", namespace.events_stream());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: raw_stream.clone(),
            subjects: vec![format!("{namespace}.raw.>")],
            max_age: Duration::from_secs(3600),
            ..Default::default()
        })
        .await?;

    let rooms = prepare_rooms(&bus, in_flight.iter().copied().max().unwrap_or(1)).await?;
    // Each room's participant starts unmuted (`sample_message_size` leaves it so).
    let muted: Arc<Vec<AtomicBool>> = Arc::new(rooms.iter().map(|_| AtomicBool::new(false)).collect());
    let message_size = sample_message_size(&bus, &rooms[0]).await?;
    println!(
        "NATS {nats_url}; {seconds} s per measurement in {rounds} interleaved slices; one event per command, {message_size} B per message\n"
    );
    println!("commands: through CommandBus; raw: plain publish-with-ack; guarded: raw plus the two headers");
    println!("every append carries (Nats-Msg-Id, Nats-Expected-Last-Subject-Sequence)\n");
    println!(
        "{:>9} | {:>11} {:>7} {:>7} | {:>10} {:>7} {:>7} | {:>11} | {:>9} {:>13}",
        "in flight",
        "commands/s",
        "p50 µs",
        "p99 µs",
        "raw msg/s",
        "p50 µs",
        "p99 µs",
        "guarded/s",
        "vs raw",
        "vs guarded"
    );
    // Last stream sequence of each guarded subject, carried across runs.
    let guarded_last: Arc<Vec<AtomicU64>> = Arc::new(rooms.iter().map(|_| AtomicU64::new(0)).collect());
    for &workers in &in_flight {
        let raw_jetstream = jetstream.clone();
        let raw_prefix = format!("{namespace}.raw");
        let raw_operation = move |worker: usize| {
            let jetstream = raw_jetstream.clone();
            let subject = format!("{raw_prefix}.{worker}");
            let payload = bytes::Bytes::from(vec![b'x'; message_size]);
            async move {
                jetstream.publish(subject, payload).await?.await?;
                Ok(())
            }
        };
        let guarded_jetstream = jetstream.clone();
        let guarded_prefix = format!("{namespace}.raw.guarded");
        let last_for_run = Arc::clone(&guarded_last);
        let guarded_operation = move |worker: usize| {
            let jetstream = guarded_jetstream.clone();
            let subject = format!("{guarded_prefix}.{worker}");
            let payload = bytes::Bytes::from(vec![b'x'; message_size]);
            let last = Arc::clone(&last_for_run);
            async move {
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload)
                    .message_id(Uuid::new_v4().to_string())
                    .expected_last_subject_sequence(last[worker].load(Ordering::Relaxed));
                let ack = jetstream.send_publish(subject, publish).await?.await?;
                last[worker].store(ack.sequence, Ordering::Relaxed);
                Ok(())
            }
        };
        let rooms_for_run = rooms.clone();
        let bus_for_run = Arc::clone(&bus);
        let muted_for_run = Arc::clone(&muted);
        let command_operation = move |worker: usize| {
            let bus = Arc::clone(&bus_for_run);
            let (room_id, user) = rooms_for_run[worker].clone();
            // Flip the microphone from wherever the previous run left it.
            let muted = !muted_for_run[worker].fetch_xor(true, Ordering::Relaxed);
            async move {
                let command = RoomCommand::SetAudio { user, muted };
                let outcome = bus.execute(&room_id, command, CommandMetadata::system()).await?;
                anyhow::ensure!(outcome.events.len() == 1, "every command appends one event");
                Ok(())
            }
        };
        let (mut raw, mut guarded, mut commands) = (Tally::new()?, Tally::new()?, Tally::new()?);
        for round in 0..rounds {
            // Round 0 runs raw, guarded, commands; round 1 guarded, commands, raw; and so on.
            for turn in 0..3 {
                match (round + turn) % 3 {
                    0 => raw.add(measure(workers, slice, raw_operation.clone()).await?)?,
                    1 => guarded.add(measure(workers, slice, guarded_operation.clone()).await?)?,
                    _ => commands.add(measure(workers, slice, command_operation.clone()).await?)?,
                }
            }
        }
        println!(
            "{:>9} | {:>11.0} {:>7} {:>7} | {:>10.0} {:>7} {:>7} | {:>11.0} | {:>9.2} {:>13.2}",
            workers,
            commands.per_second(),
            commands.p50_us(),
            commands.p99_us(),
            raw.per_second(),
            raw.p50_us(),
            raw.p99_us(),
            guarded.per_second(),
            commands.per_second() / raw.per_second(),
            commands.per_second() / guarded.per_second()
        );
    }

    long_history_load(&bus, &client, &config).await?;

    let _ = jetstream.delete_stream(&raw_stream).await;
    let _ = jetstream.delete_stream(namespace.events_stream()).await;
    let _ = jetstream.delete_key_value(namespace.snapshots_bucket()).await;
    Ok(())
}

/// One room per worker, each with one participant whose microphone is toggled.
async fn prepare_rooms(bus: &CommandBus<Room>, count: usize) -> anyhow::Result<Vec<(String, UserId)>> {
    let mut rooms = Vec::with_capacity(count);
    for _ in 0..count {
        let room_id = Uuid::new_v4().to_string();
        let host = UserId::new_random();
        bus.execute(&room_id, create_command(host), CommandMetadata::system()).await?;
        bus.execute(
            &room_id,
            RoomCommand::Join { user: host, password: None, invited: false },
            CommandMetadata::system(),
        )
        .await?;
        rooms.push((room_id, host));
    }
    Ok(rooms)
}

fn create_command(host: UserId) -> RoomCommand {
    RoomCommand::Create {
        host,
        name: RoomName::parse("Benchmark room".into()).expect("valid"),
        description: RoomDescription::parse(String::new()).expect("valid"),
        password: None,
        max_users: MaxUsers::parse(100).expect("valid"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

/// Size of the message one `SetAudio` command appends, for the raw baseline.
async fn sample_message_size(bus: &CommandBus<Room>, (room_id, user): &(String, UserId)) -> anyhow::Result<usize> {
    let command = RoomCommand::SetAudio { user: *user, muted: true };
    bus.execute(room_id, command, CommandMetadata::by(user.to_string())).await?;
    let command = RoomCommand::SetAudio { user: *user, muted: false };
    bus.execute(room_id, command, CommandMetadata::by(user.to_string())).await?;
    let commits = bus.store().read_events(room_id).await?;
    let last = &commits.last().expect("events were appended").1;
    Ok(serde_json::to_vec(last)?.len())
}

/// Runs `workers` tasks, each looping over `operation` for `duration` and awaiting
/// each before starting the next (so `workers` operations are in flight).
async fn measure<F, Fut>(workers: usize, duration: Duration, operation: F) -> anyhow::Result<Tally>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let operation = Arc::clone(&operation);
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3)?;
            while Instant::now() < deadline {
                let began = Instant::now();
                operation(worker).await?;
                histogram.record(began.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(histogram)
        }));
    }
    let mut tally = Tally::new()?;
    for task in tasks {
        tally.latencies_us.add(task.await??)?;
    }
    tally.seconds = started.elapsed().as_secs_f64();
    Ok(tally)
}

/// A room with 10,000 events: load time from a snapshot (a fresh process with an
/// empty cache) against replaying every event.
async fn long_history_load(
    bus: &CommandBus<Room>,
    client: &async_nats::Client,
    config: &EventStoreConfig,
) -> anyhow::Result<()> {
    let room_id = Uuid::new_v4().to_string();
    let host = UserId::new_random();
    bus.execute(&room_id, create_command(host), CommandMetadata::system()).await?;
    bus.execute(&room_id, RoomCommand::Join { user: host, password: None, invited: false }, CommandMetadata::system())
        .await?;
    let mut version = 2;
    while version < 10_000 {
        let command = RoomCommand::SetAudio { user: host, muted: version % 2 == 0 };
        version = bus.execute(&room_id, command, CommandMetadata::system()).await?.version;
    }
    let fresh = JetStreamEventStore::<Room>::open(client.clone(), config.clone()).await?;
    let began = Instant::now();
    let loaded = fresh.load(&room_id).await?;
    let from_snapshot = began.elapsed();
    let began = Instant::now();
    let replayed = fresh.replay(&room_id, None).await?;
    let full_replay = began.elapsed();
    anyhow::ensure!(loaded.state.aggregate == replayed.aggregate, "snapshot load differs from replay");
    println!(
        "\nroom with {} events: load from snapshot {:.1} ms, full replay {:.1} ms",
        replayed.version,
        from_snapshot.as_secs_f64() * 1e3,
        full_replay.as_secs_f64() * 1e3
    );
    Ok(())
}
