//! Each media worker's two inboxes: control and media.
//!
//! Everything a worker is told used to wait in one unbounded FIFO. When the
//! workers fall behind (a connect storm of hundreds of subscribers on a busy
//! machine), seconds of SRTP and SRTCP piled up in it, and the STUN checks and
//! DTLS flights of the same peers waited behind them: the SFU answered consent
//! checks too late (clients went "disconnected"), its DTLS server ran out of
//! retransmissions before the client's flight came through, and clients that
//! were admitted never connected, while connected peers failed ICE after 30 s.
//!
//! Now SRTP/SRTCP datagrams (RFC 7983: first byte 128..=191) and packets shared
//! by other workers go to a bounded media queue, and what does not fit is shed
//! and counted; everything else (STUN, DTLS, signaling, room changes) goes to
//! the control inbox, which the worker always empties first. Under overload the
//! SFU loses media, as a full network queue would, but keeps answering checks
//! and finishing handshakes.
//!
//! The media queue can be bounded by age too (off by default, see
//! `SfuConfig::media_max_age`): each input is stamped when queued, and one
//! that waited longer than the worker's `max_age` is dropped when taken out,
//! unhandled, and counted. A count alone let a starved worker hold seconds of media (4,096
//! inputs is seconds when few subscribers send feedback), and each stale
//! publisher packet still cost hundreds of encryptions and sends, which the
//! worker, already behind, paid before the fresh media and the next control
//! inputs. Dropping a stale input costs a comparison.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::inputs::WorkerInput;
use crate::metrics::WorkerMetrics;

/// Media inputs a worker may have waiting: a few hundred milliseconds of what
/// its subscribers' feedback and its publishers' packets bring at the rates
/// the bench drives; beyond that, waiting longer helps no one.
pub const MEDIA_QUEUE: usize = 4096;

/// A media input and when it was queued (only while media is bounded by age:
/// a clock read per packet is not paid for a bound that is off).
type Stamped = (Option<Instant>, WorkerInput);

/// Whether a datagram is SRTP or SRTCP (RFC 7983's demultiplexing by first byte).
pub fn is_media(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(128..=191))
}

/// Where inputs for one worker go.
#[derive(Clone)]
pub struct WorkerSender {
    pub control: Sender<WorkerInput>,
    media: Sender<Stamped>,
    /// Whether media is stamped: the receiving worker bounds it by age.
    stamped: bool,
    /// The receiving worker's counters (media shed).
    metrics: Arc<WorkerMetrics>,
}

/// What became of an input handed to a worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Handover {
    Queued,
    /// The media queue was full: the input was dropped and counted.
    Shed,
    /// The worker is gone.
    Closed,
}

impl WorkerSender {
    /// Media into the bounded queue, never waiting.
    pub fn offer_media(&self, input: WorkerInput) -> Handover {
        self.offer_media_at(input, Instant::now)
    }

    fn offer_media_at(&self, input: WorkerInput, clock: impl Fn() -> Instant) -> Handover {
        let queued = self.stamped.then(clock);
        match self.media.try_send((queued, input)) {
            Ok(()) => Handover::Queued,
            Err(TrySendError::Full(_)) => {
                self.metrics.media_shed.fetch_add(1, Ordering::Relaxed);
                Handover::Shed
            }
            Err(TrySendError::Disconnected(_)) => Handover::Closed,
        }
    }

    /// A datagram from a client: media to the media queue, the rest to control.
    pub fn datagram(&self, input: WorkerInput, datagram: &[u8]) -> Handover {
        if is_media(datagram) {
            return self.offer_media(input);
        }
        match self.control.send(input) {
            Ok(()) => Handover::Queued,
            Err(_) => Handover::Closed,
        }
    }
}

