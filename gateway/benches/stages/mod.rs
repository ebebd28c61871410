//! Where a command's time goes: the gateway, the projector and the checkpoint
//! follower emit `rapat::latency` trace events (off unless a subscriber asks for
//! them), this bench records each with the instant it was heard, and after a run
//! splits every command's send-to-answer time into stages along its critical path.
//!
//! A command on room R with stream sequence S:
//! - `write` (R) and `stored` (R, S): `AppState::write` starts, and the command's
//!   event is acknowledged by JetStream;
//! - `fetched` / `committed` (projection, first..last): the projector took a batch
//!   holding S from its consumer, and committed it with its checkpoint;
//! - `heard` (projection, S' >= S): the gateway's checkpoint follower got the NOTIFY;
//! - `visible` (R, S): the write's wait for its read models is over.
//!
//! A room write waits for the rooms projection alone; the audit projection's
//! figures are printed beside it for comparison (audit queries wait for it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// The projections a room command's answer waits for (`gateway/src/write.rs`);
/// with more than one, the stages follow the one heard last.
const WAITED_FOR: [&str; 1] = ["rooms"];
/// The projections whose own stages are printed.
const SHOWN: [&str; 2] = ["rooms", "audit"];
/// The projections reading room events, whose batches (fetched → committed, however
/// many commands each holds) are printed: they share the cores and the WAL flushes.
const BATCHES_SHOWN: [&str; 5] = ["rooms", "audit", "analytics", "notifications", "webhooks"];

#[derive(Clone, Debug, Default)]
struct Event {
    at: Option<Instant>,
    message: String,
    projection: String,
    aggregate_id: String,
    sequence: u64,
    first: u64,
    last: u64,
    messages: u64,
}

impl Visit for Event {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "projection" => self.projection = value.to_string(),
            "aggregate_id" => self.aggregate_id = value.to_string(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "sequence" => self.sequence = value,
            "first" => self.first = value,
            "last" => self.last = value,
            "messages" => self.messages = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }
}

/// Every `rapat::latency` event heard since the last `take`.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

struct Collect(Recorder);

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut heard = Event { at: Some(Instant::now()), ..Event::default() };
        event.record(&mut heard);
        self.0.events.lock().expect("not poisoned").push(heard);
    }
}

impl Recorder {
    /// Installs the process's tracing subscriber: only `rapat::latency` events, into this.
    pub fn install() -> anyhow::Result<Self> {
        let recorder = Self::default();
        let only = Targets::new().with_target("rapat::latency", LevelFilter::TRACE);
        Registry::default().with(only).with(Collect(recorder.clone())).try_init()?;
        Ok(recorder)
    }

    pub fn clear(&self) {
        self.events.lock().expect("not poisoned").clear();
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("not poisoned"))
    }
}

/// One answered command as the load generator saw it.
pub struct Sent {
    pub room: String,
    /// "join" or "leave".
    pub action: &'static str,
    pub sent: Instant,
    pub answered: Instant,
}

const STAGES: [&str; 7] = [
    "send → write starts (HTTP, auth)",
    "write → stored (load, decide, publish → ack)",
    "stored → projector fetched",
    "fetched → committed (batch transaction)",
    "committed → heard (in process or NOTIFY)",
    "heard → wait over",
    "wait over → answer (queries, HTTP)",
];

/// The points inside a batch of the projection waited for (`projector/runner.rs`),
/// from the fetch to the commit: each step is one round trip or more to Postgres.
const BATCH_POINTS: [&str; 6] = ["fetched", "begun", "locked", "applied", "advanced", "committed"];
const BATCH_STEPS: [&str; 5] = [
    "fetched → begun (BEGIN)",
    "begun → locked (checkpoint row FOR UPDATE)",
    "locked → applied (load, fold, write)",
    "applied → advanced (checkpoint UPDATE)",
    "advanced → committed (COMMIT, WAL flush)",
];

/// Per-stage histograms of the commands of one run.
pub struct Breakdown {
    stages: Vec<Histogram<u64>>,
    /// Per projection: stored → fetched, fetched → committed, committed → heard,
    /// batch sizes, and how often it was the one waited for last.
    projections: HashMap<&'static str, ([Histogram<u64>; 4], u64)>,
    /// Per projection of [`BATCHES_SHOWN`]: each batch's fetched → committed, and messages.
    batches: Vec<(&'static str, Histogram<u64>, Histogram<u64>)>,
    /// The steps of the waited-for projection's batches ([`BATCH_STEPS`]).
    steps: Vec<Histogram<u64>>,
    matched: u64,
    unmatched: u64,
}

impl Breakdown {
    /// Matches the events heard during the run to the commands sent: all of them,
    /// then each action's alone (joins and leaves do different work downstream).
    pub fn of(recorder: &Recorder, sent: &[Sent]) -> anyhow::Result<Vec<(&'static str, Self)>> {
        let events = recorder.take();
        let mut actions: Vec<&'static str> = sent.iter().map(|command| command.action).collect();
        actions.sort_unstable();
        actions.dedup();
        let mut breakdowns = vec![("all", Self::from_events(&events, sent.iter()))];
        for action in actions {
            breakdowns.push((action, Self::from_events(&events, sent.iter().filter(|c| c.action == action))));
        }
        breakdowns.into_iter().map(|(action, breakdown)| Ok((action, breakdown?))).collect()
    }

