//! A client process: holds its share of the sockets on one thread, sends at the
//! rate it is told, and measures the delay of every delivery it receives.

use std::io::{BufRead as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::{MessageKind, Order, Report, RoomSockets};

/// Sockets opened at once per process.
const CONNECTING_AT_ONCE: usize = 100;
/// Sockets per source address.
const SOCKETS_PER_SOURCE: u32 = 100;
/// After the sending stops, deliveries still count for this long.
const DRAIN: Duration = Duration::from_secs(2);

/// What every socket's reader adds to.
#[derive(Default)]
struct Tally {
    /// Which `send` order is running: a chat message of an earlier one that
    /// arrives late is not counted in this one.
    phase: AtomicU64,
    delivered: AtomicU64,
    closed: AtomicUsize,
    /// Why the server closed sockets: its close frames' codes and reasons.
    close_reasons: Mutex<std::collections::BTreeMap<String, usize>>,
    delays: Mutex<Option<Histogram<u64>>>,
}

impl Tally {
    fn record(&self, delay_us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut delays) = self.delays.lock()
            && let Some(histogram) = delays.as_mut()
        {
            histogram.saturating_record(delay_us.max(1));
        }
    }

    fn reset(&self) -> anyhow::Result<()> {
        self.phase.fetch_add(1, Ordering::Relaxed);
        self.delivered.store(0, Ordering::Relaxed);
        self.closed.store(0, Ordering::Relaxed);
        let histogram = Histogram::new_with_bounds(1, 60_000_000, 3)?;
        *self.delays.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(histogram);
        Ok(())
    }
}

/// A room's media-state sender (its first member) and when it last toggled.
struct Room {
    sender: OnceLock<mpsc::UnboundedSender<String>>,
    last_toggle: Mutex<Option<(bool, Instant)>>,
    muted: Mutex<bool>,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(serve_orders())
}

async fn serve_orders() -> anyhow::Result<()> {
    let tally = Arc::new(Tally::default());
    tally.reset()?;
    let mut sockets: Vec<mpsc::UnboundedSender<String>> = Vec::new();
    let mut rooms: Vec<Arc<Room>> = Vec::new();
    let (lines_in, mut lines) = mpsc::unbounded_channel();
    // Orders arrive on stdin, read on a thread so the runtime's one thread stays free.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let order: Order = serde_json::from_str(&line)?;
        let report = match order {
            Order::Connect { address, rooms: wanted, first_source } => {
                connect(&address, &wanted, first_source, &tally, &mut sockets, &mut rooms).await
            }
            Order::Send { kind, rate, seconds } => send(kind, rate, seconds, &tally, &sockets, &rooms).await,
            Order::Quit => return Ok(()),
        };
        let report = report.unwrap_or_else(|error| Report { error: Some(format!("{error:#}")), ..Report::default() });
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
        stdout.flush()?;
    }
    Ok(())
}

async fn connect(
    address: &str,
    wanted: &[RoomSockets],
    first_source: u32,
    tally: &Arc<Tally>,
    sockets: &mut Vec<mpsc::UnboundedSender<String>>,
    rooms: &mut Vec<Arc<Room>>,
) -> anyhow::Result<Report> {
    let server: SocketAddr = address.parse().context("server address")?;
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut opening = Vec::new();
    let mut index = 0u32;
    for room_sockets in wanted {
        let room = Arc::new(Room { sender: OnceLock::new(), last_toggle: Mutex::new(None), muted: Mutex::new(false) });
        for token in &room_sockets.tokens {
            let source = Ipv4Addr::from(0x7F00_0000 | (first_source + index / SOCKETS_PER_SOURCE));
            index += 1;
            let url = format!("ws://{address}/ws?roomId={}&token={token}", room_sockets.room_id);
            let (gate, tally, room) = (Arc::clone(&gate), Arc::clone(tally), Arc::clone(&room));
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                open(server, source, url, tally, room).await.ok()
            }));
        }
        rooms.push(room);
    }
    let mut report = Report::default();
    let mut opened = Vec::new();
    for socket in opening {
        match socket.await.ok().flatten() {
            Some(sender) => {
                report.connected += 1;
                opened.push(sender);
            }
            None => report.failed += 1,
        }
    }
    // The first socket of each room sends its media state.
    let per_room = if wanted.is_empty() { 0 } else { opened.len() / wanted.len() };
    for (n, room) in rooms.iter().enumerate() {
        if per_room > 0
            && let Some(sender) = opened.get(n * per_room)
        {
            let _ = room.sender.set(sender.clone());
        }
    }
    sockets.extend(opened);
    Ok(report)
}

