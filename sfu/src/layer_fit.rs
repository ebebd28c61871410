//! Which simulcast layers fit a subscriber's downlink: each layer's bitrate as
//! the publisher sends it, against the leg's share of the subscriber's estimate
//! (`downlink.rs`). The answer is a ceiling, the highest layer the bandwidth
//! allows; the size the subscriber shows the video at caps it further
//! (`simulcast.rs`).
//!
//! Down at once when the current ceiling no longer fits. Up one layer at a
//! time, once the layer above has fitted with headroom for [`UP_HOLD`]. The
//! estimate grows only to a multiple of what got through (`downlink.rs`), so
//! on its own it never shows room for a layer much bigger than the one sent:
//! a probe makes the room visible. Once the last drop is `hold` old, the leg
//! sends padding beside its layer, ramping up over [`PROBE_RAMP`] to what the
//! layer above would cost (with headroom); if the link carries it, what got
//! through grows, the estimate with it, and the layer above fits. If the
//! estimator cuts while the padding runs (for a queue or for loss), the padding stops
//! at once and the next probe waits twice as long (up to [`MAX_HOLD`]): the
//! link really is short. Padding, not the layer itself: a layer that does not
//! fit costs a keyframe each way and a freeze in between, padding only a
//! short queue.
//!
//! Every switch costs a keyframe. Pure, on the times passed in.
use std::time::{Duration, Instant};

use crate::simulcast::LAYERS;

/// A layer's bitrate is measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// A window this old when its next packet comes spanned a pause: not a measurement.
const STALE_WINDOW: Duration = Duration::from_secs(2);
/// Going up needs the layer above to fit for this long...
pub const UP_HOLD: Duration = Duration::from_secs(1);
/// ...with this much room over its bitrate.
const UP_HEADROOM: f64 = 1.15;
/// A probe comes this long after the last drop (doubled, up to [`MAX_HOLD`],
/// each time a probe or a step up fails)...
pub const HOLD_AFTER_DOWN: Duration = Duration::from_secs(3);
/// The longest wait between probes on a link that stays short: it bounds how
/// long a lifted limit goes unnoticed, against a probe's cost on a link that is
/// still short. A failed probe ends at the estimator's first cut, within a
/// second or so and a few hundred small padding packets, so probing every few
/// seconds costs little; 8 s left a lifted limit unnoticed for most of that.
const MAX_HOLD: Duration = Duration::from_secs(4);
/// A step up undone within this long failed.
const PROBE_FAILED_WITHIN: Duration = Duration::from_secs(3);
/// The next probe comes no sooner than this after a step up: the new layer's
/// keyframe and rate are in what got through by then.
const PROBE_AFTER_UP: Duration = Duration::from_secs(1);
/// A probe's padding ramps up over this long, so that a short link shows a
/// growing queue before the queue is long enough to drop media.
pub const PROBE_RAMP: Duration = Duration::from_secs(1);
/// A probe that has not made room for the layer above in this long failed.
const PROBE_LONGEST: Duration = Duration::from_secs(4);
/// A probe pads up to this multiple of the probed layer's rate: above the
/// headroom going up asks for, so that what got through shows it. A leg's
/// share of the estimate is asked for with the same room (`split_budget`).
pub const PROBE_OVER: f64 = 1.3;
const TOP: u8 = (LAYERS - 1) as u8;

/// One stream's bitrate (a layer's, or the audio a subscriber gets), from the
/// bytes seen of it over a window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LayerRate {
    window_start: Option<Instant>,
    bytes: u64,
    /// The last whole window's rate, kept while the layer is paused: a paused
    /// layer's rate is what it will cost when it comes back.
    bps: Option<u64>,
    /// The whole window's before it.
    previous_bps: Option<u64>,
}

impl LayerRate {
    /// The last whole window's rate.
    pub(crate) fn bps(&self) -> Option<u64> {
        self.bps
    }

