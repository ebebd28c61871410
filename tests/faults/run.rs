//! One fault run: the stack, the load around the fault, then the proof.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::load::{Load, Running};
use crate::report::{self, Figures};
use crate::stack::Stack;
use crate::verify::{self, Stream};

/// Load before the fault, so it hits writes in flight.
const WARM_UP: Duration = Duration::from_secs(3);
/// Load after the fault's end, so recovery is exercised.
const RECOVERY: Duration = Duration::from_secs(5);

pub struct Run {
    pub stack: Stack,
    epoch: Instant,
    load: Option<Running>,
    fault: Option<Range<Duration>>,
    disk_loss: Option<Range<Duration>>,
    writes_during_fault: bool,
}

impl Run {
    /// One NATS server, Postgres, rapat, and the load running for a while.
    pub async fn single() -> Self {
        Self::around(Stack::single().await).await
    }

    /// A three-node NATS cluster with three stream replicas, and the load.
    pub async fn cluster() -> Self {
        Self::around(Stack::cluster().await).await
    }

    async fn around(stack: Stack) -> Self {
        let epoch = Instant::now();
        let load = Load::prepare(stack.rapat.base_url(), epoch).await;
        let running = load.start();
        tokio::time::sleep(WARM_UP).await;
        Self { stack, epoch, load: Some(running), fault: None, disk_loss: None, writes_during_fault: false }
    }

    /// Time since the run began (the records' clock).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The fault is on from now.
    pub fn fault_begins(&mut self) {
        let now = self.now();
        self.fault = Some(now..now);
    }

    /// The fault is over (the service is back).
    pub fn fault_ends(&mut self) {
        let now = self.now();
        let began = self.fault.as_ref().map_or(now, |fault| fault.start);
        self.fault = Some(began..now);
    }

    /// The run also fails when no write was acknowledged while the fault was on.
    pub fn require_writes_during_fault(&mut self) {
        self.writes_during_fault = true;
    }

    /// The load forgets who is in which room and on whose contact list (see
    /// [`Running::forget`]).
    pub fn forget(&self) {
        if let Some(load) = &self.load {
            load.forget();
        }
    }

    /// Acknowledged writes answered from `since` to the fault's end may be
    /// missing from the stream because the fault removed them from disk on
    /// purpose; the load forgets what it learnt from them.
    pub fn disk_loss_since(&mut self, since: Duration) {
        let end = self.fault.as_ref().map_or_else(|| self.now(), |fault| fault.end);
        self.disk_loss = Some(since..end);
        self.forget();
    }

    /// Keeps the load on for a while after the fault, stops it, and proves what
    /// the stream and the read models hold; prints the table and fails the test
    /// on a lost, doubled or falsely failed write, or forked read models.
    pub async fn finish(mut self, fault: &str) {
        tokio::time::sleep(RECOVERY).await;
        let running = self.load.take().expect("the load runs until finish");
        let records = running.stop().await;
        verify::wait_for_stream(&self.stack).await;
        let stream = Stream::export(&self.stack).await;
        let window = self.fault.clone().expect("the fault's test marks when it began and ended");
        let mut figures = Figures::of(&records, &stream, window.clone(), self.disk_loss.clone());
        figures.fork = verify::read_model_differences(&self.stack, &stream).await;
        let after =
            records.iter().filter(|record| record.attempts[0].sent_at > window.end && record.data().is_some()).count();
        println!(
            "{}  fault on from {:.1} s to {:.1} s; {after} writes sent after it acknowledged; {} events in the stream\n  \
             answers other than success: {}\n",
            report::table(fault, &figures),
            window.start.as_secs_f64(),
            window.end.as_secs_f64(),
            stream.events.len(),
            report::failure_answers(&records),
        );
        report::append_to_report(fault, &figures);
        assert!(
            !self.writes_during_fault || figures.acknowledged_during_fault > 0,
            "{fault}: no write was acknowledged while the fault was on (table above)"
        );
        assert!(
            !figures.failed(),
            "{fault}: lost {}, applied twice {}, false failures {}, read models forked: {} (table above)\n{}\nrapat's log ends:\n{}",
            figures.lost,
            figures.applied_twice,
            figures.false_failures,
            !figures.fork.is_empty(),
            // Repeated here: a CI log shows the panic's message, and may cut the table.
            figures.examples.join("\n"),
            self.stack.rapat.log_tail(30)
        );
    }
}
