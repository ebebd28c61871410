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

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::inputs::WorkerInput;
use crate::metrics::WorkerMetrics;

/// Media inputs a worker may have waiting: a few hundred milliseconds of what
/// its subscribers' feedback and its publishers' packets bring at the rates
/// the bench drives; beyond that, waiting longer helps no one.
pub const MEDIA_QUEUE: usize = 4096;

/// Whether a datagram is SRTP or SRTCP (RFC 7983's demultiplexing by first byte).
pub fn is_media(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(128..=191))
}

/// Where inputs for one worker go.
#[derive(Clone)]
pub struct WorkerSender {
    pub control: Sender<WorkerInput>,
    media: Sender<WorkerInput>,
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
        match self.media.try_send(input) {
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
    media: Receiver<WorkerInput>,
}

/// A worker's queues with room for `media_capacity` media inputs.
pub fn worker_queues(media_capacity: usize, metrics: Arc<WorkerMetrics>) -> (WorkerSender, WorkerInbox) {
    let (control_tx, control) = crossbeam_channel::unbounded();
    let (media_tx, media) = crossbeam_channel::bounded(media_capacity.max(1));
    (WorkerSender { control: control_tx, media: media_tx, metrics }, WorkerInbox { control, media })
}

impl WorkerInbox {
    /// Up to `max` inputs, every waiting control input before any media one;
    /// waits up to `timeout` for the first. `None` once the control side is closed.
    pub fn next_batch(&self, timeout: Duration, max: usize) -> Option<Vec<WorkerInput>> {
        let mut batch = Vec::new();
        match self.control.try_recv() {
            Ok(input) => batch.push(input),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if batch.is_empty() {
            crossbeam_channel::select_biased! {
                recv(self.control) -> input => batch.push(input.ok()?),
                recv(self.media) -> input => batch.extend(input.ok()),
                default(timeout) => {}
            }
        }
        while batch.len() < max {
            match self.control.try_recv() {
                Ok(input) => batch.push(input),
                Err(_) => break,
            }
        }
        while batch.len() < max {
            match self.media.try_recv() {
                Ok(input) => batch.push(input),
                Err(_) => break,
            }
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
        let (sender, inbox) = worker_queues(8, Arc::clone(&metrics));
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
}
