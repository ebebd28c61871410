//! The downlink estimate at work: one simulcast publisher (layers of about
//! 260, 460 and 860 kbit/s on the wire, Opus beside them) and `n` subscribers
//! whose downlinks are shaped in their loopback clients (a token bucket with a
//! 250 ms queue), plus two unshaped ones. The links run at 2 Mbit/s, drop to
//! 400 kbit/s, then the limit is lifted. Per shaped subscriber: the time from
//! the drop until it gets the quarter layer (settle), the longest
//! time without a video packet after the drop (frozen), and the time from the
//! lift until the full layer is back; p50 and p99 over them. Forwarded packets
//! per second per SFU core over the whole run, for comparison with the other
//! simulcast rows of the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rapat_sfu::SfuConfig;
use rapat_sfu::loopback_client::{ClientOptions, LoopbackClient, TrackStats};
use uuid::Uuid;

use super::{connect, sfu_cpu_seconds, start_sfu};

const HIGH_BPS: u64 = 2_000_000;
const LOW_BPS: u64 = 400_000;
const PHASE: Duration = Duration::from_secs(8);
const RECOVERY: Duration = Duration::from_secs(25);

pub struct BweFigures {
    pub settle_ms: (f64, f64),
    pub frozen_ms: (f64, f64),
    pub recovered_ms: (f64, f64),
    /// Shaped subscribers never on the quarter layer / never back on the full one for good.
    pub unsettled: usize,
    /// Steps up (probes) back above the quarter layer before the limit was lifted, over all
    /// (runs of at least [`SWITCH_RUN`] packets of a layer, so retransmissions do not count).
    pub probes: usize,
    pub unrecovered: usize,
    pub out_pps: f64,
    pub cpu_cores: f64,
    /// Unshaped subscribers that left the full layer after they reached it.
    pub open_switched: usize,
    /// Times a subscriber's ICE went disconnected, over all.
    pub disconnects: u64,
}

fn video(client: &LoopbackClient) -> TrackStats {
    client.stats().tracks().into_iter().find(|track| !track.layer_arrivals.is_empty()).unwrap_or_default()
}

/// From `from`, the first arrival of `layer` after which until `to` only `layer` comes.
fn settled_on(track: &TrackStats, layer: u8, from: Instant, to: Instant) -> Option<Instant> {
    let window: Vec<&(Instant, u8)> = track.layer_arrivals.iter().filter(|(at, _)| *at >= from && *at < to).collect();
    let last_other = window.iter().rposition(|(_, seen)| *seen != layer);
    let first = match last_other {
        Some(index) => window.get(index + 1),
        None => window.first(),
    };
    first.map(|(at, _)| *at)
}

/// A run of this many packets of one layer is a switch to it; shorter ones
/// are retransmissions (NACK) of the layer before, coming in after a switch.
const SWITCH_RUN: usize = 20;

/// How many times `layers` (per packet, in order) went to a layer above the
/// quarter one and stayed for at least [`SWITCH_RUN`] packets.
fn steps_up(layers: &[u8]) -> usize {
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for layer in layers {
        match runs.last_mut() {
            Some((last, count)) if last == layer => *count += 1,
            _ => runs.push((*layer, 1)),
        }
    }
    let mut switches: Vec<u8> =
        runs.into_iter().filter(|(_, count)| *count >= SWITCH_RUN).map(|(layer, _)| layer).collect();
    switches.dedup();
    switches.iter().filter(|layer| **layer > 0).count()
}

fn longest_gap(track: &TrackStats, from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for (at, _) in track.layer_arrivals.iter().filter(|(at, _)| *at >= from && *at < to) {
        longest = longest.max(at.saturating_duration_since(last));
        last = *at;
    }
    longest.max(to.saturating_duration_since(last))
}

/// Where a long gap after the drop was, and the layers around it, for a reader to follow up.
fn describe_gap(track: &TrackStats, from: Instant, to: Instant) {
    let arrivals: Vec<&(Instant, u8)> = track.layer_arrivals.iter().filter(|(at, _)| *at >= from && *at < to).collect();
    // (start of the gap, its length, index of the arrival ending it: `arrivals.len()` for none)
    let mut worst = (from, Duration::ZERO, 0);
    let mut last = from;
    for (index, (at, _)) in arrivals.iter().enumerate() {
        if at.saturating_duration_since(last) > worst.1 {
            worst = (last, at.saturating_duration_since(last), index);
        }
        last = *at;
    }
    if to.saturating_duration_since(last) > worst.1 {
        worst = (last, to.saturating_duration_since(last), arrivals.len());
    }
    let (start, gap, index) = worst;
    let before: Vec<u8> = arrivals[index.saturating_sub(10)..index].iter().map(|(_, layer)| *layer).collect();
    let after: Vec<u8> = arrivals[index..(index + 10).min(arrivals.len())].iter().map(|(_, layer)| *layer).collect();
    println!(
        "{:<14} no video for {} ms from {} ms after the drop; layers before {before:?}, after {after:?}",
        "",
        gap.as_millis(),
        start.saturating_duration_since(from).as_millis()
    );
}

fn percentiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values.get(((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1)));
    (at(0.5).copied().unwrap_or(f64::NAN), at(0.99).copied().unwrap_or(f64::NAN))
}