    /// The smaller of the last two whole windows' rates: a keyframe makes one
    /// window big, and the keyframe a switch up asks for lands in the new
    /// layer's first window.
    fn steady_bps(&self) -> Option<u64> {
        match (self.bps, self.previous_bps) {
            (Some(last), Some(previous)) => Some(last.min(previous)),
            (last, _) => last,
        }
    }

    pub(crate) fn record(&mut self, bytes: usize, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= STALE_WINDOW {
            self.window_start = Some(now);
            self.bytes = 0;
        } else if elapsed >= RATE_WINDOW {
            self.previous_bps = self.bps;
            self.bps = Some(self.bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64);
            self.window_start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }
}

/// A probe under way: padding towards the cost of the layer above.
#[derive(Clone, Copy, Debug)]
struct Probe {
    started: Instant,
    /// What the leg's video should come to with the padding, at full ramp.
    target_bps: u64,
    /// The estimator's cuts when it started: one more is the answer (not a dip
    /// of the budget, which moves with the audio's share from window to window).
    cuts: u64,
}

#[derive(Clone, Debug)]
pub struct LayerFit {
    rates: [LayerRate; LAYERS],
    ceiling: u8,
    /// Since when the layer above the ceiling has fitted.
    up_since: Option<Instant>,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    hold: Duration,
    probe: Option<Probe>,
    /// The estimator's cuts so far (`downlink.rs`).
    cuts: u64,
}

impl Default for LayerFit {
    fn default() -> Self {
        Self {
            rates: [LayerRate::default(); LAYERS],
            ceiling: TOP,
            up_since: None,
            last_down: None,
            last_up: None,
            hold: HOLD_AFTER_DOWN,
            probe: None,
            cuts: 0,
        }
    }
}

impl LayerFit {
    /// A packet of `layer` of `bytes` payload seen at `now`.
    pub fn record(&mut self, layer: u8, bytes: usize, now: Instant) {
        if let Some(rate) = self.rates.get_mut(usize::from(layer)) {
            rate.record(bytes, now);
        }
    }

    /// The measured bitrate of `layer`, once a window of it was seen.
    pub fn rate(&self, layer: u8) -> Option<u64> {
        self.rates.get(usize::from(layer))?.bps
    }

    /// The highest layer the bandwidth allows, as last updated.
    pub fn ceiling(&self) -> u8 {
        self.ceiling
    }

    /// How many times the estimator has cut the estimate so far.
    pub fn set_estimate_cuts(&mut self, cuts: u64) {
        self.cuts = cuts;
    }

    /// Whether a probe is padding now.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// The padding a leg forwarding `layer` should add now, in bits per second:
    /// during a probe, what brings the layer up to the probe's target, ramped.
    pub fn padding_bps(&self, layer: u8, now: Instant) -> u64 {
        let Some(probe) = self.probe else { return 0 };
        let sent = self.rate(layer).unwrap_or(0);
        let ramp = now.saturating_duration_since(probe.started).as_secs_f64() / PROBE_RAMP.as_secs_f64();
        (probe.target_bps.saturating_sub(sent) as f64 * ramp.min(1.0)) as u64
    }

    /// A layer not measured yet is taken to fit, unless a layer below it, which
    /// costs less, does not: it is tried by sending it.
    fn fits(&self, layer: u8, budget: u64, headroom: f64) -> bool {
        self.cost(layer, LayerRate::bps).is_none_or(|bps| bps as f64 * headroom <= budget as f64)
    }

    /// `layer`'s rate by `rate`, or when it has none yet, the highest of the
    /// layers below it. A layer the publisher has not sent yet had been taken
    /// to fit any budget, so a leg whose ceiling was that layer never went down
    /// from the one below it, however short the link (in Chromium, a publisher
    /// short of CPU sent no top layer, and the limited watcher got the half
    /// layer at 16-50 % loss and no frame for 7 s).
    fn cost(&self, layer: u8, rate: impl Fn(&LayerRate) -> Option<u64>) -> Option<u64> {
        let rates = self.rates.get(..=usize::from(layer))?;
        rate(rates.last()?).or_else(|| rates.iter().filter_map(&rate).max())
    }

