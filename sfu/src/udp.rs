//! The SFU's UDP sockets: every peer's ICE, DTLS, SRTP and SRTCP share one
//! (or one of a port range).
//!
//! A receive thread per socket reads datagrams and hands each to the worker that
//! owns its peer, by remote address. A new address is routed only by a verified
//! STUN binding request of a peer that exists (`routes.rs`); anything else from
//! an unknown address is dropped and counted, and nothing is kept for it. Workers
//! send on the same socket themselves, batched (`send_batch.rs`; sending on a
//! shared socket is safe).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::Receiver;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::inputs::WorkerInput;
use crate::queues::{Handover, WorkerSender};
use crate::routes::{RouteChange, RouteTable};

/// How often an idle receive loop wakes to apply route changes and check for stop.
const IDLE_WAKE: Duration = Duration::from_millis(200);
const MAX_DATAGRAM: usize = 1500;

/// What a receive loop reports, read by metrics and tests.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    /// Addresses in the routing table.
    pub routes: AtomicUsize,
    /// Datagrams from unknown addresses that did not verify, dropped.
    pub unrouted: AtomicU64,
}

pub struct ReceiveLoop {
    pub socket: Arc<UdpSocket>,
    /// The socket's announced address, not the bound one: webrtc-rs's ICE agent
    /// looks the datagram's local address up among its local candidates and
    /// drops what matches none ("Discarded message, not a valid local
    /// candidate", naming that local address, which reads as if the SFU had
    /// sent to itself). With 0.0.0.0 or a public IP behind NAT the bound
    /// address is never the candidate's. The agent also has no local candidate
    /// before the peer's first answer and after it failed or closed (rtc-ice
    /// deletes them), so a peer's leftover datagrams in those states log it too.
    pub local_addr: SocketAddr,
    /// SRTP/SRTCP go to a worker's bounded media queue, the rest (STUN, DTLS) ahead of it.
    pub workers: Vec<WorkerSender>,
    /// Peers of this socket created and closed, from their workers.
    pub changes: Receiver<RouteChange>,
    pub table: RouteTable,
    pub metrics: Arc<RouteMetrics>,
    pub stop: Arc<AtomicBool>,
}

impl ReceiveLoop {
    pub fn run(mut self) {
        if let Err(error) = self.socket.set_read_timeout(Some(IDLE_WAKE)) {
            tracing::error!(%error, "cannot set the SFU socket's read timeout");
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            self.apply_changes();
            let (len, from) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    continue;
                }
                // ICMP errors from a client that went away surface here on Linux.
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(error) => {
                    tracing::warn!(%error, "SFU socket receive failed");
                    continue;
                }
            };
            let datagram = &buf[..len];
            let Some(peer) = self.route(from, datagram) else {
                self.metrics.unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let worker = &self.workers[(peer % self.workers.len() as u64) as usize];
            let tagged = TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: self.local_addr,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(datagram),
            };
            if worker.datagram(WorkerInput::Datagram { peer, datagram: tagged }, datagram) == Handover::Closed {
                return;
            }
        }
    }

    fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<u64> {
        if let Some(peer) = self.table.known(from) {
            return Some(peer);
        }
        // The client's first check can overtake its peer's registration while
        // this thread waited in `recv_from`.
        self.apply_changes();
        let peer = self.table.learn(from, datagram)?;
        self.metrics.routes.store(self.table.len(), Ordering::Relaxed);
        Some(peer)
    }

    fn apply_changes(&mut self) {
        let mut changed = false;
        while let Ok(change) = self.changes.try_recv() {
            self.table.apply(change);
            changed = true;
        }
        if changed {
            self.metrics.routes.store(self.table.len(), Ordering::Relaxed);
        }
    }
}