pub async fn bandwidth_drop(shaped: usize) -> anyhow::Result<BweFigures> {
    let mut config = SfuConfig::new("127.0.0.1:0".parse()?);
    config.workers = 2;
    let (sfu, routes) = start_sfu(config)?;
    let room = Uuid::new_v4();
    let mut publisher = ClientOptions::publisher();
    publisher.simulcast = true;
    publisher.video_packets_per_second = 100;
    publisher.video_payload_bytes = 1_000;
    let publisher = connect(&sfu.handle(), &routes, room, Uuid::new_v4(), Uuid::new_v4(), publisher).await?;
    let mut limits = Vec::new();
    let mut subscribers = Vec::new();
    for index in 0..shaped + 2 {
        let mut options = ClientOptions::subscriber();
        options.record_delays = true;
        if index < shaped {
            let limit = Arc::new(AtomicU64::new(HIGH_BPS));
            options.downlink_bps = Some(Arc::clone(&limit));
            limits.push(limit);
        }
        subscribers.push(connect(&sfu.handle(), &routes, room, Uuid::new_v4(), Uuid::new_v4(), options).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    while !subscribers.iter().all(|client| video(client).packets >= 20) {
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("not every subscriber receives video after a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = sfu.handle().counters();
    let cpu_before = sfu_cpu_seconds();
    let wall = Instant::now();
    tokio::time::sleep(PHASE).await;
    let dropped_at = Instant::now();
    for limit in &limits {
        limit.store(LOW_BPS, Ordering::Relaxed);
    }
    tokio::time::sleep(PHASE).await;
    let lifted_at = Instant::now();
    for limit in &limits {
        limit.store(0, Ordering::Relaxed);
    }
    tokio::time::sleep(RECOVERY).await;
    let end = Instant::now();
    let elapsed = wall.elapsed().as_secs_f64();
    let cpu = sfu_cpu_seconds() - cpu_before;
    let after = sfu.handle().counters();

    let (mut settles, mut frozen, mut recoveries) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unsettled, mut unrecovered, mut probes) = (0, 0, 0);
    for client in &subscribers[..shaped] {
        let track = video(client);
        let first_low = track.layer_arrivals.iter().find(|(at, layer)| *at >= dropped_at && *layer == 0);
        match first_low {
            Some((at, _)) => {
                settles.push(at.duration_since(dropped_at).as_secs_f64() * 1e3);
                let later: Vec<u8> = track
                    .layer_arrivals
                    .iter()
                    .filter(|(arrived, _)| arrived > at && *arrived < lifted_at)
                    .map(|(_, layer)| *layer)
                    .collect();
                probes += steps_up(&later);
            }
            None => unsettled += 1,
        }
        let gap = longest_gap(&track, dropped_at, lifted_at);
        if gap > Duration::from_secs(1) {
            describe_gap(&track, dropped_at, lifted_at);
        }
        frozen.push(gap.as_secs_f64() * 1e3);
        match settled_on(&track, 2, lifted_at, end) {
            Some(at) => recoveries.push(at.duration_since(lifted_at).as_secs_f64() * 1e3),
            None => unrecovered += 1,
        }
    }
    let open_switched = subscribers[shaped..]
        .iter()
        .filter(|client| {
            let track = video(client);
            let first_full = track.layer_arrivals.iter().position(|(_, layer)| *layer == 2);
            first_full.is_none_or(|index| track.layer_arrivals[index..].iter().any(|(_, layer)| *layer != 2))
        })
        .count();
    let disconnects = subscribers.iter().map(|client| client.stats().disconnects.load(Ordering::Relaxed)).sum::<u64>();
    drop(publisher);
    drop(subscribers);
    drop(sfu);
    Ok(BweFigures {
        settle_ms: percentiles(settles),
        frozen_ms: percentiles(frozen),
        recovered_ms: percentiles(recoveries),
        unsettled,
        unrecovered,
        probes,
        out_pps: (after.rtp_forwarded - before.rtp_forwarded) as f64 / elapsed,
        cpu_cores: cpu / elapsed,
        open_switched,
        disconnects,
    })
}

pub fn print(shaped: usize, figures: &BweFigures) {
    let ms = |(p50, p99): (f64, f64)| format!("p50 {p50:.0} ms, p99 {p99:.0} ms");
    println!(
        "1→{shaped}+2 bwe   {:>11.0} RTP out/s, {:.2} SFU cores, {:.0} RTP/s/core",
        figures.out_pps,
        figures.cpu_cores,
        if figures.cpu_cores > 0.0 { figures.out_pps / figures.cpu_cores } else { 0.0 }
    );
    println!("{:<14} 2 Mbit/s → 400 kbit/s: on the quarter layer after {}", "", ms(figures.settle_ms));
    println!("{:<14} steps up while limited (probes), all subscribers: {}", "", figures.probes);
    println!("{:<14} frozen (longest without video) {}", "", ms(figures.frozen_ms));
    println!("{:<14} limit lifted: full layer back {}", "", ms(figures.recovered_ms));
    println!(
        "{:<14} never settled {}, never back {}, unshaped subscribers that left the full layer {}",
        "", figures.unsettled, figures.unrecovered, figures.open_switched
    );
    println!("{:<14} ICE disconnected (and carried on), all subscribers: {}", "", figures.disconnects);
}
