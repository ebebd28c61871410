//! A loopback client's downlink limit: what comes in from the socket passes
//! a rate limit (a token bucket draining at the set rate) whose queue drops a
//! datagram that would wait longer than [`QUEUE_LIMIT`], as a shaped home link
//! does. Pure: the client's task asks when the next datagram is due.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

const QUEUE_LIMIT: Duration = Duration::from_millis(250);
/// IP and UDP headers count against the rate too.
const HEADERS: usize = 28;

#[derive(Default)]
pub(super) struct Shaper {
    free_at: Option<Instant>,
    queue: VecDeque<(Instant, SocketAddr, BytesMut)>,
    pub(super) dropped: u64,
}

impl Shaper {
    /// A datagram from `from` arriving at `now` on a link of `rate_bps`.
    pub(super) fn admit(&mut self, now: Instant, rate_bps: u64, from: SocketAddr, datagram: BytesMut) {
        let start = self.free_at.map_or(now, |free| free.max(now));
        if start.saturating_duration_since(now) > QUEUE_LIMIT {
            self.dropped += 1;
            return;
        }
        let bits = ((datagram.len() + HEADERS) * 8) as f64;
        let released = start + Duration::from_secs_f64(bits / rate_bps.max(1) as f64);
        self.free_at = Some(released);
        self.queue.push_back((released, from, datagram));
    }

    pub(super) fn next_release(&self) -> Option<Instant> {
        self.queue.front().map(|(at, ..)| *at)
    }

    pub(super) fn release(&mut self, now: Instant) -> Option<(SocketAddr, BytesMut)> {
        if self.queue.front().is_some_and(|(at, ..)| *at <= now) {
            return self.queue.pop_front().map(|(_, from, datagram)| (from, datagram));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_leave_at_the_rate_and_a_full_queue_drops() {
        let mut shaper = Shaper::default();
        let now = Instant::now();
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        // 1,000 + 28 bytes at 822,400 bit/s: 10 ms each; 250 ms of queue holds 26.
        for _ in 0..40 {
            shaper.admit(now, 822_400, from, BytesMut::zeroed(1_000));
        }
        assert_eq!(shaper.dropped, 14);
        assert_eq!(shaper.next_release(), Some(now + Duration::from_millis(10)));
        assert!(shaper.release(now).is_none());
        let released = (0..40).filter_map(|_| shaper.release(now + Duration::from_millis(100))).count();
        assert_eq!(released, 10);
    }
}
