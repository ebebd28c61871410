//! Media forwarding: real webrtc-rs clients (ICE, DTLS, SRTP) over loopback
//! through the SFU, beside a bare UDP relay of the same packets in the same run.
//!
//!     cargo bench -p rapat-sfu --bench forward
//!
//! `BENCH_SPREAD_MS` (default 5) is the pause between two clients' starts.
//!
//! `BENCH_SIMULCAST` (default "50,200") runs one publisher sending its camera in
//! three simulcast layers (each at the single stream's rate) to N subscribers that
//! show it at 180, 360 or full height (a third each); during the window a
//! rotating third of them flips between the smallest and the full size every
//! 500 ms, so the SFU switches layers (at keyframes it asks for) all along. The
//! row adds layer switches per second, counted at the subscribers.
//!
//! `BENCH_RECORDING` (default "5") runs an N×N meeting (2N published tracks)
//! twice in the same run, not recorded and recorded (every track written to a
//! file in a scratch directory by the SFU's recording thread, whose CPU counts
//! as the SFU's), both sending VP8-shaped frames (a keyframe header, 5 packets a
//! frame at 30 frames/s) and Opus-shaped packets, so the recorder assembles
//! frames and writes WebM and Ogg as it would for a browser. The "rec cost"
//! line is 1 - (recorded RTP/s/core) / (not recorded RTP/s/core).
//! `BENCH_BWE` (default "10") runs N subscribers whose downlinks drop from
//! 2 Mbit/s to 400 kbit/s and come back (`forward/bwe.rs`): time to settle on
//! a fitting layer, frozen time, time to the full layer again.
//!
//! `BENCH_SIMULCAST_ESTIMATE` (default "on"; "on,off" for both in the same run)
//! runs each simulcast size with the SFU's downlink estimate (TWCC sender side,
//! the estimator and the layer choice fitting it) on or off.
//!
//! `BENCH_IDLE` (default none, e.g. "100,200,400") connects N subscribers to a
//! publisher that then stops sending, and measures the SFU threads' CPU over
//! `BENCH_IDLE_SECONDS` (default 20) of idle peers (`forward/idle.rs`).
//!
//! Every SFU scenario prints a "connect" line: clients connected (ICE and DTLS)
//! and how long each took from its own start, and lists any client not
//! connected within 30 s with what it had seen (`forward/connect.rs`).
//!
//! Scenarios: one publisher to N subscribers (`BENCH_FANOUT`, default
//! "10,50,100,200,400") and N×N meetings (`BENCH_MEETING`, default "5,10"). Each
//! publisher sends ~1.5 Mbit/s of VP8 (150 packets/s of 1,200 B) and Opus (50
//! packets/s). After every subscriber receives, the run measures `BENCH_SECONDS`
//! (default 10): outgoing packets/s, the SFU threads' CPU (utime+stime from
//! /proc/self/task), packets/s per core, loss per subscriber, and one-way delay
//! publisher→SFU→subscriber (p50/p99). The bare relay forwards the same packet
//! sizes and rate without ICE/DTLS/SRTP; its per-core rate is the baseline.
//! The clients run in this process too, on the same cores, as they would on a
//! one-machine test: their decryption competes with the SFU for CPU.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rapat_sfu::loopback_client::{ClientOptions, LoopbackClient, MediaClip, Signal};
use rapat_sfu::{Admission, Admitted, Refused, RoomChange, Sfu, SfuConfig, SfuHandle};
use rapat_wire::signal::{SfuRequest, SfuRequestKind};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use uuid::Uuid;

#[path = "forward/bwe.rs"]
mod bwe;
#[path = "forward/connect.rs"]
mod connect;
#[path = "forward/idle.rs"]
mod idle;

const VIDEO_PPS: u32 = 150;
const AUDIO_PPS: u32 = 50;

/// What `through_sfu` sets up.
#[derive(Clone, Copy, Debug, Default)]
struct Scenario {
    publishers: usize,
    subscribers_per_publisher: usize,
    /// Publishers send three layers and subscribers ask for different sizes.
    simulcast: bool,
    recorded: Option<Recorded>,
    /// The SFU's downlink estimate and the layer choice fitting it turned off.
    no_estimate: bool,
    /// The publishers stop sending once everyone received: the window sees idle peers.
    idle: bool,
}