    fn from_events<'a>(events: &[Event], sent: impl Iterator<Item = &'a Sent>) -> anyhow::Result<Self> {
        let mut by_room: HashMap<&str, Vec<&Event>> = HashMap::new();
        let mut by_projection: HashMap<(&str, &str), Vec<&Event>> = HashMap::new();
        for event in events {
            if event.aggregate_id.is_empty() {
                by_projection.entry((event.projection.as_str(), event.message.as_str())).or_default().push(event);
            } else {
                by_room.entry(event.aggregate_id.as_str()).or_default().push(event);
            }
        }
        if std::env::var_os("BENCH_STAGES_DEBUG").is_some() {
            let mut kinds: HashMap<(&str, &str), usize> = HashMap::new();
            for event in events {
                *kinds.entry((event.message.as_str(), event.projection.as_str())).or_default() += 1;
            }
            println!("    events heard: {kinds:?}; first: {:?}", events.iter().take(3).collect::<Vec<_>>());
        }
        // 1 µs to 10 minutes: `record` below saturates instead of resizing.
        let histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
        let mut breakdown = Self {
            stages: (0..STAGES.len()).map(|_| histogram()).collect::<Result<_, _>>()?,
            projections: HashMap::new(),
            batches: Vec::new(),
            steps: (0..BATCH_STEPS.len()).map(|_| histogram()).collect::<Result<_, _>>()?,
            matched: 0,
            unmatched: 0,
        };
        for projection in SHOWN {
            breakdown.projections.insert(projection, ([histogram()?, histogram()?, histogram()?, histogram()?], 0));
            for event in by_projection.get(&(projection, "fetched")).into_iter().flatten() {
                breakdown.projections.get_mut(projection).expect("inserted").0[3]
                    .saturating_record(event.messages.max(1));
            }
        }
        for projection in BATCHES_SHOWN {
            let (mut took, mut messages) = (histogram()?, histogram()?);
            let committed: HashMap<(u64, u64), Instant> = by_projection
                .get(&(projection, "committed"))
                .into_iter()
                .flatten()
                .filter_map(|event| Some(((event.first, event.last), event.at?)))
                .collect();
            for fetched in by_projection.get(&(projection, "fetched")).into_iter().flatten() {
                let (Some(at), Some(done)) = (fetched.at, committed.get(&(fetched.first, fetched.last))) else {
                    continue;
                };
                record(&mut took, done.saturating_duration_since(at));
                messages.saturating_record(fetched.messages.max(1));
            }
            breakdown.batches.push((projection, took, messages));
        }
        breakdown.record_steps(&by_projection);
        for command in sent {
            match breakdown.command(command, &by_room, &by_projection) {
                Some(()) => breakdown.matched += 1,
                None => breakdown.unmatched += 1,
            }
        }
        Ok(breakdown)
    }

    /// Each batch of the waited-for projection whose every point was heard.
    fn record_steps(&mut self, by_projection: &HashMap<(&str, &str), Vec<&Event>>) {
        let at = |point: &str| -> HashMap<(u64, u64), Instant> {
            let events = by_projection.get(&(WAITED_FOR[0], point)).into_iter().flatten();
            events.filter_map(|event| Some(((event.first, event.last), event.at?))).collect()
        };
        let points: Vec<HashMap<(u64, u64), Instant>> = BATCH_POINTS.iter().map(|point| at(point)).collect();
        for (batch, fetched) in &points[0] {
            let Some(times) = points[1..].iter().map(|point| point.get(batch).copied()).collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let mut before = *fetched;
            for (step, time) in times.into_iter().enumerate() {
                record(&mut self.steps[step], time.saturating_duration_since(before));
                before = time;
            }
        }
    }

