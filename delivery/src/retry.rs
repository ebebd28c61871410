//! When a failed send is tried again: exponential backoff with full jitter, for
//! at least `give_up_after` since the first attempt, then the delivery is
//! `failed`. One policy for every channel; the figures are configurable so a
//! test can run the whole schedule in seconds.

use std::time::Duration;

use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's ceiling; each later one doubles it.
    pub base: Duration,
    /// The ceiling no retry's delay exceeds.
    pub max_delay: Duration,
    /// How long after it was first due a delivery is retried before it is `failed`.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, doubling up to an hour, for 25 h: a receiver down for a day and a
    /// bit still gets everything.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(25 * 3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    RetryIn(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// After `attempts` failed attempts (1 for the first), `since_first_due` after
    /// the delivery was first due. The delay is drawn from [ceiling/2, ceiling]
    /// ("equal jitter"): retries of many deliveries spread out, and none comes
    /// back sooner than half the schedule.
    pub fn after_failure(&self, attempts: u32, since_first_due: Duration) -> NextStep {
        if since_first_due >= self.give_up_after {
            return NextStep::GiveUp;
        }
        let ceiling = self.ceiling(attempts);
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(Duration::ZERO..=half);
        let delay = half + jitter;
        // The last retry lands at the give-up moment, so the schedule is honoured
        // to the end and not cut short by a long final delay.
        let remaining = self.give_up_after - since_first_due;
        NextStep::RetryIn(delay.min(remaining))
    }

    fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.base.saturating_mul(1u32 << doublings.min(31)).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
        }
    }

    #[test]
    fn delays_double_within_their_jitter_band() {
        for attempts in 1..=5u32 {
            let ceiling = Duration::from_secs(1 << (attempts - 1));
            for _ in 0..100 {
                let NextStep::RetryIn(delay) = policy().after_failure(attempts, Duration::ZERO) else {
                    panic!("gave up too early")
                };
                assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempts}: {delay:?}");
            }
        }
    }

    #[test]
    fn delays_stop_growing_at_the_ceiling() {
        for attempts in [7, 20, 40, u32::MAX] {
            let NextStep::RetryIn(delay) = policy().after_failure(attempts, Duration::ZERO) else { panic!() };
            assert!(delay <= Duration::from_secs(60) && delay >= Duration::from_secs(30), "{delay:?}");
        }
    }

    #[test]
    fn the_last_retry_lands_on_the_give_up_moment_and_then_it_gives_up() {
        let NextStep::RetryIn(delay) = policy().after_failure(20, Duration::from_secs(590)) else { panic!() };
        assert!(delay <= Duration::from_secs(10));
        assert_eq!(policy().after_failure(21, Duration::from_secs(600)), NextStep::GiveUp);
    }
}