impl Scenario {
    fn new(publishers: usize, subscribers_per_publisher: usize) -> Self {
        Self { publishers, subscribers_per_publisher, ..Self::default() }
    }
}

/// The benchmark measures media, not admission: everyone is let in.
struct AdmitAll;

impl Admission for AdmitAll {
    fn check(&self, _room: Uuid, _user: Uuid) -> BoxFuture<'static, Result<Admitted, Refused>> {
        Box::pin(async { Ok(Admitted { audio_muted: false, max_users: u32::MAX, as_of: 0 }) })
    }
}

/// Routes the SFU's messages to the client with that connection id.
type Routes = Arc<Mutex<HashMap<Uuid, UnboundedSender<Signal>>>>;

struct Figures {
    /// Forwarded RTP packets per second (for the relay: packets sent).
    out_pps: f64,
    /// Every datagram the SFU sent per second, RTCP and retransmissions included.
    datagrams_pps: f64,
    cpu_cores: f64,
    mean_loss: f64,
    max_loss: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Layer changes the subscribers saw per second (simulcast scenarios).
    switches_per_s: f64,
    /// Datagrams the SFU received per second.
    datagrams_in_pps: f64,
}

impl Figures {
    fn per_core(&self) -> f64 {
        if self.cpu_cores > 0.0 { self.out_pps / self.cpu_cores } else { 0.0 }
    }
}

fn main() -> anyhow::Result<()> {
    // `RUST_LOG` (e.g. "rapat_sfu=debug,rtc_ice=info") shows the SFU's and webrtc-rs's log on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let fanouts = env_list("BENCH_FANOUT", "10,50,100,200,400");
    let meetings = env_list("BENCH_MEETING", "5,10");
    let simulcast = env_list("BENCH_SIMULCAST", "50,200");
    let recording = env_list("BENCH_RECORDING", "5");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let window = Duration::from_secs(seconds);
    println!("cores: {}, window {seconds} s per scenario", std::thread::available_parallelism().map_or(0, usize::from));
    println!(
        "{:<14} {:>11} {:>11} {:>9} {:>12} {:>10} {:>10} {:>8} {:>8} {:>9}",
        "scenario",
        "RTP out/s",
        "all out/s",
        "SFU cpu",
        "RTP/s/core",
        "mean loss",
        "max loss",
        "p50 ms",
        "p99 ms",
        "vs relay"
    );
    for n in fanouts {
        let relay = bare_relay(1, n, window)?;
        let sfu = runtime.block_on(through_sfu(Scenario::new(1, n), window))?;
        print_row(&format!("1→{n}"), &sfu, &relay);
    }
    for n in meetings {
        let relay = bare_relay(n, n - 1, window)?;
        let sfu = runtime.block_on(through_sfu(Scenario::new(n, n - 1), window))?;
        print_row(&format!("{n}×{n}"), &sfu, &relay);
    }
    for n in recording {
        let relay = bare_relay(n, n - 1, window)?;
        let plain = runtime
            .block_on(through_sfu(Scenario { recorded: Some(Recorded::No), ..Scenario::new(n, n - 1) }, window))?;
        print_row(&format!("{n}×{n} media"), &plain, &relay);
        let recorded = runtime
            .block_on(through_sfu(Scenario { recorded: Some(Recorded::Yes), ..Scenario::new(n, n - 1) }, window))?;
        print_row(&format!("{n}×{n} rec"), &recorded, &relay);
        let cost = 1.0 - recorded.per_core() / plain.per_core().max(1.0);
        println!(
            "{:<14} {:>11.1}% of forwarded RTP/s per core ({} tracks recorded)",
            "  rec cost",
            cost * 100.0,
            2 * n
        );
    }
    // `BENCH_SIMULCAST_ESTIMATE=on,off` runs each simulcast size with the downlink
    // estimate on and off in the same run (default: on only).
    let estimate_modes = std::env::var("BENCH_SIMULCAST_ESTIMATE").unwrap_or_else(|_| "on".into());
    for n in simulcast {
        let relay = bare_relay(1, n, window)?;
        for mode in estimate_modes.split(',').map(str::trim).filter(|mode| !mode.is_empty()) {
            let scenario = Scenario { simulcast: true, no_estimate: mode == "off", ..Scenario::new(1, n) };
            let sfu = runtime.block_on(through_sfu(scenario, window))?;
            print_row(&format!("1→{n} sim {mode}"), &sfu, &relay);
            println!("{:<14} {:>11.1} layer switches/s at the subscribers", "", sfu.switches_per_s);
        }
    }
    // `BENCH_IDLE` (default none): N subscribers and a publisher that stopped
    // sending: the SFU's CPU for keep-alives and RTCP timers alone.
    let idle_window = Duration::from_secs(env_or("BENCH_IDLE_SECONDS", 20));
    for n in env_list("BENCH_IDLE", "") {
        let figures = runtime.block_on(through_sfu(Scenario { idle: true, ..Scenario::new(1, n) }, idle_window))?;
        idle::print(n, &figures);
    }
    for n in env_list("BENCH_BWE", "10") {
        let figures = runtime.block_on(bwe::bandwidth_drop(n))?;
        bwe::print(n, &figures);
    }
    Ok(())
}