    fn command(
        &mut self,
        command: &Sent,
        by_room: &HashMap<&str, Vec<&Event>>,
        by_projection: &HashMap<(&str, &str), Vec<&Event>>,
    ) -> Option<()> {
        let during = |event: &&&Event| event.at.is_some_and(|at| at >= command.sent && at <= command.answered);
        let own: Vec<&Event> = by_room.get(command.room.as_str())?.iter().filter(during).copied().collect();
        let point = |message: &str| own.iter().find(|event| event.message == message).copied();
        let (write, stored, visible) = (point("write")?, point("stored")?, point("visible")?);
        let sequence = stored.sequence;
        // Per projection shown: fetched, committed, heard; every waited-for one
        // must be matched, the others are left out when they are not.
        let mut path = Vec::new();
        for projection in SHOWN {
            let batch = |message: &str| {
                let list = by_projection.get(&(projection, message))?;
                // Batches come in stream order: the first one reaching `sequence`.
                let index = list.partition_point(|event| event.last < sequence);
                list.get(index).filter(|event| event.first <= sequence).and_then(|event| event.at)
            };
            let heard = by_projection.get(&(projection, "heard")).and_then(|list| {
                let index = list.partition_point(|event| event.sequence < sequence);
                list.get(index).and_then(|event| event.at)
            });
            match (batch("fetched"), batch("committed"), heard) {
                (Some(fetched), Some(committed), Some(heard)) => path.push((projection, fetched, committed, heard)),
                _ if WAITED_FOR.contains(&projection) => return None,
                _ => {}
            }
        }
        let &(critical, fetched, committed, heard) = path
            .iter()
            .filter(|(projection, ..)| WAITED_FOR.contains(projection))
            .max_by_key(|(_, _, _, heard)| *heard)?;
        let stored_at = stored.at?;
        let points = [command.sent, write.at?, stored_at, fetched, committed, heard, visible.at?, command.answered];
        for (stage, pair) in points.windows(2).enumerate() {
            record(&mut self.stages[stage], pair[1].saturating_duration_since(pair[0]));
        }
        for (projection, fetched, committed, heard) in path {
            let (histograms, critical_count) = self.projections.get_mut(projection)?;
            record(&mut histograms[0], fetched.saturating_duration_since(stored_at));
            record(&mut histograms[1], committed.saturating_duration_since(fetched));
            record(&mut histograms[2], heard.saturating_duration_since(committed));
            if projection == critical {
                *critical_count += 1;
            }
        }
        Some(())
    }

    /// The stages along the critical path, of the commands matched.
    pub fn print_stages(&self, which: &str) {
        println!("    stages of {} {which} ({} not matched to their events), ms:", self.matched, self.unmatched);
        println!("    {:<52} {:>8} {:>8}", "stage (critical path)", "p50", "p99");
        for (name, histogram) in STAGES.iter().zip(&self.stages) {
            println!("    {name:<52} {:>8.2} {:>8.2}", ms(histogram, 0.5), ms(histogram, 0.99));
        }
    }

    /// The stages, then each shown projection's and every projection's batches.
    pub fn print(&self) {
        self.print_stages("commands");
        println!("    inside the {} batches ({} seen whole), ms:", WAITED_FOR[0], self.steps[0].len());
        for (name, histogram) in BATCH_STEPS.iter().zip(&self.steps) {
            println!("    {name:<52} {:>8.2} {:>8.2}", ms(histogram, 0.5), ms(histogram, 0.99));
        }
        for projection in SHOWN {
            let Some((histograms, critical)) = self.projections.get(projection) else { continue };
            println!(
                "    {projection:<6} waited for last {critical:>5}×; stored→fetched {:.2}/{:.2}, fetched→committed \
                 {:.2}/{:.2}, committed→heard {:.2}/{:.2} (p50/p99 ms); batch p50/p99 {}/{} messages",
                ms(&histograms[0], 0.5),
                ms(&histograms[0], 0.99),
                ms(&histograms[1], 0.5),
                ms(&histograms[1], 0.99),
                ms(&histograms[2], 0.5),
                ms(&histograms[2], 0.99),
                histograms[3].value_at_quantile(0.5),
                histograms[3].value_at_quantile(0.99),
            );
        }
        println!("    every batch of the projections reading room events (fetched → committed), p50/p99:");
        for (projection, took, messages) in &self.batches {
            println!(
                "    {projection:<13} {:>6} batches, {:>7.2} / {:>7.2} ms, {:>4} / {:>4} messages",
                took.len(),
                ms(took, 0.5),
                ms(took, 0.99),
                messages.value_at_quantile(0.5),
                messages.value_at_quantile(0.99),
            );
        }
    }
}

fn record(histogram: &mut Histogram<u64>, took: Duration) {
    // Saturates rather than fails on an outlier.
    histogram.saturating_record((took.as_micros() as u64).max(1));
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1e3
}
