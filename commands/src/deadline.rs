//! One deadline for everything a request does (load, publish, settle, wait for
//! read models), and what its writes came to, so that the answer tells the truth.
//!
//! The gateway runs each request inside [`scope`]; the store reads the budget
//! from there instead of each step waiting out its own timeout. Outside a scope
//! (WebSocket messages, the binary's tools) every step keeps its own timeout.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static BUDGET: Arc<RequestBudget>;
}

/// What is known of the last write a request started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteState {
    /// No write started, or the last one was refused or not sent.
    None = 0,
    /// Its message was handed to the NATS client and not settled: it may be
    /// stored now, later, or never.
    Unsettled = 1,
    /// Its events are in the stream.
    Stored = 2,
}

/// A request's deadline and the state of its last write.
#[derive(Debug)]
pub struct RequestBudget {
    deadline: Instant,
    last_write: AtomicU8,
}

impl RequestBudget {
    pub fn new(limit: Duration) -> Arc<Self> {
        Arc::new(Self { deadline: Instant::now() + limit, last_write: AtomicU8::new(WriteState::None as u8) })
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn last_write(&self) -> WriteState {
        match self.last_write.load(Ordering::Acquire) {
            1 => WriteState::Unsettled,
            2 => WriteState::Stored,
            _ => WriteState::None,
        }
    }

    fn set(&self, state: WriteState) {
        self.last_write.store(state as u8, Ordering::Release);
    }
}

/// Runs `future` with `budget` as the current request's.
pub async fn scope<F: Future>(budget: Arc<RequestBudget>, future: F) -> F::Output {
    BUDGET.scope(budget, future).await
}

/// The current request's budget, if the caller runs inside [`scope`].
pub fn current() -> Option<Arc<RequestBudget>> {
    BUDGET.try_with(Arc::clone).ok()
}

/// `step`'s own timeout, cut to what is left of the request's deadline.
pub fn bounded(step: Duration) -> Duration {
    current().map_or(step, |budget| budget.remaining().min(step))
}

/// Says that the request's effect was not stored, whatever its earlier steps
/// stored on the way (a registration's claim, an invitation bound before it is
/// answered): an `unavailable` answer after it must not read as "stored, not
/// visible yet".
pub fn not_applied() {
    record(WriteState::None);
}

/// Records what became of the write in progress.
pub(crate) fn record(state: WriteState) {
    if let Some(budget) = current() {
        budget.set(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_are_cut_to_the_request_deadline_only_inside_a_scope() {
        assert_eq!(bounded(Duration::from_secs(5)), Duration::from_secs(5));
        let budget = RequestBudget::new(Duration::from_millis(300));
        let inside = scope(Arc::clone(&budget), async {
            record(WriteState::Unsettled);
            bounded(Duration::from_secs(5))
        })
        .await;
        assert!(inside <= Duration::from_millis(300));
        assert_eq!(budget.last_write(), WriteState::Unsettled);
    }
}