fn print_row(name: &str, sfu: &Figures, relay: &Figures) {
    println!(
        "{name:<14} {:>11.0} {:>11.0} {:>9.2} {:>12.0} {:>9.3}% {:>9.3}% {:>8.2} {:>8.2} {:>9.3}",
        sfu.out_pps,
        sfu.datagrams_pps,
        sfu.cpu_cores,
        sfu.per_core(),
        sfu.mean_loss * 100.0,
        sfu.max_loss * 100.0,
        sfu.p50_ms,
        sfu.p99_ms,
        sfu.per_core() / relay.per_core().max(1.0),
    );
    println!(
        "{:<14} {:>11.0} {:>11.0} {:>9.2} {:>12.0} {:>9.3}% {:>9.3}% {:>8.2} {:>8.2}",
        "  bare relay",
        relay.out_pps,
        relay.datagrams_pps,
        relay.cpu_cores,
        relay.per_core(),
        relay.mean_loss * 100.0,
        relay.max_loss * 100.0,
        relay.p50_ms,
        relay.p99_ms
    );
}

/// `publishers` each send to the SFU; everyone else in the room
/// (`subscribers_per_publisher` plus `publishers` less one in all) receives.
/// In a fan-out the subscribers publish nothing.
/// With `simulcast`, publishers send three layers and subscribers ask for different sizes.
/// Starts an SFU that admits everyone, and routes its messages to the clients
/// registered in the returned map.
fn start_sfu(config: SfuConfig) -> anyhow::Result<(Sfu, Routes)> {
    let (sfu, mut outgoing) = Sfu::start(config, Arc::new(AdmitAll))?;
    let routes: Routes = Arc::default();
    let router = Arc::clone(&routes);
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let route = router.lock().ok().and_then(|routes| routes.get(&message.to.connection).cloned());
            if let Some(route) = route {
                let _ = route.send((message.kind.as_str().to_string(), message.payload));
            }
        }
    });
    Ok((sfu, routes))
}

