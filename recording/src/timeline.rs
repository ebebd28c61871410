//! One recording's clock: RTP timestamps of every stream a publication sent (a
//! new SSRC after a restart, another simulcast layer) placed on one timeline
//! that starts at 0 and only moves forward. A stream's timestamps are extended
//! past their 32-bit wrap; a new stream continues where the last one stopped,
//! plus the wall-clock time between them.

use std::time::Instant;

#[derive(Debug)]
struct Stream {
    ssrc: u32,
    newest: u64,
    /// Added to the stream's extended timestamps to place them on the timeline.
    offset: i64,
}

#[derive(Debug)]
pub struct Timeline {
    clock_rate: u32,
    stream: Option<Stream>,
    /// The latest place given out, and when its packet arrived.
    latest: Option<(u64, Instant)>,
}

impl Timeline {
    pub fn new(clock_rate: u32) -> Self {
        Self { clock_rate, stream: None, latest: None }
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Where a packet of `ssrc` with RTP `timestamp`, arrived at `at`, falls (in
    /// clock ticks from the recording's first packet).
    pub fn place(&mut self, ssrc: u32, timestamp: u32, at: Instant) -> u64 {
        let stream = match &mut self.stream {
            Some(stream) if stream.ssrc == ssrc => stream,
            _ => {
                let start = match self.latest {
                    None => 0,
                    Some((latest, latest_at)) => {
                        let elapsed = at.saturating_duration_since(latest_at).as_secs_f64();
                        latest + ((elapsed * f64::from(self.clock_rate)) as u64).max(1)
                    }
                };
                let extended = u64::from(timestamp) + (1 << 32);
                let offset = start as i64 - extended as i64;
                self.stream.insert(Stream { ssrc, newest: extended, offset })
            }
        };
        let delta = i64::from(timestamp.wrapping_sub(stream.newest as u32) as i32);
        let extended = stream.newest.saturating_add_signed(delta);
        stream.newest = stream.newest.max(extended);
        let placed = (extended as i64 + stream.offset).max(0) as u64;
        if self.latest.is_none_or(|(latest, _)| placed >= latest) {
            self.latest = Some((placed, at));
        }
        placed
    }

    /// The latest place given out.
    pub fn latest(&self) -> Option<u64> {
        self.latest.map(|(latest, _)| latest)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_start_at_zero_and_wrap() {
        let at = Instant::now();
        let mut timeline = Timeline::new(48_000);
        assert_eq!(timeline.place(1, u32::MAX - 959, at), 0);
        assert_eq!(timeline.place(1, 0, at), 960);
        assert_eq!(timeline.place(1, 960, at), 1920);
        assert_eq!(timeline.place(1, u32::MAX - 959, at), 0, "a late packet keeps its place");
    }

    #[test]
    fn a_new_ssrc_continues_after_the_wall_clock_pause() {
        let at = Instant::now();
        let mut timeline = Timeline::new(90_000);
        timeline.place(1, 5000, at);
        assert_eq!(timeline.place(1, 5000 + 9000, at + Duration::from_millis(100)), 9000);
        let placed = timeline.place(2, 77, at + Duration::from_millis(600));
        assert_eq!(placed, 9000 + 45_000);
        assert_eq!(timeline.place(2, 77 + 3000, at + Duration::from_millis(633)), 9000 + 48_000);
    }
}
