//! Replay speed: `rebuild` of every read model and `events export`,
//! beside a raw batched Postgres insert of the same audit rows and a raw JetStream
//! read of the same messages, on the same servers in the same run.
//!
//!     cargo bench -p rapat-projections --bench rebuild
//!
//! `BENCH_COMMANDS` (default 20000) sets how many room commands are generated, one
//! event per message, as the write side stores them. `NATS_URL` and `DATABASE_URL`
//! point at the servers (a database and a stream of its own are created and dropped).

mod scratch;

use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull};
use chrono::Utc;
use cqrs_es::DomainEvent;
use futures::StreamExt;
use rapat_domain::envelope::{StoredCommit, StoredEvent, schema_version_of, split_event};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use rapat_projections::{Projection, ProjectorConfig};
use sqlx::PgPool;
use uuid::Uuid;

use scratch::Scratch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let commands: usize = std::env::var("BENCH_COMMANDS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let (nats_url, base_url) = scratch::service_urls();
    let jetstream = jetstream::new(async_nats::connect(&nats_url).await?);
    let scratch = Scratch::create(&jetstream, &base_url).await?;
    let config = scratch.config.clone();
    let pool = rapat_projections::connect(&scratch.database_url()).await?;

    let history = generate(commands);
    let events = history.len();
    publish(&jetstream, &config, &history).await?;
    println!("{events} events in {events} messages (room commands), Postgres and NATS on this machine\n");

    let read = raw_read(&jetstream, &config).await?;
    let export = export(&jetstream, &config).await?;
    let insert = raw_insert(&pool, &history).await?;
    // Every projection, rebuilt one after another from this history of room events:
    // those that read none of them replay nothing and are listed apart.
    let mut rebuilt = Vec::new();
    for projection in Projection::ALL {
        rebuilt.push((projection, rebuild(&pool, &jetstream, &config, projection).await?));
    }

    println!("{:<44} {:>12}", "measurement", "events/s");
    println!("{:<44} {:>12.0}", "raw JetStream read (pull consumer)", read);
    println!(
        "{:<44} {:>12.0}   {:.2} of raw read",
        "rapat events export (JSON Lines, discarded)",
        export,
        export / read
    );
    println!("{:<44} {:>12.0}", "raw batched insert of the audit rows", insert);
    let mut idle = Vec::new();
    for (projection, report) in &rebuilt {
        if report.events == 0 {
            idle.push(projection.name());
            continue;
        }
        let name = format!("rebuild {} ({} events)", projection.name(), report.events);
        println!(
            "{:<44} {:>12.0}   {:.2} of raw insert",
            name,
            report.events_per_second,
            report.events_per_second / insert
        );
    }
    println!("\nno room events to replay: {}", idle.join(", "));

    pool.close().await;
    scratch.remove(&jetstream).await
}

/// Rooms of 10 seats: created, filled, then microphones toggled, as a meeting does.
fn generate(commands: usize) -> Vec<StoredEvent> {
    let mut history = Vec::with_capacity(commands);
    let mut room = (Uuid::new_v4(), 0u64);
    let mut users: Vec<UserId> = Vec::new();
    for n in 0..commands {
        let event = match n % 50 {
            0 => {
                room = (Uuid::new_v4(), 0);
                users = (0..10).map(|_| UserId::new_random()).collect();
                RoomEvent::RoomCreated {
                    host_id: users[0],
                    name: RoomName::parse(format!("Room {n}")).expect("valid name"),
                    description: RoomDescription::parse(String::new()).expect("valid description"),
                    password_hash: None,
                    max_users: MaxUsers::parse(10).expect("valid max users"),
                    scheduled_at: None,
                    duration_minutes: None,
                }
            }
            step @ 1..=10 => RoomEvent::ParticipantJoined { user_id: users[step - 1] },
            step => RoomEvent::ParticipantAudioChanged { user_id: users[step % 10], muted: (step / 10) % 2 == 1 },
        };
        room.1 += 1;
        history.push(stored(room.0, room.1, &event));
    }
    history
}

fn stored(room: Uuid, version: u64, event: &RoomEvent) -> StoredEvent {
    let (event_type, payload) = split_event(event).expect("room events split");
    debug_assert_eq!(event_type, event.event_type());
    StoredEvent {
        event_id: Uuid::new_v4(),
        aggregate_type: "room".into(),
        aggregate_id: room.to_string(),
        aggregate_version: version,
        event_type,
        schema_version: schema_version_of(event).expect("numeric version"),
        timestamp: Utc::now(),
        actor: None,
        correlation_id: None,
        command_id: Uuid::new_v4().to_string(),
        payload,
    }
}

async fn publish(
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    history: &[StoredEvent],
) -> anyhow::Result<()> {
    for window in history.chunks(1000) {
        let mut acks = Vec::with_capacity(window.len());
        for event in window {
            let subject = config.namespace.event_subject("room", &event.aggregate_id);
            let body = serde_json::to_vec(&StoredCommit { events: vec![event.clone()] })?;
            acks.push(jetstream.publish(subject, body.into()).await?);
        }
        for ack in acks {
            ack.await?;
        }
    }
    Ok(())
}

/// Every message of the stream through a pull consumer, decoded as the projector does.
async fn raw_read(jetstream: &jetstream::Context, config: &ProjectorConfig) -> anyhow::Result<f64> {
    let stream = jetstream.get_stream(config.namespace.events_stream()).await?;
    let total = stream.get_info().await?.state.messages;
    let consumer = stream
        .create_consumer(pull::Config { ack_policy: jetstream::consumer::AckPolicy::None, ..Default::default() })
        .await?;
    let started = Instant::now();
    let mut messages = consumer.stream().max_messages_per_batch(500).messages().await?;
    let mut read = 0;
    while read < total {
        let message = messages.next().await.ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        let _: StoredCommit = serde_json::from_slice(&message.payload)?;
        read += 1;
    }
    Ok(read as f64 / started.elapsed().as_secs_f64())
}

/// `rapat events export` of the whole stream, into a writer that keeps nothing.
async fn export(jetstream: &jetstream::Context, config: &ProjectorConfig) -> anyhow::Result<f64> {
    let filter = rapat_projections::export::ExportFilter::default();
    let mut sink = std::io::sink();
    let report =
        rapat_projections::export::export_jsonl(jetstream, &config.namespace, &filter, &mut sink, |_| {}).await?;
    Ok(report.events as f64 / report.elapsed.as_secs_f64())
}

/// The audit rows, 500 per multi-row INSERT (UNNEST of arrays), into a copy of the
/// audit table: what a hand-written bulk loader would do.
async fn raw_insert(pool: &PgPool, history: &[StoredEvent]) -> anyhow::Result<f64> {
    sqlx::query("CREATE TABLE bench_audit (LIKE audit_events INCLUDING ALL)").execute(pool).await?;
    let started = Instant::now();
    for chunk in history.chunks(500) {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO bench_audit (event_id, stream_sequence, aggregate_type, aggregate_id, aggregate_version, \
             event_type, schema_version, actor, correlation_id, command_id, occurred_at, payload) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], \
             $7::int4[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::jsonb[])",
        )
        .bind(chunk.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind((0..chunk.len() as i64).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.aggregate_type.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.aggregate_id.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.aggregate_version as i64).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.schema_version as i32).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.actor.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.correlation_id.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.command_id.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.timestamp).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(history.len() as f64 / started.elapsed().as_secs_f64())
}

async fn rebuild(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
) -> anyhow::Result<rapat_projections::RebuildReport> {
    Ok(rapat_projections::rebuild(pool, jetstream, config, projection, |_| {}).await?)
}