async fn through_sfu(scenario: Scenario, window: Duration) -> anyhow::Result<Figures> {
    let Scenario { publishers, subscribers_per_publisher, simulcast, recorded, .. } = scenario;
    let mut config = SfuConfig::new("127.0.0.1:0".parse()?);
    config.workers = env_or("BENCH_WORKERS", 2) as usize; // `BENCH_WORKERS`: media workers (default 2)
    config.downlink_estimate = !scenario.no_estimate;
    config.media_max_age = connect::media_max_age(env_or);
    let recordings = std::env::temp_dir().join(format!("rapat-bench-recordings-{}", Uuid::new_v4()));
    config.recordings_dir = recordings.clone();
    let (sfu, routes) = start_sfu(config)?;
    let room = Uuid::new_v4();
    let listeners = if publishers == 1 { subscribers_per_publisher } else { 0 };
    let mut clients = Vec::new();
    let mut watch = connect::ConnectWatch::default();
    let mut publisher_ids = Vec::new();
    for index in 0..publishers + listeners {
        let publishing = index < publishers;
        let user = Uuid::new_v4();
        if publishing {
            publisher_ids.push(user.to_string());
        }
        let mut options = if publishing { ClientOptions::publisher() } else { ClientOptions::subscriber() };
        options.record_delays = true;
        options.simulcast = simulcast && publishing;
        if recorded.is_some() {
            options.clip = Some(Arc::new(shaped_clip()));
        }
        let connection = Uuid::new_v4();
        watch.started(connection);
        clients.push(connect(&sfu.handle(), &routes, room, user, connection, options).await?);
        // Spread the handshakes a little (`BENCH_SPREAD_MS`, 0 for a storm).
        tokio::time::sleep(Duration::from_millis(env_or("BENCH_SPREAD_MS", 5))).await;
    }
    let expected_tracks = |client_index: usize| if client_index < publishers { publishers - 1 } else { publishers };
    let started = Instant::now();
    loop {
        let ready = clients.iter().enumerate().all(|(index, client)| {
            let tracks = client.stats().tracks();
            tracks.iter().filter(|t| t.packets >= 20).count() >= 2 * expected_tracks(index)
        });
        watch.observe(&clients, &sfu.handle());
        if ready {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            watch.print(&clients, &sfu.handle());
            let ready = clients
                .iter()
                .enumerate()
                .filter(|(i, c)| {
                    c.stats().tracks().iter().filter(|t| t.packets >= 20).count() >= 2 * expected_tracks(*i)
                })
                .count();
            anyhow::bail!("only {ready} of {} clients receive after 2 minutes", clients.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.print(&clients, &sfu.handle());
    if scenario.idle {
        for client in &clients[..publishers] {
            client.set_publishing(false);
        }
        // Until a worker that fell behind is through: nothing forwarded for a second.
        let mut forwarded = sfu.handle().counters().rtp_forwarded;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = sfu.handle().counters().rtp_forwarded;
            if now == forwarded {
                break;
            }
            forwarded = now;
        }
    }
    // A third of the subscribers each at 180, 360 and the full height; then time
    // for the switches this asks for to happen.
    const HEIGHTS: [u16; 3] = [180, 360, 720];
    let subscribers = &clients[publishers..];
    if simulcast {
        for (index, client) in subscribers.iter().enumerate() {
            client.send_video_constraints(&publisher_ids[0], HEIGHTS[index % 3]);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let layers_seen = || -> usize {
        clients.iter().flat_map(|c| c.stats().tracks()).map(|track| track.layers.len().saturating_sub(1)).sum()
    };
    if recorded == Some(Recorded::Yes) {
        sfu.handle().room_changed(RoomChange::Recording { room, on: true }, 0);
        // Every file open and writing before the window.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let switches_before = layers_seen();
    // Start the window clean: counters and delays from here on.
    let baseline: Vec<Vec<rapat_sfu::loopback_client::TrackStats>> =
        clients.iter().map(|c| c.stats().tracks()).collect();
    let before = sfu.handle().counters();
    let cpu_before = sfu_cpu_seconds();
    let wall = Instant::now();
    let mut flips = 0usize;
    while wall.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500).min(window)).await;
        if simulcast {
            // A rotating third flips between the smallest and the full size.
            for (index, client) in subscribers.iter().enumerate().filter(|(index, _)| index % 3 == flips % 3) {
                let small = (flips / 3 + index).is_multiple_of(2);
                client.send_video_constraints(&publisher_ids[0], if small { HEIGHTS[0] } else { HEIGHTS[2] });
            }
            flips += 1;
        }
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let switches = layers_seen().saturating_sub(switches_before);
    let cpu = sfu_cpu_seconds() - cpu_before;
    let after = connect::print_queues(&before, sfu.handle().counters());
    let (rtp, datagrams) = (after.rtp_forwarded - before.rtp_forwarded, after.datagrams_out - before.datagrams_out);
    let datagrams_in = after.datagrams_in - before.datagrams_in;
    let mut losses = Vec::new();
    let mut delays = Vec::new();
    for (client, before) in clients.iter().zip(&baseline) {
        let mut expected = 0u64;
        let mut received = 0u64;
        for track in client.stats().tracks() {
            let previous = before.iter().find(|b| b.stream_id == track.stream_id && b.kind == track.kind);
            let (prev_expected, prev_packets, prev_delays) =
                previous.map_or((0, 0, 0), |p| (p.expected, p.packets, p.delays_us.len()));
            expected += track.expected - prev_expected;
            received += track.packets - prev_packets;
            delays.extend_from_slice(&track.delays_us[prev_delays.min(track.delays_us.len())..]);
        }
        if expected > 0 {
            losses.push(expected.saturating_sub(received) as f64 / expected as f64);
        }
    }
    drop(clients);
    let recording_dropped = sfu.handle().recording_packets_dropped();
    drop(sfu);
    if recorded == Some(Recorded::Yes) {
        let files = std::fs::read_dir(recordings.join(room.to_string())).map_or(0, |dir| dir.count());
        println!("recorded: {files} files, {recording_dropped} packets dropped on the way to the recording thread");
    }
    let _ = std::fs::remove_dir_all(&recordings);
    let mut figures = summarise(rtp as f64 / elapsed, datagrams as f64 / elapsed, cpu / elapsed, &losses, &mut delays);
    figures.switches_per_s = switches as f64 / elapsed;
    figures.datagrams_in_pps = datagrams_in as f64 / elapsed;
    Ok(figures)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    No,
    Yes,
}

/// VP8- and Opus-shaped media at the usual rates: a 5,500-byte frame (a keyframe
/// header, then filler) 30 times a second is 150 packets/s; 160-byte CELT
/// packets 50 times a second. Not decodable, but the recorder's work is the same.
fn shaped_clip() -> MediaClip {
    let mut frame = vec![0u8; 5_500];
    frame[..10].copy_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    let mut opus = vec![0u8; 160];
    opus[0] = 0xf8;
    MediaClip {
        opus: vec![bytes::Bytes::from(opus)],
        vp8: vec![bytes::Bytes::from(frame)],
        frames_per_second: 30,
        lose_every: None,
    }
}

async fn connect(
    sfu: &SfuHandle,
    routes: &Routes,
    room: Uuid,
    user: Uuid,
    connection: Uuid,
    options: ClientOptions,
) -> anyhow::Result<LoopbackClient> {
    let (to_sfu, mut from_client) = unbounded_channel::<Signal>();
    let (to_client, from_sfu) = unbounded_channel::<Signal>();
    routes.lock().map_err(|_| anyhow::anyhow!("routes poisoned"))?.insert(connection, to_client);
    let sfu = sfu.clone();
    tokio::spawn(async move {
        while let Some((kind, payload)) = from_client.recv().await {
            let Some(kind) = SfuRequestKind::from_client_type(&kind) else { continue };
            sfu.signal(SfuRequest {
                kind,
                room_id: room,
                user_id: user,
                username: String::new(),
                connection_id: connection,
                payload,
            });
        }
    });
    Ok(LoopbackClient::start(options, to_sfu, from_sfu).await?)
}

fn summarise(out_pps: f64, datagrams_pps: f64, cpu_cores: f64, losses: &[f64], delays_us: &mut [u32]) -> Figures {
    delays_us.sort_unstable();
    let percentile = |p: f64| {
        delays_us
            .get(((delays_us.len() as f64 * p) as usize).min(delays_us.len().saturating_sub(1)))
            // No delays when the media carried no send stamp (a clip): not a delay of 0.
            .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
    };
    Figures {
        out_pps,
        datagrams_pps,
        cpu_cores,
        mean_loss: if losses.is_empty() { 0.0 } else { losses.iter().sum::<f64>() / losses.len() as f64 },
        max_loss: losses.iter().copied().fold(0.0, f64::max),
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        switches_per_s: 0.0,
        datagrams_in_pps: 0.0,
    }
}

/// utime+stime of this process's threads whose name starts with `prefix`, in seconds.
fn threads_cpu_seconds(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let mut total = 0u64;
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that closes the name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += field(11) + field(12);
    }
    total as f64 / ticks
}

fn sfu_cpu_seconds() -> f64 {
    threads_cpu_seconds("rapat-sfu")
}

/// The same packets through plain UDP: one relay thread per core receives each
/// publisher packet and sends a copy to every subscriber; no ICE, DTLS or SRTP.
fn bare_relay(publishers: usize, subscribers_per_publisher: usize, window: Duration) -> anyhow::Result<Figures> {
    let relay = UdpSocket::bind("127.0.0.1:0")?;
    relay.set_read_timeout(Some(Duration::from_millis(100)))?;
    let relay_addr = relay.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let subscribers: Vec<UdpSocket> =
        (0..subscribers_per_publisher.max(1)).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    let targets: Vec<_> = subscribers.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?;
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let delays = Arc::new(Mutex::new(Vec::<u32>::new()));
    let epoch = Instant::now();
    let mut threads = Vec::new();
    let relay = Arc::new(relay);
    for index in 0..2 {
        let (relay, targets, stop, sent) = (Arc::clone(&relay), targets.clone(), Arc::clone(&stop), Arc::clone(&sent));
        threads.push(std::thread::Builder::new().name(format!("bare-relay-{index}")).spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, _)) = relay.recv_from(&mut buf) else { continue };
                for target in &targets {
                    if relay.send_to(&buf[..len], target).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })?);
    }
    for (index, socket) in subscribers.into_iter().enumerate() {
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let (stop, received, delays) = (Arc::clone(&stop), Arc::clone(&received), Arc::clone(&delays));
        threads.push(std::thread::Builder::new().name(format!("relay-sink-{index}")).spawn(move || {
            let mut buf = [0u8; 1500];
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(len) = socket.recv(&mut buf)
                    && len >= 8
                {
                    received.fetch_add(1, Ordering::Relaxed);
                    let stamp = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                    let now = epoch.elapsed().as_micros() as u64;
                    local.push(now.saturating_sub(stamp) as u32);
                }
            }
            if let Ok(mut delays) = delays.lock() {
                delays.extend(local);
            }
        })?);
    }
    for index in 0..publishers {
        let stop = Arc::clone(&stop);
        threads.push(std::thread::Builder::new().name(format!("relay-source-{index}")).spawn(move || {
            let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else { return };
            let started = Instant::now();
            let (mut video, mut audio) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let elapsed = started.elapsed().as_secs_f64();
                let send = |size: usize| {
                    let mut packet = vec![0u8; size];
                    packet[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
                    let _ = socket.send_to(&packet, relay_addr);
                };
                while video < (elapsed * f64::from(VIDEO_PPS)) as u64 {
                    send(1200 + 12);
                    video += 1;
                }
                while audio < (elapsed * f64::from(AUDIO_PPS)) as u64 {
                    send(160 + 12);
                    audio += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (sent_before, received_before, cpu_before) =
        (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed), threads_cpu_seconds("bare-relay"));
    let wall = Instant::now();
    std::thread::sleep(window);
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = threads_cpu_seconds("bare-relay") - cpu_before;
    let sent_in_window = sent.load(Ordering::Relaxed) - sent_before;
    let received_in_window = received.load(Ordering::Relaxed) - received_before;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let loss = if sent_in_window > 0 {
        sent_in_window.saturating_sub(received_in_window) as f64 / sent_in_window as f64
    } else {
        0.0
    };
    let mut delays = delays.lock().map(|d| d.clone()).unwrap_or_default();
    let pps = sent_in_window as f64 / elapsed;
    Ok(summarise(pps, pps, cpu / elapsed, &[loss], &mut delays))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|n| n.trim().parse().ok()).collect()
}
