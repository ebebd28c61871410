//! The gauges every channel exports (SPEC §7 operations): how much waits, how
//! much is being retried, how much failed, and how old the oldest undelivered
//! message is. `rapat_delivery_delivered_total` is counted where a send succeeds.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Not yet attempted.
    pub queued: u64,
    /// Attempted, failed, and due again later.
    pub retrying: u64,
    /// Given up on (until retried by hand).
    pub failed: u64,
    /// Age of the oldest message not yet delivered nor failed.
    pub oldest_undelivered: Option<Duration>,
}

impl ChannelCounts {
    pub fn export(&self, channel: &'static str) {
        metrics::gauge!("rapat_delivery_queued", "channel" => channel).set(self.queued as f64);
        metrics::gauge!("rapat_delivery_retrying", "channel" => channel).set(self.retrying as f64);
        metrics::gauge!("rapat_delivery_failed", "channel" => channel).set(self.failed as f64);
        let oldest = self.oldest_undelivered.unwrap_or_default().as_secs_f64();
        metrics::gauge!("rapat_delivery_oldest_undelivered_seconds", "channel" => channel).set(oldest);
    }
}
