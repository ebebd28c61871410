//! A subscriber's downlink estimate, GCC-style, from its transport-wide
//! congestion control feedback.
//!
//! webrtc-rs numbers what the SFU sends (transport-wide sequence numbers), keeps
//! the send history and joins the subscriber's TWCC feedback to it; each batch of
//! acknowledged packets reaches [`DownlinkEstimator::on_reports`]. The estimator
//! is pure and ours: webrtc-rs's own GCC comes with a pacer, and a pacer in an
//! SFU only holds forwarded packets back (the SFU cannot encode at a lower rate;
//! choosing a smaller simulcast layer is its rate control).
//!
//! Two signals, the lower wins:
//! - delay: packets leaving together form a group; the change of one-way delay
//!   from group to group is summed, smoothed, and its trend (a least-squares
//!   slope over the last groups) says whether a queue is building (overuse),
//!   draining (underuse) or neither;
//! - loss: a batch losing more than a tenth of its packets cuts the estimate.
//!
//! On overuse the estimate drops to a little under the rate that got through
//! since the queue was last empty (the rate the link drains it at); with neither signal it climbs by [`INCREASE_PER_SECOND`], but only up to
//! [`MAX_OVER_ACKED`] times the rate that got through, and it is at least that
//! rate. The rate that got through is what the SFU sends: an estimate free to
//! climb past it says nothing of the link (it climbed until it named a layer
//! that did not fit, which then froze). Finding room for a bigger layer is the
//! layer choice's probe (`layer_fit.rs`): padding sent beside the layer raises
//! what gets through when the link has room, and builds a queue, which this
//! estimator cuts on, when it has not.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, CongestionControlBuilder, PacketReport, Registry, Slot, TwccSenderBuilder};

/// Where a fresh estimate starts: above the top layer of a camera, so a
/// subscriber starts on the layer its size asks for; a short link shows itself
/// within a few feedback reports.
pub const INITIAL_BPS: f64 = 2_500_000.0;
const MIN_BPS: f64 = 50_000.0;
const MAX_BPS: f64 = 20_000_000.0;
/// Packets leaving within this long of a group's first are one group (a frame's burst).
const GROUP_SPAN: Duration = Duration::from_millis(5);
/// Groups in the trend.
const TREND_GROUPS: usize = 20;
/// Exponential smoothing of the summed delay change.
const SMOOTHING: f64 = 0.9;
/// A delay trend above this (ms of delay gained per ms) is a queue building.
const OVERUSE_SLOPE: f64 = 0.05;
/// ...and the smoothed delay this far above its lowest over the trend.
const MIN_QUEUE_MS: f64 = 15.0;
/// The rate that got through is measured over this long of arrivals.
const ACKED_WINDOW: Duration = Duration::from_millis(500);
/// What a packet costs on the link beyond the RTP packet the feedback reports
/// the size of: the SRTP tag, UDP and IPv4 headers. Counted, so the rate that
/// got through compares with the layers' rates, which count them too.
const WIRE_OVERHEAD: usize = 38;
/// A packet delayed less than this over the window's least met no queue.
const EMPTY_QUEUE_MS: f64 = 5.0;
/// A queue's arrivals over less than this say too little of the rate it drains at.
const MIN_DRAIN_SPAN: Duration = Duration::from_millis(60);
/// On overuse the estimate goes to this share of the rate that got through.
const BACK_OFF: f64 = 0.85;
/// At most one cut per this long: the feedback after a cut still shows the queue.
const CUT_INTERVAL: Duration = Duration::from_millis(200);
/// Growth while neither signal objects; faster than GCC's 8 %, so that the
/// estimate soon names a layer that a probe's padding showed room for.
pub const INCREASE_PER_SECOND: f64 = 1.15;
/// The estimate grows to at most this multiple of the rate that got through
/// (GCC's cap). Sending a quarter layer and audio, it stays under what the
/// half layer needs, so it no longer steps up into a layer that does not fit.
pub const MAX_OVER_ACKED: f64 = 1.5;
/// A batch with fewer packets says too little about loss.
const LOSS_MIN_PACKETS: usize = 10;
const LOSS_CUT_ABOVE: f64 = 0.10;

