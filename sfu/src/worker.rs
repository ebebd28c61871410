//! A media worker's thread: the I/O around its sans-IO core (`worker_core.rs`).
//!
//! It owns the clock and the channels: it waits for inputs (datagrams from the
//! receive loops, requests from the conductor, packets shared by other workers)
//! until the core's next timer, hands them to the core with the time, and carries
//! out what the core asks: datagrams sent on the SFU's sockets, route changes to
//! the receive loops, packets to the other workers, reports to the room core and
//! messages to clients.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tokio::sync::mpsc::UnboundedSender;

use crate::inputs::{CoreInput, WorkerInput};
use crate::metrics::WorkerMetrics;
use crate::queues::{WorkerInbox, WorkerSender};
use crate::recorder::{PacketQueue, RecordedPacket};
use crate::routes::RouteChange;
use crate::send_batch::{MAX_MESSAGES, SendBatch};
use crate::signal::Outgoing;
use crate::tcp::TcpMedia;
use crate::worker_core::{WorkerCore, WorkerOutput};

/// When nothing is due, a worker still wakes this often.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// Inputs handled before the worker looks at timers again.
const BATCH: usize = 256;
/// Queued UDP datagrams are sent once this many wait, not only at the end of
/// a wake: a wake of 256 inputs at 1→400 makes ~100k datagrams, and a flush
/// builds its message headers for all it holds. (Batching delays nothing: the
/// core encrypts a wake's packets before the first one is polled.)
const SEND_AT: usize = 4 * MAX_MESSAGES;

/// One of the SFU's UDP sockets, as workers use it.
pub struct MediaSocket {
    pub socket: Arc<UdpSocket>,
    /// The address in the ICE candidate of peers on this socket.
    pub announce: SocketAddr,
    /// Tells this socket's receive loop which peers exist and with which ICE credentials.
    pub routes: Sender<RouteChange>,
}

pub struct Worker {
    pub index: usize,
    /// Control inputs first, then media (`queues.rs`).
    pub inbox: WorkerInbox,
    /// Every worker's queues; packets shared with the others go to their media queues.
    pub workers: Vec<WorkerSender>,
    pub sockets: Arc<Vec<MediaSocket>>,
    pub conductor: UnboundedSender<CoreInput>,
    pub signals: UnboundedSender<Outgoing>,
    pub metrics: Arc<WorkerMetrics>,
    /// The ICE-TCP listener's connections, when there is one.
    pub tcp: Option<Arc<TcpMedia>>,
    /// The recording thread's packet queue, never waited on.
    pub recorder: Option<PacketQueue>,
    core: WorkerCore,
    /// UDP datagrams of this wake not yet handed to the kernel (`send_batch.rs`).
    outgoing: SendBatch,
}

impl Worker {
    pub fn new(
        index: usize,
        inbox: WorkerInbox,
        workers: Vec<WorkerSender>,
        sockets: Arc<Vec<MediaSocket>>,
        conductor: UnboundedSender<CoreInput>,
        signals: UnboundedSender<Outgoing>,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        let announced = sockets.iter().map(|socket| socket.announce).collect();
        let core = WorkerCore::new(announced, Arc::clone(&metrics), Instant::now());
        let outgoing = SendBatch::new(sockets.len());
        Self { index, inbox, workers, sockets, conductor, signals, metrics, tcp: None, recorder: None, core, outgoing }
    }

    /// Its peers also take ICE-TCP, through the listener's connections.
    pub fn with_tcp(self, tcp: Option<Arc<TcpMedia>>) -> Self {
        let announce = tcp.as_ref().map(|tcp| tcp.announce);
        Self { core: self.core.with_tcp(announce), tcp, ..self }
    }

    /// Whether its peers estimate their downlinks (`SfuConfig::downlink_estimate`).
    pub fn with_downlink_estimate(self, on: bool) -> Self {
        Self { core: self.core.with_downlink_estimate(on), ..self }
    }

    /// Packets of recorded tracks go to the recording thread through `queue`.
    pub fn with_recorder(self, queue: PacketQueue) -> Self {
        Self { recorder: Some(queue), ..self }
    }

    pub fn run(mut self) {
        loop {
            let now = Instant::now();
            let deadline = self.core.poll_timeout().unwrap_or(now + IDLE_WAKE).min(now + IDLE_WAKE);
            let Some(batch) = self.inbox.next_batch(deadline.saturating_duration_since(now), BATCH) else { return };
            let mut stop = false;
            for input in batch {
                if matches!(input, WorkerInput::Stop) {
                    stop = true;
                    break;
                }
                self.core.handle_input(Instant::now(), input);
            }
            self.core.handle_timeout(Instant::now());
            self.perform_outputs();
            if stop {
                // Closed peers still have their goodbyes (DTLS close) to send.
                self.core.close_all();
                self.perform_outputs();
                return;
            }
        }
    }

    fn perform_outputs(&mut self) {
        let mut sent = 0u64;
        while let Some(output) = self.core.poll_output() {
            match output {
                WorkerOutput::Transmit { to, bytes, tcp: true, .. } => {
                    if self.tcp.as_ref().is_some_and(|tcp| tcp.send(to, &bytes)) {
                        sent += 1;
                    }
                }
                WorkerOutput::Transmit { socket, to, bytes, tcp: false } => {
                    self.outgoing.push(socket, to, bytes);
                    if self.outgoing.len() >= SEND_AT {
                        sent += self.flush_udp();
                    }
                }
                WorkerOutput::Route { socket, change } => {
                    if let Some(tcp) = &self.tcp {
                        let _ = tcp.routes.send(change.clone());
                    }
                    let _ = self.sockets[socket].routes.send(change);
                }
                WorkerOutput::Shared { source, packet, layer, to } => {
                    for &index in to.iter().filter(|&&index| index != self.index) {
                        if let Some(worker) = self.workers.get(index) {
                            let _ = worker.offer_media(WorkerInput::Rtp { source, packet: Arc::clone(&packet), layer });
                        }
                    }
                }
                WorkerOutput::ToRoom { peer, output } => {
                    let _ = self.conductor.send(CoreInput::FromPeer { peer, output });
                }
                WorkerOutput::Signal(outgoing) => {
                    let _ = self.signals.send(outgoing);
                }
                WorkerOutput::AudioLevels { at, levels } => {
                    let _ = self.conductor.send(CoreInput::AudioLevels { at, levels });
                }
                WorkerOutput::Record { source, packet, layer, at } => {
                    if let Some(queue) = &self.recorder {
                        queue.offer(RecordedPacket { source, packet, layer, at });
                    }
                }
            }
        }
        sent += self.flush_udp();
        self.metrics.datagrams_out.fetch_add(sent, Ordering::Relaxed);
    }

    /// Sends the queued UDP datagrams; returns how many the kernel took.
    fn flush_udp(&mut self) -> u64 {
        if self.outgoing.is_empty() {
            return 0;
        }
        self.outgoing.flush(self.sockets.iter().map(|socket| &*socket.socket)).sent
    }
}