/// A worker's end of its two queues.
pub struct WorkerInbox {
    control: Receiver<WorkerInput>,
    media: Receiver<Stamped>,
    /// Media that waited longer is dropped when taken out.
    max_age: Option<Duration>,
    /// This worker's counters (media dropped for age).
    metrics: Arc<WorkerMetrics>,
}

/// A worker's queues with room for `media_capacity` media inputs, each kept at most `max_age`.
pub fn worker_queues(
    media_capacity: usize,
    max_age: Option<Duration>,
    metrics: Arc<WorkerMetrics>,
) -> (WorkerSender, WorkerInbox) {
    let (control_tx, control) = crossbeam_channel::unbounded();
    let (media_tx, media) = crossbeam_channel::bounded(media_capacity.max(1));
    let inbox = WorkerInbox { control, media, max_age, metrics: Arc::clone(&metrics) };
    (WorkerSender { control: control_tx, media: media_tx, stamped: max_age.is_some(), metrics }, inbox)
}

impl WorkerInbox {
    /// Up to `max` inputs, every waiting control input before any media one;
    /// waits up to `timeout` for the first. Media older than the queue's
    /// `max_age` is dropped and counted, not returned. `None` once the control
    /// side is closed.
    pub fn next_batch(&self, timeout: Duration, max: usize) -> Option<Vec<WorkerInput>> {
        self.next_batch_at(timeout, max, Instant::now)
    }