/// The estimate, readable by the peer while webrtc-rs owns the estimator: 0
/// until the subscriber's first feedback (a client without TWCC never gets
/// one); and how many times it was cut (for a queue or for loss), which is how
/// the layer choice learns that a probe found no room.
#[derive(Clone, Debug, Default)]
pub struct EstimateHandle {
    bps: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

impl EstimateHandle {
    /// The estimate in bits per second, once there is one.
    pub fn bps(&self) -> Option<u64> {
        match self.bps.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    /// The cuts so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// Numbers what a peer connection sends with transport-wide sequence numbers
/// and joins the remote's TWCC feedback to it, for an estimator of ours; no
/// pacer. The transport-cc extension and rtcp-fb are registered on the media
/// engine by webrtc-rs's default interceptors (its TWCC receiver), so offers
/// and answers carry them.
pub fn register(registry: Registry) -> (Registry, EstimateHandle) {
    let estimator = DownlinkEstimator::default();
    let handle = estimator.handle();
    let registry = registry
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::CongestionControl, CongestionControlBuilder::new(estimator).build());
    (registry, handle)
}

/// What the delay trend says of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Normal,
    /// A queue building ever faster: cut.
    Overuse,
    /// A queue draining, or one no longer building faster: hold.
    Underuse,
}

/// An acknowledged packet: when it arrived, its bytes on the wire, its one-way delay.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    at: Duration,
    bytes: usize,
    delay_ms: f64,
}

/// Packets that left together: the first departure, the last departure and arrival.
#[derive(Clone, Copy, Debug)]
struct Group {
    first_departure: Instant,
    last_departure: Instant,
    last_arrival: Duration,
}

#[derive(Debug)]
pub struct DownlinkEstimator {
    target: f64,
    handle: EstimateHandle,
    group: Option<Group>,
    previous: Option<Group>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival in ms, smoothed summed delay in ms) of the last groups.
    trend: VecDeque<(f64, f64)>,
    usage: Usage,
    previous_slope: Option<f64>,
    /// The packets that arrived, over [`ACKED_WINDOW`].
    arrivals: VecDeque<Arrival>,
    /// What departures are measured from, to compare them with arrivals.
    epoch: Option<Instant>,
    last_update: Option<Instant>,
    last_cut: Option<Instant>,
}

impl Default for DownlinkEstimator {
    fn default() -> Self {
        Self::new(EstimateHandle::default())
    }
}

impl DownlinkEstimator {
    /// An estimator publishing its estimate on `handle`.
    pub fn new(handle: EstimateHandle) -> Self {
        Self {
            target: INITIAL_BPS,
            handle,
            group: None,
            previous: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            trend: VecDeque::with_capacity(TREND_GROUPS + 1),
            usage: Usage::Normal,
            previous_slope: None,
            arrivals: VecDeque::new(),
            epoch: None,
            last_update: None,
            last_cut: None,
        }
    }

    pub fn handle(&self) -> EstimateHandle {
        self.handle.clone()
    }

    #[cfg(test)]
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The rate that got through over the last [`ACKED_WINDOW`] of arrivals,
    /// over the time they span (at least `least`).
    fn acked_over(&self, least: Duration) -> Option<f64> {
        let (first, last) = (self.arrivals.front()?.at, self.arrivals.back()?.at);
        let span = last.saturating_sub(first).max(least);
        let bytes: usize = self.arrivals.iter().map(|arrival| arrival.bytes).sum();
        Some(bytes as f64 * 8.0 / span.as_secs_f64())
    }

    /// The rate that got through, over the time the window's arrivals span: what
    /// a cut goes under. After a stall (a busy host) the window holds less
    /// than its length, and counting the gap would cut far below the link.
    pub fn acked_bps(&self) -> Option<f64> {
        self.acked_over(Duration::from_millis(100))
    }

