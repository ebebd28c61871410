//! Counters a worker keeps, read by the benchmark and by operators.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub datagrams_in: AtomicU64,
    /// Everything sent: forwarded RTP, retransmissions, RTCP, ICE and DTLS.
    pub datagrams_out: AtomicU64,
    /// RTP packets handed to a subscriber leg.
    pub rtp_forwarded: AtomicU64,
    /// Media inputs dropped because this worker's media queue was full (`queues.rs`).
    pub media_shed: AtomicU64,
    /// Media inputs dropped because they waited in the media queue longer than its bound (`queues.rs`).
    pub media_expired: AtomicU64,
}

/// Totals over every worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SfuCounters {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub rtp_forwarded: u64,
    pub media_shed: u64,
    pub media_expired: u64,
}

impl SfuCounters {
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerMetrics>) -> Self {
        workers.into_iter().fold(Self::default(), |total, worker| Self {
            datagrams_in: total.datagrams_in + worker.datagrams_in.load(Ordering::Relaxed),
            datagrams_out: total.datagrams_out + worker.datagrams_out.load(Ordering::Relaxed),
            rtp_forwarded: total.rtp_forwarded + worker.rtp_forwarded.load(Ordering::Relaxed),
            media_shed: total.media_shed + worker.media_shed.load(Ordering::Relaxed),
            media_expired: total.media_expired + worker.media_expired.load(Ordering::Relaxed),
        })
    }
}