    /// [`Self::next_batch`], with ages taken at `clock()` read once the batch is
    /// being filled (after the wait).
    fn next_batch_at(&self, timeout: Duration, max: usize, clock: impl Fn() -> Instant) -> Option<Vec<WorkerInput>> {
        let mut batch = Vec::new();
        let mut first_media = None;
        match self.control.try_recv() {
            Ok(input) => batch.push(input),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if batch.is_empty() {
            crossbeam_channel::select_biased! {
                recv(self.control) -> input => batch.push(input.ok()?),
                recv(self.media) -> input => first_media = input.ok(),
                default(timeout) => {}
            }
        }
        while batch.len() < max {
            match self.control.try_recv() {
                Ok(input) => batch.push(input),
                Err(_) => break,
            }
        }
        let now = clock();
        let mut expired = 0u64;
        let mut keep = |(queued, input): Stamped, batch: &mut Vec<WorkerInput>| {
            let waited = queued.map(|queued| now.saturating_duration_since(queued));
            if waited.zip(self.max_age).is_some_and(|(waited, max_age)| waited > max_age) {
                expired += 1;
            } else {
                batch.push(input);
            }
        };
        // The input that ended the wait is kept even when control filled the batch since.
        if let Some(first) = first_media {
            keep(first, &mut batch);
        }
        while batch.len() < max {
            match self.media.try_recv() {
                Ok(stamped) => keep(stamped, &mut batch),
                Err(_) => break,
            }
        }
        if expired > 0 {
            self.metrics.media_expired.fetch_add(expired, Ordering::Relaxed);
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(peer: u64) -> WorkerInput {
        WorkerInput::Close { peer }
    }

    fn control(peer: u64) -> WorkerInput {
        WorkerInput::Keyframe { peer, source: crate::source::SourceId(0) }
    }

    fn peer_of(input: &WorkerInput) -> u64 {
        match input {
            WorkerInput::Close { peer } | WorkerInput::Keyframe { peer, .. } => *peer,
            _ => u64::MAX,
        }
    }

    #[test]
    fn datagrams_are_told_apart_by_their_first_byte() {
        // STUN (0..=3), DTLS (20..=63), SRTP/SRTCP (128..=191), RFC 7983.
        assert!(!is_media(&[0x00, 0x01]));
        assert!(!is_media(&[22, 254, 253]));
        assert!(is_media(&[0x80, 0x60]));
        assert!(is_media(&[0x81, 200]));
        assert!(is_media(&[0xbf]));
        assert!(!is_media(&[0xc0]));
        assert!(!is_media(&[]));
    }

    /// A check that arrives behind a full queue of media is handled in the next
    /// batch, ahead of the media; with one FIFO it came after all of it.
    #[test]
    fn control_overtakes_queued_media_and_media_beyond_the_bound_is_shed() {
        let metrics = Arc::new(WorkerMetrics::default());
        let (sender, inbox) = worker_queues(8, None, Arc::clone(&metrics));
        for peer in 0..10 {
            let expected = if peer < 8 { Handover::Queued } else { Handover::Shed };
            assert_eq!(sender.offer_media(media(peer)), expected, "media {peer}");
        }
        assert_eq!(metrics.media_shed.load(Ordering::Relaxed), 2);
        let stun = [0x00, 0x01, 0x00, 0x00];
        assert_eq!(sender.datagram(control(100), &stun), Handover::Queued, "control is never shed");
        assert_eq!(sender.datagram(control(101), &stun), Handover::Queued);

        let first = inbox.next_batch(Duration::from_millis(10), 4).expect("open");
        assert_eq!(first.iter().map(peer_of).collect::<Vec<_>>(), vec![100, 101, 0, 1]);
        let rest = inbox.next_batch(Duration::from_millis(10), 100).expect("open");
        assert_eq!(rest.iter().map(peer_of).collect::<Vec<_>>(), (2..8).collect::<Vec<_>>());
        assert!(inbox.next_batch(Duration::from_millis(1), 100).expect("open").is_empty(), "waits, then nothing");

        // Media waiting alone still wakes the worker.
        assert_eq!(sender.datagram(media(7), &[0x80]), Handover::Queued);
        let woken = inbox.next_batch(Duration::from_secs(5), 10).expect("open");
        assert_eq!(woken.iter().map(peer_of).collect::<Vec<_>>(), vec![7]);

        drop(sender);
        assert!(inbox.next_batch(Duration::from_millis(1), 10).is_none(), "closed");
    }

    /// A worker that lost the CPU for a second finds that second of media
    /// waiting: what waited longer than the bound is dropped and counted, the
    /// fresh media behind it is handled, and control still comes first. With
    /// a bound by count alone, all of it came out to be forwarded.
    #[test]
    fn media_that_waited_longer_than_the_bound_is_dropped_when_taken_out() {
        let metrics = Arc::new(WorkerMetrics::default());
        let max_age = Duration::from_millis(300);
        let (sender, inbox) = worker_queues(64, Some(max_age), Arc::clone(&metrics));
        let start = Instant::now();
        for peer in 0..10 {
            // Queued 100 ms apart over the second the worker was away.
            let queued = start + Duration::from_millis(100 * peer);
            assert_eq!(sender.offer_media_at(media(peer), || queued), Handover::Queued);
        }
        let stun = [0x00, 0x01, 0x00, 0x00];
        assert_eq!(sender.datagram(control(100), &stun), Handover::Queued);

        // Taken out at start + 1 s: inputs 0..=6 waited 400 ms or more.
        let back = start + Duration::from_secs(1);
        let batch = inbox.next_batch_at(Duration::from_millis(10), 100, || back).expect("open");
        assert_eq!(batch.iter().map(peer_of).collect::<Vec<_>>(), vec![100, 7, 8, 9]);
        assert_eq!(metrics.media_expired.load(Ordering::Relaxed), 7);
        assert_eq!(metrics.media_shed.load(Ordering::Relaxed), 0, "none was over the count");

        // The input the wait ended on is judged by its age too.
        assert_eq!(sender.offer_media_at(media(11), || back), Handover::Queued);
        let late = back + max_age + Duration::from_millis(1);
        let batch = inbox.next_batch_at(Duration::from_secs(5), 100, || late).expect("open");
        assert!(batch.is_empty(), "stale: {:?}", batch.iter().map(peer_of).collect::<Vec<_>>());
        assert_eq!(metrics.media_expired.load(Ordering::Relaxed), 8);
    }
}
