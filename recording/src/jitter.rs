//! Puts one RTP stream's packets back in sequence-number order. Packets that
//! arrive out of order wait here a little; a missing packet is waited for at
//! most `max_wait` (or until `max_packets` are held behind it), then given up
//! as a gap, so one lost packet never holds up a recording for long. Sequence
//! numbers wrap at 2^16; they are extended to 64 bits around the newest seen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What comes out of the buffer, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Released<P> {
    Packet(P),
    /// `missing` packets were given up on before the next one.
    Gap {
        missing: u64,
    },
}

#[derive(Debug)]
pub struct JitterBuffer<P> {
    max_wait: Duration,
    max_packets: usize,
    /// The extended sequence number of the newest packet seen.
    newest: Option<u64>,
    /// The extended sequence number released next.
    next: Option<u64>,
    held: BTreeMap<u64, (Instant, P)>,
    /// Nothing released yet: the first packet to arrive may not be the first sent,
    /// so the start waits out the wait too.
    started: bool,
}

impl<P> JitterBuffer<P> {
    pub fn new(max_wait: Duration, max_packets: usize) -> Self {
        Self {
            max_wait,
            max_packets: max_packets.max(1),
            newest: None,
            next: None,
            held: BTreeMap::new(),
            started: false,
        }
    }

    /// Where `sequence` falls relative to the newest packet: within half the
    /// sequence space either way.
    fn extend(&self, sequence: u16) -> u64 {
        match self.newest {
            None => u64::from(sequence) + (1 << 16),
            Some(newest) => {
                let delta = i64::from(sequence.wrapping_sub(newest as u16) as i16);
                newest.saturating_add_signed(delta)
            }
        }
    }

    /// Takes a packet that arrived at `at`. A packet older than what was already
    /// released (late, or a duplicate) is dropped; returns whether it was kept.
    pub fn push(&mut self, sequence: u16, packet: P, at: Instant) -> bool {
        let extended = self.extend(sequence);
        if !self.started {
            self.next = Some(self.next.map_or(extended, |next| next.min(extended)));
        }
        if self.next.is_some_and(|next| extended < next) || self.held.contains_key(&extended) {
            return false;
        }
        self.newest = Some(self.newest.map_or(extended, |newest| newest.max(extended)));
        if self.next.is_none() {
            self.next = Some(extended);
        }
        self.held.insert(extended, (at, packet));
        true
    }

    /// The next packet (or gap) that is due at `now`, if any.
    pub fn pop(&mut self, now: Instant) -> Option<Released<P>> {
        let next = self.next?;
        let (&first, (arrived, _)) = self.held.first_key_value()?;
        let waited_out = now.saturating_duration_since(*arrived) >= self.max_wait;
        let full = self.held.len() > self.max_packets;
        if !self.started && !waited_out && !full {
            return None;
        }
        self.started = true;
        if first != next {
            if !waited_out && !full {
                return None;
            }
            self.next = Some(first);
            return Some(Released::Gap { missing: first - next });
        }
        let (_, (_, packet)) = self.held.pop_first()?;
        self.next = Some(next + 1);
        Some(Released::Packet(packet))
    }

    /// Everything held, in order, gaps included: the stream ended or changed.
    pub fn drain(&mut self) -> Vec<Released<P>> {
        self.started = true;
        let mut released = Vec::with_capacity(self.held.len());
        while let Some((extended, (_, packet))) = self.held.pop_first() {
            if let Some(next) = self.next
                && extended > next
            {
                released.push(Released::Gap { missing: extended - next });
            }
            released.push(Released::Packet(packet));
            self.next = Some(extended + 1);
        }
        *self = Self::new(self.max_wait, self.max_packets);
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(100);

    fn released(buffer: &mut JitterBuffer<u16>, now: Instant) -> Vec<Released<u16>> {
        std::iter::from_fn(|| buffer.pop(now)).collect()
    }

    #[test]
    fn reorders_packets_and_drops_late_duplicates() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new(WAIT, 100);
        for sequence in [11, 10, 12, 13] {
            buffer.push(sequence, sequence, start);
        }
        assert_eq!(released(&mut buffer, start), [], "the start waits for packets sent before the first to arrive");
        assert_eq!(released(&mut buffer, start + WAIT), [10, 11, 12, 13].map(Released::Packet));
        assert!(!buffer.push(11, 11, start), "a packet already released is late");
        assert!(buffer.push(14, 14, start));
        assert!(!buffer.push(14, 14, start), "a duplicate");
        assert_eq!(released(&mut buffer, start), [Released::Packet(14)], "once started, in-order packets go at once");
    }

    #[test]
    fn a_missing_packet_becomes_a_gap_after_the_wait() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new(WAIT, 100);
        buffer.push(1, 1, start);
        assert_eq!(released(&mut buffer, start + WAIT), [Released::Packet(1)]);
        let later = start + WAIT;
        buffer.push(4, 4, later);
        assert_eq!(released(&mut buffer, later + WAIT / 2), []);
        assert_eq!(released(&mut buffer, later + WAIT), [Released::Gap { missing: 2 }, Released::Packet(4)]);
    }

    #[test]
    fn a_full_buffer_gives_up_on_the_missing_packet_at_once() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new(WAIT, 3);
        buffer.push(1, 1, start);
        assert_eq!(released(&mut buffer, start + WAIT), [Released::Packet(1)]);
        for sequence in 3..=6 {
            buffer.push(sequence, sequence, start);
        }
        let out = released(&mut buffer, start + WAIT);
        assert_eq!(out[0], Released::Gap { missing: 1 });
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new(WAIT, 100);
        for sequence in [65534, 0, 65535, 1] {
            buffer.push(sequence, sequence, start);
        }
        assert_eq!(released(&mut buffer, start + WAIT), [65534, 65535, 0, 1].map(Released::Packet));
    }

    #[test]
    fn draining_releases_everything_in_order_with_its_gaps() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new(WAIT, 100);
        for sequence in [5, 8, 6] {
            buffer.push(sequence, sequence, start);
        }
        let drained = buffer.drain();
        assert_eq!(
            drained,
            [Released::Packet(5), Released::Packet(6), Released::Gap { missing: 1 }, Released::Packet(8)]
        );
        assert!(buffer.push(100, 100, start), "a drained buffer starts anew");
    }
}
