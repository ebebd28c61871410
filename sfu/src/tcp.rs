//! ICE-TCP (RFC 6544): a passive TCP candidate for clients whose network blocks
//! UDP. Every packet of a peer's ICE, DTLS, SRTP and SRTCP travels on one TCP
//! connection the client opens, each framed with a two-byte length (RFC 4571).
//!
//! It routes like `udp.rs`, per connection instead of per datagram: a
//! connection belongs to no peer until its first frame, a STUN binding request,
//! verifies with a peer's ICE password (`routes.rs`, a table of its own). Then
//! every frame goes to that peer's worker as a datagram tagged TCP, and what the
//! peer's connection writes to that remote address goes back framed on the same
//! connection. A connection that does not verify in time, sends anything else
//! first, or whose peer closes is closed; nothing is kept for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::inputs::WorkerInput;
use crate::routes::{RouteChange, RouteTable};

/// How much the ICE-TCP listener takes on (`SfuConfig::tcp_limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections over all peers (each holds a task and its buffers);
    /// more are refused until some close.
    pub max_connections: usize,
    /// A connection must send its verified binding request within this long.
    pub verify_within: Duration,
    /// Packets queued for one connection's writer; more are dropped, as a full
    /// UDP send buffer would (a client whose TCP path stalls loses media, not memory).
    pub write_queue: usize,
}

impl TcpLimits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    pub const DEFAULT_VERIFY_WITHIN: Duration = Duration::from_secs(10);
    pub const DEFAULT_WRITE_QUEUE: usize = 512;
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            verify_within: Self::DEFAULT_VERIFY_WITHIN,
            write_queue: Self::DEFAULT_WRITE_QUEUE,
        }
    }
}

/// What the workers and the connections share.
pub struct TcpMedia {
    /// The address in the TCP candidate: the announced IP and the bound port.
    pub announce: SocketAddr,
    limits: TcpLimits,
    table: Mutex<RouteTable>,
    changes: Receiver<RouteChange>,
    /// Peers' route changes from the workers, applied under `table`'s lock.
    pub routes: Sender<RouteChange>,
    /// The writer of each verified connection, by remote address.
    writers: Mutex<HashMap<SocketAddr, (u64, mpsc::Sender<Bytes>)>>,
}

impl TcpMedia {
    pub fn new(announce: SocketAddr, limits: TcpLimits, table: RouteTable) -> Arc<Self> {
        let (routes, changes) = crossbeam_channel::unbounded();
        Arc::new(Self {
            announce,
            limits,
            table: Mutex::new(table),
            changes,
            routes,
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// Sends one packet a peer's connection wrote to `to` on that remote's TCP
    /// connection, if it is still open (called by workers; never blocks).
    pub fn send(&self, to: SocketAddr, packet: &[u8]) -> bool {
        let writer = self.writers.lock().ok().and_then(|writers| writers.get(&to).map(|(_, tx)| tx.clone()));
        writer.is_some_and(|tx| tx.try_send(Bytes::from(frame_packet(packet))).is_ok())
    }

    /// The peer a frame from `from` is for: known, or learnt from a verified request.
    fn route(&self, from: SocketAddr, frame: &[u8]) -> Option<u64> {
        let mut table = self.table.lock().ok()?;
        while let Ok(change) = self.changes.try_recv() {
            table.apply(change);
        }
        table.learn(from, frame)
    }

    /// Whether `peer` still routes from `from` (it has not closed).
    fn still_routed(&self, from: SocketAddr, peer: u64) -> bool {
        let Ok(mut table) = self.table.lock() else { return false };
        while let Ok(change) = self.changes.try_recv() {
            table.apply(change);
        }
        table.known(from) == Some(peer)
    }
}

/// Accepts connections until `cancel`, one task each.
pub async fn accept(
    listener: TcpListener,
    media: Arc<TcpMedia>,
    workers: Vec<Sender<WorkerInput>>,
    cancel: CancellationToken,
) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let (stream, from) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "SFU TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= media.limits.max_connections {
            tracing::debug!(%from, "too many SFU TCP connections; refusing one");
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (media, workers, cancel, open) = (Arc::clone(&media), workers.clone(), cancel.clone(), Arc::clone(&open));
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = connection(stream, from, &media, &workers) => {}
            }
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

/// One client's connection: reads frames until it closes or must be closed.
async fn connection(stream: TcpStream, from: SocketAddr, media: &TcpMedia, workers: &[Sender<WorkerInput>]) {
    let (mut reader, mut writer) = stream.into_split();
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + media.limits.verify_within;
    // The first frame must verify; until then nothing else is read.
    let peer = loop {
        let read = tokio::time::timeout_at(deadline, reader.read(&mut buf)).await;
        let Ok(Ok(len @ 1..)) = read else { return };
        decoder.extend_from_slice(&buf[..len]);
        if let Some(frame) = decoder.next_packet() {
            let Some(peer) = media.route(from, &frame) else {
                tracing::debug!(%from, "an SFU TCP connection's first frame did not verify");
                return;
            };
            if !forward(workers, media.announce, from, peer, &frame) {
                return;
            }
            break peer;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(media.limits.write_queue.max(1));
    if let Ok(mut writers) = media.writers.lock() {
        writers.insert(from, (peer, tx));
    }
    let write = async {
        while let Some(framed) = rx.recv().await {
            if writer.write_all(&framed).await.is_err() {
                return;
            }
        }
    };
    let read = async {
        loop {
            while let Some(frame) = decoder.next_packet() {
                if !media.still_routed(from, peer) || !forward(workers, media.announce, from, peer, &frame) {
                    return;
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(len) => decoder.extend_from_slice(&buf[..len]),
            }
        }
    };
    tokio::select! {
        _ = write => {}
        _ = read => {}
    }
    if let Ok(mut writers) = media.writers.lock()
        && writers.get(&from).is_some_and(|(owner, _)| *owner == peer)
    {
        writers.remove(&from);
    }
}

fn forward(workers: &[Sender<WorkerInput>], local: SocketAddr, from: SocketAddr, peer: u64, frame: &[u8]) -> bool {
    let worker = &workers[(peer % workers.len() as u64) as usize];
    let datagram = TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: local,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::TCP,
        },
        message: BytesMut::from(frame),
    };
    worker.send(WorkerInput::Datagram { peer, datagram }).is_ok()
}