    /// The rate that got through, over the whole window however little the
    /// arrivals span: what the estimate is raised to at once. After a stall,
    /// what waited goes out together, a token bucket's burst allowance lets it
    /// through at line rate, and that burst says nothing of the rate the link
    /// keeps up.
    fn acked_floor_bps(&self) -> Option<f64> {
        self.acked_over(ACKED_WINDOW)
    }

    /// The rate of the arrivals since the link's queue was last empty: while a
    /// queue stands, packets arrive at the rate the link drains it. The window
    /// of [`Self::acked_bps`] still holds arrivals from before the queue, at
    /// the old rate, when the queue is found (a few hundred ms after the link
    /// narrowed), and a cut from its average named a layer that did not fit
    /// either. `None` while the queue spans too little to measure.
    fn draining_bps(&self) -> Option<f64> {
        let lowest = self.arrivals.iter().map(|arrival| arrival.delay_ms).fold(f64::INFINITY, f64::min);
        // The last packet that met no queue (within the jitter a busy host adds).
        let empty = self.arrivals.iter().rposition(|arrival| arrival.delay_ms <= lowest + EMPTY_QUEUE_MS)?;
        let began = self.arrivals[empty].at;
        let span = self.arrivals.back()?.at.checked_sub(began)?;
        if span < MIN_DRAIN_SPAN {
            return None;
        }
        let bytes: usize = self.arrivals.iter().skip(empty + 1).map(|arrival| arrival.bytes).sum();
        Some(bytes as f64 * 8.0 / span.as_secs_f64())
    }

    /// One acknowledged packet into the groups and the trend.
    fn add_arrival(&mut self, departure: Instant, arrival: Duration, size: usize) {
        let epoch = *self.epoch.get_or_insert(departure);
        // One-way delay up to the clocks' offset, which cancels out in comparisons.
        let delay_ms = (arrival.as_secs_f64() - departure.saturating_duration_since(epoch).as_secs_f64()) * 1e3;
        self.arrivals.push_back(Arrival { at: arrival, bytes: size + WIRE_OVERHEAD, delay_ms });
        while self.arrivals.front().is_some_and(|oldest| arrival.saturating_sub(oldest.at) > ACKED_WINDOW) {
            self.arrivals.pop_front();
        }
        match self.group.as_mut() {
            Some(group) if departure.saturating_duration_since(group.first_departure) <= GROUP_SPAN => {
                group.last_departure = group.last_departure.max(departure);
                group.last_arrival = group.last_arrival.max(arrival);
            }
            _ => {
                if let Some(done) = self.group.take() {
                    self.close_group(done);
                }
                self.group =
                    Some(Group { first_departure: departure, last_departure: departure, last_arrival: arrival });
            }
        }
    }

    fn close_group(&mut self, group: Group) {
        if let Some(previous) = self.previous {
            let sent_ms = group.last_departure.saturating_duration_since(previous.last_departure).as_secs_f64() * 1e3;
            let arrived_ms = (group.last_arrival.as_secs_f64() - previous.last_arrival.as_secs_f64()) * 1e3;
            // Reordered groups say nothing about a queue.
            if arrived_ms >= 0.0 {
                self.accumulated_ms += arrived_ms - sent_ms;
                self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
                self.trend.push_back((group.last_arrival.as_secs_f64() * 1e3, self.smoothed_ms));
                if self.trend.len() > TREND_GROUPS {
                    self.trend.pop_front();
                }
            }
        }
        self.previous = Some(group);
    }

    /// How far the smoothed delay is above its lowest over the trend: the queue.
    fn queue_delay_ms(&self) -> f64 {
        let lowest = self.trend.iter().map(|(_, delay)| *delay).fold(f64::INFINITY, f64::min);
        self.trend.back().map_or(0.0, |(_, delay)| delay - lowest)
    }

    /// The least-squares slope of the smoothed delay over arrival time.
    fn slope(&self) -> Option<f64> {
        if self.trend.len() < TREND_GROUPS / 2 {
            return None;
        }
        let n = self.trend.len() as f64;
        let mean_x = self.trend.iter().map(|(x, _)| x).sum::<f64>() / n;
        let mean_y = self.trend.iter().map(|(_, y)| y).sum::<f64>() / n;
        let (mut numerator, mut denominator) = (0.0, 0.0);
        for (x, y) in &self.trend {
            numerator += (x - mean_x) * (y - mean_y);
            denominator += (x - mean_x) * (x - mean_x);
        }
        (denominator > 0.0).then(|| numerator / denominator)
    }

