//! How the clients of a scenario connected: when each reached "connected" (ICE
//! and DTLS) counted from its own start, and which did not within
//! [`CONNECT_LIMIT`], with what each of those had seen, so a client that never
//! connects says where it stopped: no answer, no datagram from the SFU, or
//! ICE/DTLS that gave up. The line also says how many clients started over
//! with a new peer connection after the SFU failed theirs (`peer_failed`), and
//! media inputs the SFU shed and dropped for age; `BENCH_MEDIA_MAX_AGE_MS` sets
//! that age bound (default the SFU's; a large value turns it off).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rapat_sfu::loopback_client::LoopbackClient;
use rapat_sfu::{SfuConfig, SfuCounters, SfuHandle};

/// The SFU's media age bound: `BENCH_MEDIA_MAX_AGE_MS`, read with `env_or`
/// (0: none, the default).
pub fn media_max_age(env_or: fn(&str, u64) -> u64) -> Option<Duration> {
    let default = SfuConfig::DEFAULT_MEDIA_MAX_AGE.map_or(0, |max_age| max_age.as_millis() as u64);
    Some(env_or("BENCH_MEDIA_MAX_AGE_MS", default)).filter(|ms| *ms > 0).map(Duration::from_millis)
}

/// Prints media inputs shed and dropped for age over the run, and since
/// `before` (the window's start); answers `after`.
pub fn print_queues(before: &SfuCounters, after: SfuCounters) -> SfuCounters {
    println!(
        "  queues       media inputs shed {}, dropped for age {} (in the window: {}, {})",
        after.media_shed,
        after.media_expired,
        after.media_shed - before.media_shed,
        after.media_expired - before.media_expired
    );
    after
}

/// Issue 15's bar: every admitted client connected within this long.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct ConnectWatch {
    started: Vec<Instant>,
    /// Each client's connection id, which names its peer in the SFU's log.
    connections: Vec<uuid::Uuid>,
    connected_after: Vec<Option<Duration>>,
    reported: bool,
}

impl ConnectWatch {
    /// The client at the next index starts now.
    pub fn started(&mut self, connection: uuid::Uuid) {
        self.started.push(Instant::now());
        self.connections.push(connection);
        self.connected_after.push(None);
    }

    /// Notes the clients that are connected by now; once the oldest start is
    /// [`CONNECT_LIMIT`] ago, reports the ones that are not (once).
    pub fn observe(&mut self, clients: &[LoopbackClient], sfu: &SfuHandle) {
        let now = Instant::now();
        for ((client, started), after) in clients.iter().zip(&self.started).zip(&mut self.connected_after) {
            if after.is_none() && client.stats().connected.load(Ordering::Relaxed) {
                *after = Some(now.duration_since(*started));
            }
        }
        if !self.reported && self.started.last().is_some_and(|last| now.duration_since(*last) >= CONNECT_LIMIT) {
            self.reported = true;
            self.print_late(clients, sfu);
        }
    }

    /// One line: how many connected, how fast (p50, p99, slowest), how many not within the limit.
    pub fn print(&self, clients: &[LoopbackClient], sfu: &SfuHandle) {
        let mut times: Vec<Duration> = self.connected_after.iter().flatten().copied().collect();
        times.sort_unstable();
        let at = |p: f64| {
            times
                .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64())
        };
        let late = self.connected_after.iter().filter(|after| after.is_none_or(|d| d > CONNECT_LIMIT)).count();
        let restarts: u64 = clients.iter().map(|client| client.stats().restarts.load(Ordering::Relaxed)).sum();
        let restarted = clients.iter().filter(|client| client.stats().restarts.load(Ordering::Relaxed) > 0).count();
        let counters = sfu.counters();
        println!(
            "  connect      {}/{} connected, p50 {:.2} s, p99 {:.2} s, slowest {:.2} s; not connected within {} s: {late}; \
             started over (peer_failed) {restarted} clients, {restarts} times; SFU peers {}, routes {}, unrouted \
             datagrams {}, media inputs shed {}, dropped for age {}",
            times.len(),
            clients.len(),
            at(0.5),
            at(0.99),
            times.last().map_or(f64::NAN, Duration::as_secs_f64),
            CONNECT_LIMIT.as_secs(),
            sfu.peers(),
            sfu.routes(),
            sfu.unrouted_datagrams(),
            counters.media_shed,
            counters.media_expired,
        );
        if !self.reported {
            self.print_late(clients, sfu);
        }
    }

    fn print_late(&self, clients: &[LoopbackClient], sfu: &SfuHandle) {
        for (index, (client, after)) in clients.iter().zip(&self.connected_after).enumerate() {
            if after.is_some_and(|d| d <= CONNECT_LIMIT) {
                continue;
            }
            let stats = client.stats();
            println!(
                "  NOT CONNECTED client {index} at {} (connection {}): answers {}, offers {}, datagram from the \
                 SFU: {}, disconnects {}, closed (ICE/DTLS failed) {}, started over {}, errors {:?}, states {:?}; \
                 SFU unrouted datagrams {}",
                client.local_addr,
                self.connections.get(index).map(ToString::to_string).unwrap_or_default(),
                stats.answers_received.load(Ordering::Relaxed),
                stats.offers_received.load(Ordering::Relaxed),
                stats.remote_port().is_some(),
                stats.disconnects.load(Ordering::Relaxed),
                stats.closed.load(Ordering::Relaxed),
                stats.restarts.load(Ordering::Relaxed),
                stats.errors.lock().map(|errors| errors.clone()).unwrap_or_default(),
                stats.states.lock().map(|states| states.clone()).unwrap_or_default(),
                sfu.unrouted_datagrams(),
            );
        }
    }
}