    /// Whether `layer` still fits `budget` by its steady rate: what a keyframe
    /// adds to one window is no reason to go down. A layer stepped up to was
    /// otherwise measured over the budget right after, by the very keyframe
    /// the switch asked for, and went down again (in Chromium behind `tc`,
    /// twice in a row after a lifted limit).
    fn still_fits(&self, layer: u8, budget: u64) -> bool {
        self.cost(layer, LayerRate::steady_bps).is_none_or(|bps| bps <= budget)
    }

    /// Updates the ceiling for a budget of `budget` bits per second (`None`: no
    /// estimate, so the bandwidth allows every layer); probes go no higher than
    /// `probe_up_to` (the layer the subscriber's size asks for: room for a layer
    /// that would not be sent is not worth finding).
    pub fn update(&mut self, budget: Option<u64>, probe_up_to: u8, now: Instant) -> u8 {
        let Some(budget) = budget else {
            self.ceiling = TOP;
            self.up_since = None;
            self.probe = None;
            return self.ceiling;
        };
        let fitting = (0..=TOP).rev().find(|layer| self.still_fits(*layer, budget)).unwrap_or(0);
        if fitting < self.ceiling {
            self.probe = None;
            self.go_down(fitting, now);
            return self.ceiling;
        }
        let above = self.ceiling + 1;
        if above > TOP {
            self.up_since = None;
            self.probe = None;
            return self.ceiling;
        }
        if above > probe_up_to {
            // The subscriber shows the video smaller now: no room to find.
            self.probe = None;
        }
        if let Some(probe) = self.probe
            && (self.cuts > probe.cuts || now.saturating_duration_since(probe.started) >= PROBE_LONGEST)
        {
            // The estimator cut while the padding ran, or the padding never
            // showed enough room: the link is short. Wait longer next time.
            self.probe = None;
            self.up_since = None;
            self.hold = (self.hold * 2).min(MAX_HOLD);
            self.last_down = Some(now);
            return self.ceiling;
        }
        let settled = self.last_down.is_none_or(|down| now.saturating_duration_since(down) >= self.hold);
        if self.fits(above, budget, UP_HEADROOM) {
            let since = *self.up_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= UP_HOLD && settled {
                self.ceiling = above;
                self.up_since = None;
                self.last_up = Some(now);
                self.probe = None;
            }
            return self.ceiling;
        }
        self.up_since = None;
        let proved = self.last_up.is_none_or(|up| now.saturating_duration_since(up) >= PROBE_AFTER_UP);
        // A probe on a link that does not carry even the layer being sent would
        // only lengthen a queue that is still draining.
        let carried = self.fits(self.ceiling, budget, 1.0);
        if self.probe.is_none() && above <= probe_up_to && settled && proved && carried {
            let target_bps = self.rate(above).map_or(0, |bps| (bps as f64 * PROBE_OVER) as u64);
            self.probe = Some(Probe { started: now, target_bps, cuts: self.cuts });
        }
        self.ceiling
    }

    fn go_down(&mut self, layer: u8, now: Instant) {
        let step_up_failed = self.last_up.is_some_and(|up| now.saturating_duration_since(up) < PROBE_FAILED_WITHIN);
        self.hold = if step_up_failed { (self.hold * 2).min(MAX_HOLD) } else { HOLD_AFTER_DOWN };
        self.ceiling = layer;
        self.last_down = Some(now);
        self.up_since = None;
    }
}

/// Splits `available` bits per second over legs that need `demands` (`None`:
/// not known, as much as it can get): the smallest need first, each leg at most
/// an even share of what is left, so that what a small leg does not need goes
/// to the others. A subscriber showing one camera big and the rest as
/// thumbnails gets the big one a layer that fits the rest of its downlink.
pub fn split_budget(available: u64, demands: &[Option<u64>]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|index| demands[*index].unwrap_or(u64::MAX));
    let mut shares = vec![0; demands.len()];
    let mut left = available;
    for (given, index) in order.into_iter().enumerate() {
        let even = left / (demands.len() - given) as u64;
        let share = demands[index].map_or(even, |demand| demand.min(even));
        shares[index] = share;
        left -= share;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u64; LAYERS] = [150_000, 500_000, 1_200_000];
    const TICK: Duration = Duration::from_millis(33);