    fn publish(&self) {
        self.handle.bps.store(self.target.round().max(1.0) as u64, Ordering::Relaxed);
    }

    fn cut(&mut self, to: f64, now: Instant) {
        self.target = to;
        self.last_cut = Some(now);
        self.handle.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

impl BandwidthEstimator for DownlinkEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut lost = 0;
        for report in reports {
            match (report.arrived, report.arrival) {
                (true, Some(arrival)) => self.add_arrival(report.departure, arrival, report.size),
                (true, None) => {}
                (false, _) => lost += 1,
            }
        }
        let slope = self.slope();
        // A queue still there but no longer growing faster (the cut worked) is
        // left to drain: cutting again would cut on the reduced rate.
        let rising = match (slope, self.previous_slope) {
            (Some(slope), Some(previous)) => slope >= previous,
            _ => true,
        };
        // Scheduling jitter on a busy host makes short trends too: a queue is only
        // taken for one when it is also long enough and the trend held since the
        // last update.
        let queued = self.queue_delay_ms() > MIN_QUEUE_MS;
        let sustained = self.previous_slope.is_some_and(|previous| previous > OVERUSE_SLOPE);
        self.previous_slope = slope;
        self.usage = match slope {
            Some(slope) if slope > OVERUSE_SLOPE && rising && queued && sustained => Usage::Overuse,
            Some(slope) if slope.abs() > OVERUSE_SLOPE => Usage::Underuse,
            _ => Usage::Normal,
        };
        let elapsed = self.last_update.map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last_update = Some(now);
        let may_cut = self.last_cut.is_none_or(|cut| now.saturating_duration_since(cut) >= CUT_INTERVAL);
        let loss = lost as f64 / reports.len() as f64;
        let lossy = reports.len() >= LOSS_MIN_PACKETS && loss > LOSS_CUT_ABOVE;
        match self.usage {
            Usage::Overuse if may_cut => {
                let acked = self.acked_bps().unwrap_or(self.target);
                let through = self.draining_bps().map_or(acked, |draining| draining.min(acked));
                // Counted even when the estimate is already lower: a probe's
                // padding goes out over the estimate, and this queue is its answer.
                let to = (BACK_OFF * through).min(self.target);
                tracing::debug!(
                    from = self.target as u64,
                    to = to as u64,
                    queue_ms = self.queue_delay_ms(),
                    "the downlink estimate was cut for a queue"
                );
                self.cut(to, now);
            }
            Usage::Normal if !lossy => {
                let grown = self.target * INCREASE_PER_SECOND.powf(elapsed.as_secs_f64().min(1.0));
                self.target = match (self.acked_bps(), self.acked_floor_bps()) {
                    // What got through with no queue building and no loss fits: the
                    // estimate is at least that (a probe's padding that went through
                    // counts at once). The cap only stops growth, it never cuts.
                    (Some(acked), Some(floor)) => grown.min((MAX_OVER_ACKED * acked).max(self.target)).max(floor),
                    _ => grown,
                };
            }
            _ => {}
        }
        // One cut per update: the delay signal's, when it had one.
        if lossy && may_cut && self.last_cut != Some(now) {
            // From what got through when that is lower: the estimate may stand
            // far above what is sent (it starts high and is only capped from
            // growing), and a cut from there would name a layer that does not fit.
            let from = self.acked_bps().map_or(self.target, |through| through.min(self.target));
            let to = from * (1.0 - 0.5 * loss);
            tracing::debug!(from = self.target as u64, to = to as u64, loss, "the downlink estimate was cut for loss");
            self.cut(to, now);
        }
        self.target = self.target.clamp(MIN_BPS, MAX_BPS);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }
}

#[cfg(test)]
#[path = "downlink_tests.rs"]
mod tests;