/// Opens one socket from `source`; its reader tallies what arrives.
async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    url: String,
    tally: Arc<Tally>,
    room: Arc<Room>,
) -> anyhow::Result<mpsc::UnboundedSender<String>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (websocket, _) = tokio::time::timeout(Duration::from_secs(30), tokio_tungstenite::client_async(url, stream))
        .await
        .context("the handshake took over 30 s")??;
    let (mut sink, mut stream) = websocket.split();
    // Connected means admitted: the server's first message (rapat's `config`, the
    // bare server's hello) has come, so the server holds all it keeps per socket.
    let first =
        tokio::time::timeout(Duration::from_secs(60), stream.next()).await.context("no first message in 60 s")?;
    anyhow::ensure!(matches!(first, Some(Ok(Message::Text(_)))), "the server closed the socket: {first:?}");
    let (sender, mut outgoing) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut reason = "closed without a close frame".to_string();
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => receive(text.as_str(), &tally, &room),
                Message::Close(Some(frame)) => reason = format!("{} {}", u16::from(frame.code), frame.reason),
                _ => {}
            }
        }
        if let Ok(mut reasons) = tally.close_reasons.lock() {
            *reasons.entry(reason).or_default() += 1;
        }
        tally.closed.fetch_add(1, Ordering::Relaxed);
    });
    Ok(sender)
}

/// A chat message carries its send time; a media-state change is timed from the
/// room's last toggle, which this process sent.
fn receive(text: &str, tally: &Tally, room: &Room) {
    if let Some(marked) = text.split("bench-at-").nth(1) {
        let mut numbers = marked.split(|c: char| !c.is_ascii_digit()).map(str::parse::<u64>);
        if let (Some(Ok(phase)), Some(Ok(sent))) = (numbers.next(), numbers.next())
            && phase == tally.phase.load(Ordering::Relaxed)
        {
            tally.record(now_us().saturating_sub(sent));
        }
    } else if text.contains("\"type\":\"mute\"")
        && let Ok(last) = room.last_toggle.lock()
        && let Some((muted, at)) = *last
        && text.contains(if muted { "\"muted\":true" } else { "\"muted\":false" })
    {
        tally.record(at.elapsed().as_micros() as u64);
    }
}

async fn send(
    kind: MessageKind,
    rate: f64,
    seconds: f64,
    tally: &Tally,
    sockets: &[mpsc::UnboundedSender<String>],
    rooms: &[Arc<Room>],
) -> anyhow::Result<Report> {
    tally.reset()?;
    let mut report = Report::default();
    if rate > 0.0 && !sockets.is_empty() {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let mut next = 0usize;
        let phase = tally.phase.load(Ordering::Relaxed);
        while Instant::now() < end {
            ticks.tick().await;
            let sent = match kind {
                MessageKind::Chat => {
                    let text = format!(r#"{{"type":"chat","payload":{{"message":"bench-at-{phase}-{}"}}}}"#, now_us());
                    sockets[next % sockets.len()].send(text).is_ok()
                }
                MessageKind::Mute => toggle(&rooms[next % rooms.len()]),
            };
            next += 1;
            report.sent += u64::from(sent);
        }
    }
    tokio::time::sleep(DRAIN).await;
    report.delivered = tally.delivered.load(Ordering::Relaxed);
    report.closed = tally.closed.load(Ordering::Relaxed);
    if let Ok(mut reasons) = tally.close_reasons.lock() {
        report.close_reasons = std::mem::take(&mut *reasons).into_iter().collect();
    }
    let histogram = tally.delays.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.take().context("histogram")?;
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(&histogram, &mut bytes).map_err(|error| anyhow::anyhow!("{error:?}"))?;
    report.delays = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(report)
}

/// The room's first member turns its microphone the other way.
fn toggle(room: &Room) -> bool {
    let Some(sender) = room.sender.get() else { return false };
    let Ok(mut muted) = room.muted.lock() else { return false };
    *muted = !*muted;
    if let Ok(mut last) = room.last_toggle.lock() {
        *last = Some((*muted, Instant::now()));
    }
    sender.send(format!(r#"{{"type":"mute","payload":{{"muted":{}}}}}"#, *muted)).is_ok()
}