    /// Feeds one frame time of every layer at [`RATES`] and updates for `budget`, without probes.
    fn step(fit: &mut LayerFit, now: &mut Instant, budget: Option<u64>) -> u8 {
        probing_step(fit, now, budget, 0)
    }

    /// [`step`], probing up to `probe_up_to`.
    fn probing_step(fit: &mut LayerFit, now: &mut Instant, budget: Option<u64>, probe_up_to: u8) -> u8 {
        for (layer, bps) in RATES.iter().enumerate() {
            fit.record(layer as u8, (*bps as f64 / 8.0 * TICK.as_secs_f64()) as usize, *now);
        }
        *now += TICK;
        fit.update(budget, probe_up_to, *now)
    }

    fn run(fit: &mut LayerFit, now: &mut Instant, budget: Option<u64>, time: Duration) -> Vec<(Duration, u8)> {
        let start = *now;
        let mut changes = Vec::new();
        let mut last = fit.ceiling();
        while now.duration_since(start) < time {
            let ceiling = step(fit, now, budget);
            if ceiling != last {
                changes.push((now.duration_since(start), ceiling));
                last = ceiling;
            }
        }
        changes
    }

    #[test]
    fn a_budget_goes_to_the_legs_that_need_it_smallest_need_first() {
        // One camera shown big (no known need), two thumbnails needing 200 kbit/s each.
        assert_eq!(split_budget(1_500_000, &[None, Some(200_000), Some(200_000)]), [1_100_000, 200_000, 200_000]);
        // Too little for everyone: even shares, no leg over its need.
        assert_eq!(split_budget(300_000, &[Some(200_000), Some(500_000), None]), [100_000, 100_000, 100_000]);
        assert_eq!(split_budget(900_000, &[Some(200_000), Some(500_000), Some(100_000)]), [200_000, 500_000, 100_000]);
        // What no leg needs is left over.
        assert_eq!(split_budget(600_000, &[Some(100_000), Some(100_000)]), [100_000, 100_000]);
        assert_eq!(split_budget(600_000, &[]), Vec::<u64>::new());
    }

