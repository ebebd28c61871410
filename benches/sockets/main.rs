//! WebSockets at scale: many sockets held by `rapat serve`, and how fast and how
//! cheaply it fans chat and media state out to them, beside a bare axum WebSocket
//! broadcast server measured in the same run with the same clients.
//!
//!     cargo bench -p rapat --bench sockets
//!
//! The bench starts `rapat serve` as its own process (so its memory and CPU are
//! its own), registers users, creates rooms of ten and joins everyone through the
//! REST API. Then client processes (one per core, this same binary) open one
//! socket per (room, member), from source addresses spread over 127.0.0.0/8, and
//! the bench measures, for each server:
//!
//! 1. connecting every socket, and the server's resident memory per idle socket
//!    (after minus before, divided by the sockets) and CPU while idle;
//! 2. chat at a fixed rate (`BENCH_CHAT_RATE`, default 1,000 messages/s in, each
//!    fanned out to the room's ten sockets): delivery delay p50/p99 from send to
//!    receipt, deliveries per second, server CPU;
//! 3. chat at a high rate (`BENCH_MAX_RATE`, default 5,000/s): deliveries per
//!    second achieved, the fan-out rate compared between the two servers;
//! 4. rapat only: media state (`mute` toggles, each a command and an event fanned
//!    out to the room) at `BENCH_MEDIA_RATE` (default 200/s).
//!
//! Settings: `NATS_URL`, `DATABASE_URL` (its database is replaced by a fresh one,
//! dropped at the end), `BENCH_SOCKETS` (default 10,000), `BENCH_USERS` (default
//! 1,000), `BENCH_SECONDS` per phase (default 10), `BENCH_CLIENTS` client processes
//! (default: the number of cores). The bench is not part of the test suite.

mod bare;
mod client;
mod server;

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use server::{Coordinator, Target};

/// How many sockets share one room.
pub const ROOM_SIZE: usize = 10;

/// What the coordinator tells a client process, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "camelCase")]
pub enum Order {
    /// Open these sockets: `ws://{address}/ws?roomId=..&token=..`; `rooms[i]` holds
    /// the tokens of room i's members.
    Connect {
        address: String,
        rooms: Vec<RoomSockets>,
        first_source: u32,
    },
    /// Send `kind` messages at `rate` per second for `seconds`, then report.
    Send {
        kind: MessageKind,
        rate: f64,
        seconds: f64,
    },
    Quit,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSockets {
    pub room_id: String,
    pub tokens: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageKind {
    Chat,
    Mute,
}

/// What a client process answers to an order.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub connected: usize,
    pub failed: usize,
    pub closed: usize,
    pub sent: u64,
    pub delivered: u64,
    /// The delays of the deliveries, an hdrhistogram in its V2 form, base64.
    pub delays: String,
    /// Close frames seen during the order: (code and reason, how many).
    pub close_reasons: Vec<(String, usize)>,
    pub error: Option<String>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parsed<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    env_or(name, default).parse().with_context(|| format!("{name} must be a number"))
}

fn main() -> anyhow::Result<()> {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("client") => client::main(),
        Ok("bare") => bare::main(),
        _ => coordinate(),
    }
}

#[tokio::main]
async fn coordinate() -> anyhow::Result<()> {
    let sockets: usize = parsed("BENCH_SOCKETS", "10000")?;
    let users: usize = parsed("BENCH_USERS", "1000")?;
    let seconds: f64 = parsed("BENCH_SECONDS", "10")?;
    let chat_rate: f64 = parsed("BENCH_CHAT_RATE", "1000")?;
    let max_rate: f64 = parsed("BENCH_MAX_RATE", "5000")?;
    let media_rate: f64 = parsed("BENCH_MEDIA_RATE", "200")?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let clients: usize = parsed("BENCH_CLIENTS", &cores.to_string())?;
    anyhow::ensure!(users >= ROOM_SIZE, "BENCH_USERS must be at least {ROOM_SIZE}");
    let rooms = sockets.div_ceil(ROOM_SIZE);

    let coordinator = Coordinator::start(sockets).await?;
    let result = async {
        println!("{} sockets in {rooms} rooms of {ROOM_SIZE}, {users} users, {clients} client processes, {seconds} s per phase\n", rooms * ROOM_SIZE);
        let members = coordinator.populate(users, rooms).await?;
        let mut results = Vec::new();
        for target in [Target::Rapat, Target::Bare] {
            let phases = server::Phases { seconds, chat_rate, max_rate, media_rate };
            results.push(coordinator.measure(target, &members, clients, &phases).await?);
        }
        server::print(&results);
        anyhow::Ok(())
    }
    .await;
    coordinator.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    result
}