    #[test]
    fn layer_rates_are_measured_per_layer_over_a_window() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, None, Duration::from_millis(2_100));
        for (layer, expected) in RATES.iter().enumerate() {
            let measured = fit.rate(layer as u8).expect("measured") as f64;
            assert!((measured / *expected as f64 - 1.0).abs() < 0.05, "layer {layer}: {measured}");
        }
    }

    #[test]
    fn a_drop_goes_down_at_once_and_recovery_goes_up_one_layer_at_a_time_after_holding() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        assert!(run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2)).is_empty(), "the top fits");
        assert_eq!(fit.ceiling(), 2);

        let changes = run(&mut fit, &mut now, Some(400_000), Duration::from_secs(5));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, 0, "400 kbit/s fits the quarter layer only");
        assert!(changes[0].0 <= TICK, "at once: {changes:?}");

        // 600 kbit/s: the half layer fits with headroom; up after the hold.
        let changes = run(&mut fit, &mut now, Some(600_000), Duration::from_secs(5));
        assert_eq!(changes.iter().map(|(_, layer)| *layer).collect::<Vec<_>>(), [1], "{changes:?}");
        assert!(changes[0].0 >= UP_HOLD && changes[0].0 <= UP_HOLD + TICK * 2, "{changes:?}");

        // Plenty again: one layer up per hold, not straight to the top.
        let changes = run(&mut fit, &mut now, Some(5_000_000), Duration::from_secs(5));
        assert_eq!(changes.iter().map(|(_, layer)| *layer).collect::<Vec<_>>(), [2], "{changes:?}");

        // No estimate at all (no feedback): the bandwidth allows every layer.
        run(&mut fit, &mut now, Some(100_000), Duration::from_millis(100));
        assert_eq!(fit.ceiling(), 0);
        assert_eq!(fit.update(None, 0, now), 2);
    }

    #[test]
    fn a_budget_that_flickers_around_a_layers_rate_does_not_flip_it_every_time() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        let mut changes = 0;
        let mut last = fit.ceiling();
        for n in 0..300 {
            // 1.1 and 1.3 Mbit/s in turn, a frame each: below the full layer every other frame.
            let budget = if n % 2 == 0 { 1_100_000 } else { 1_300_000 };
            let ceiling = step(&mut fit, &mut now, Some(budget));
            changes += usize::from(ceiling != last);
            last = ceiling;
        }
        assert_eq!(changes, 1, "down once, and the hold keeps it there");
    }

    #[test]
    fn a_step_up_undone_at_once_doubles_the_hold_before_the_next() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        step(&mut fit, &mut now, Some(400_000));
        assert_eq!(fit.ceiling(), 0);
        // The estimate says the half layer fits; it does not, and the estimate drops again.
        let mut holds = Vec::new();
        for _ in 0..3 {
            let start = now;
            while step(&mut fit, &mut now, Some(600_000)) == 0 {
                assert!(now.duration_since(start) < Duration::from_secs(60), "never up");
            }
            holds.push(now.duration_since(start).as_secs_f64().round() as u64);
            step(&mut fit, &mut now, Some(400_000));
            assert_eq!(fit.ceiling(), 0);
        }
        assert_eq!(holds, [3, 4, 4], "seconds before each step up");
    }

    #[test]
    fn a_keyframe_swelling_one_window_of_a_layer_does_not_take_it_down() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(3));
        assert_eq!(fit.ceiling(), 2);
        // One window in which the full layer comes at 1.6 Mbit/s (a keyframe)
        // against a budget of 1.4: it stays.
        let budget = Some(1_400_000);
        let window = |fit: &mut LayerFit, now: &mut Instant, full_bps: f64| {
            let start = *now;
            while now.duration_since(start) < RATE_WINDOW {
                fit.record(2, (full_bps / 8.0 * TICK.as_secs_f64()) as usize, *now);
                *now += TICK;
                fit.update(budget, TOP, *now);
            }
        };
        window(&mut fit, &mut now, 1_600_000.0);
        window(&mut fit, &mut now, 1_200_000.0);
        assert!(fit.rate(2).is_some_and(|bps| bps > 1_400_000), "the swollen window was measured");
        assert_eq!(fit.ceiling(), 2, "one big window is no reason to go down");
        // Two windows over the budget: the layer really grew.
        window(&mut fit, &mut now, 1_600_000.0);
        window(&mut fit, &mut now, 1_600_000.0);
        window(&mut fit, &mut now, 1_600_000.0);
        assert!(fit.ceiling() < 2);
    }

    #[test]
    fn a_layer_never_sent_costs_at_least_the_ones_below_it() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        // The publisher sends the quarter and half layers only.
        let lower_two = |fit: &mut LayerFit, now: &mut Instant, budget: u64| {
            for (layer, bps) in RATES.iter().take(2).enumerate() {
                fit.record(layer as u8, (*bps as f64 / 8.0 * TICK.as_secs_f64()) as usize, *now);
            }
            *now += TICK;
            fit.update(Some(budget), TOP, *now)
        };
        for _ in 0..90 {
            lower_two(&mut fit, &mut now, 2_000_000);
        }
        assert_eq!(fit.ceiling(), 2, "the full layer, not sent, is taken to fit a wide link");
        // The link narrows under the half layer: the full layer cannot fit either.
        assert_eq!(lower_two(&mut fit, &mut now, 300_000), 0);
    }

    #[test]
    fn a_paused_layer_keeps_its_last_rate() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, None, Duration::from_millis(2_100));
        // Only the quarter layer for a while: the full layer's rate is still known.
        for _ in 0..100 {
            fit.record(0, 600, now);
            now += TICK;
        }
        assert!(fit.rate(2).is_some_and(|bps| bps > 1_000_000));
        assert_eq!(fit.update(Some(400_000), TOP, now), 0, "so it does not fit 400 kbit/s");
    }

    #[test]
    fn a_probe_pads_towards_the_layer_above_and_steps_up_only_once_the_estimate_shows_room() {
        let mut fit = LayerFit::default();
        let mut now = Instant::now();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        probing_step(&mut fit, &mut now, Some(300_000), TOP);
        assert_eq!(fit.ceiling(), 0);
        // 300 kbit/s never shows room for the half layer: a probe pads after the hold.
        let start = now;
        while !fit.probing() {
            assert_eq!(probing_step(&mut fit, &mut now, Some(300_000), TOP), 0, "padding, not the layer");
            assert!(now.duration_since(start) <= HOLD_AFTER_DOWN + TICK, "no probe");
        }
        assert!(now.duration_since(start) >= HOLD_AFTER_DOWN - TICK);
        // The padding ramps up to the half layer's cost (with headroom) beside the quarter layer.
        let ramp_start = now;
        assert!(fit.padding_bps(0, now) < 20_000, "{}", fit.padding_bps(0, now));
        while now.duration_since(ramp_start) < PROBE_RAMP {
            assert_eq!(probing_step(&mut fit, &mut now, Some(310_000), TOP), 0);
        }
        let full = fit.padding_bps(0, now) as f64;
        let expected = RATES[1] as f64 * PROBE_OVER - RATES[0] as f64;
        assert!((full / expected - 1.0).abs() < 0.05, "{full} vs {expected}");
        // A cut while it pads ends it at once, and the next waits longer (twice, up to the longest hold).
        fit.set_estimate_cuts(1);
        assert_eq!(probing_step(&mut fit, &mut now, Some(280_000), TOP), 0);
        assert!(!fit.probing());
        assert_eq!(fit.padding_bps(0, now), 0);
        let start = now;
        while !fit.probing() {
            probing_step(&mut fit, &mut now, Some(300_000), TOP);
            assert!(now.duration_since(start) <= MAX_HOLD + TICK, "no second probe");
        }
        assert!(now.duration_since(start) >= MAX_HOLD - TICK);
        // This time the link has room: the estimate climbs with what got through,
        // the half layer fits, and the leg steps up to it.
        let start = now;
        while fit.ceiling() == 0 {
            let budget = 300_000.0 * 1.4f64.powf(now.duration_since(start).as_secs_f64());
            probing_step(&mut fit, &mut now, Some(budget as u64), TOP);
            assert!(now.duration_since(start) < PROBE_LONGEST, "no step up");
        }
        assert_eq!(fit.ceiling(), 1);
        assert!(!fit.probing(), "stepping up ends the probe");
        // A probe the estimate never answers ends after its longest time.
        let mut fit = LayerFit::default();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        probing_step(&mut fit, &mut now, Some(300_000), TOP);
        while !fit.probing() {
            probing_step(&mut fit, &mut now, Some(300_000), TOP);
        }
        let start = now;
        while fit.probing() {
            assert_eq!(probing_step(&mut fit, &mut now, Some(300_000), TOP), 0);
            assert!(now.duration_since(start) <= PROBE_LONGEST + TICK, "the probe never ends");
        }
        // No probe while the link does not carry even the quarter layer: its
        // queue is still draining.
        let mut fit = LayerFit::default();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        for _ in 0..300 {
            assert_eq!(probing_step(&mut fit, &mut now, Some(120_000), TOP), 0);
            assert!(!fit.probing());
        }
        // No probe above the size the subscriber shows the video at.
        let mut fit = LayerFit::default();
        run(&mut fit, &mut now, Some(2_000_000), Duration::from_secs(2));
        for _ in 0..300 {
            assert_eq!(probing_step(&mut fit, &mut now, Some(300_000), 0), 0);
            assert!(!fit.probing());
        }
    }
}
