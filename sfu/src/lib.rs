//! The SFU: webrtc-rs (sans-IO `rtc`) peer connections on one UDP socket,
//! forwarding every participant's tracks to everyone else in the room, admitted
//! and stopped by room events.
//!
//! Data flow: `udp.rs` receives datagrams and routes them by address, learnt
//! from verified STUN (`routes.rs`), to the `worker.rs` thread owning the peer
//! (`tcp.rs` does the same per ICE-TCP connection); a worker drives its peers
//! (`peer.rs`), fans decrypted RTP out to every worker's subscribers, rewriting
//! each packet per leg (`leg.rs`); a worker's decisions are its sans-IO core's
//! (`worker_core.rs`); `room_core.rs` (sans-IO) keeps the room picture
//! and decides who is admitted and who subscribes to what, run by `conductor.rs`,
//! its async shell; `inputs.rs` holds the messages between them; active
//! speakers come from the publishers' audio levels (`speakers.rs`, counted by
//! the workers, ranked by the room core in `room_speakers.rs`); `nats.rs`
//! connects it all to the gateways (signaling subjects) and to the room events,
//! which `room_events.rs` folds into the rosters admission reads (`roster.rs`,
//! `admission.rs`). While a room records, the workers also hand its tracks'
//! packets to the recording thread (`recorder.rs`, told what to record by the
//! room core's `room_recording.rs`), which writes one file per publication.

mod admission;
mod candidate;
mod conductor;
mod downlink;
mod inputs;
mod keyframe;
mod layer_demand;
mod layer_fit;
mod leg;
mod metrics;
pub mod nats;
mod peer;
mod placement;
mod queues;
mod read_filter;
mod recorder;
mod resends;
mod room_core;
pub mod room_events;
mod roster;
mod routes;
mod send_batch;
mod signal;
mod simulcast;
mod simulcast_sdp;
mod source;
mod speakers;
mod tcp;
mod track_files;
mod udp;
mod ufrag;
mod unrecorded;
mod vp8_ids;
mod worker;
mod worker_core;

#[cfg(feature = "loopback-client")]
pub mod loopback_client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use rapat_wire::signal::SfuRequest;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

pub use conductor::Admission;
pub use inputs::{Admitted, Refused};
pub use leg::{CodecKey, LegParameters, SourceParameters, Translation};
pub use metrics::SfuCounters;
pub use recorder::FinishedTrack;
pub use signal::{Outgoing, PeerKey, RoomChange};
pub use tcp::TcpLimits;

use conductor::{Conductor, PeerLimits};
use inputs::{CoreInput, WorkerInput};
use metrics::WorkerMetrics;
use recorder::{PacketQueue, RecordOrder, Recorder};
use routes::RouteTable;
use udp::RouteMetrics;
use unrecorded::Unrecorded;
use worker::{MediaSocket, Worker};

#[derive(Clone, Debug)]
pub struct SfuConfig {
    /// The one UDP socket for every peer (ICE-lite, demultiplexed by ICE username).
    pub udp_bind: SocketAddr,
    /// Instead of one port: bind every port of this range on `udp_bind`'s address
    /// and spread peers over them (for networks that limit per-port rates).
    pub port_range: Option<(u16, u16)>,
    /// The address put in the SFU's ICE candidate. `None`: the bound address, or
    /// when that is unspecified (0.0.0.0), this host's primary address.
    pub announce_ip: Option<IpAddr>,
    /// Media worker threads; 0 means one per core.
    pub workers: usize,
    /// Live peer connections one user may hold in one room (default 3, as many
    /// as the gateway lets them have sockets there). A newer peer replaces the
    /// user's oldest beyond this; a room also takes peers from at most its
    /// `maxUsers` distinct users.
    pub max_peers_per_user: usize,
    /// Remote addresses one peer may route from: the first of its client's
    /// candidates to pass a STUN check verified with the peer's ICE password.
    pub max_addresses_per_peer: usize,
    /// A TCP listener for ICE-TCP (RFC 6544, passive candidate) beside the UDP
    /// socket(s), for networks that block UDP; its candidate has the announced IP.
    pub tcp_bind: Option<SocketAddr>,
    /// Where recorded tracks are written (`RAPAT_RECORDINGS_DIR`; SPEC §10).
    pub recordings_dir: PathBuf,
    /// The ICE-TCP listener's connection limit, verification deadline and
    /// per-connection write queue.
    pub tcp_limits: TcpLimits,
    /// Whether peers estimate their client's downlink from TWCC feedback and
    /// fit simulcast layers to it (default on). Off only for the forwarding
    /// bench's same-run comparison of what the estimate costs.
    pub downlink_estimate: bool,
    /// Media (SRTP/SRTCP, packets shared between workers) that waited longer
    /// than this in a worker's queue is dropped unhandled (`queues.rs`);
    /// `None` (the default): kept until handled or shed by count.
    pub media_max_age: Option<std::time::Duration>,
}

impl SfuConfig {
    pub const DEFAULT_MAX_PEERS_PER_USER: usize = 3;
    pub const DEFAULT_MAX_ADDRESSES_PER_PEER: usize = 8;
    pub const DEFAULT_RECORDINGS_DIR: &str = "./recordings";
    /// Off. A bound seemed right (media that waited a second in the SFU alone
    /// is past use in a call, and its feedback is stale), but in the forward
    /// bench at 1 -> 400 on a busy machine it did not help peers connect (the
    /// failed handshakes were, and are now closed and retried:
    /// `peer_handshake.rs`) and it cost loss: at 300 ms, 15-29 % in three quiet
    /// runs where none was lost without it; at 1 s, worse loss than without it
    /// in 3 of 4 busy pairs (44-89 % against 0.03-62 %), the dropped media
    /// coming back as NACKs and retransmissions that kept the worker behind.
    /// Kept as a setting (and `BENCH_MEDIA_MAX_AGE_MS` in the bench) until that
    /// feedback is understood.
    pub const DEFAULT_MEDIA_MAX_AGE: Option<std::time::Duration> = None;

    pub fn new(udp_bind: SocketAddr) -> Self {
        Self {
            udp_bind,
            port_range: None,
            announce_ip: None,
            workers: 0,
            max_peers_per_user: Self::DEFAULT_MAX_PEERS_PER_USER,
            max_addresses_per_peer: Self::DEFAULT_MAX_ADDRESSES_PER_PEER,
            tcp_bind: None,
            recordings_dir: PathBuf::from(Self::DEFAULT_RECORDINGS_DIR),
            tcp_limits: TcpLimits::default(),
            downlink_estimate: true,
            media_max_age: Self::DEFAULT_MEDIA_MAX_AGE,
        }
    }
}

/// A running SFU. Dropping it stops its threads.
pub struct Sfu {
    handle: SfuHandle,
    local_addr: SocketAddr,
    announce: SocketAddr,
    tcp_announce: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    /// Stops the ICE-TCP listener and its connections.
    tcp_stop: CancellationToken,
    workers: Vec<Sender<WorkerInput>>,
    threads: Vec<JoinHandle<()>>,
    /// Told to finish every file when the SFU stops; its thread is joined last.
    recorder: Sender<RecordOrder>,
    recorder_thread: Option<JoinHandle<()>>,
}

/// What the signaling side holds: cheap to clone.
#[derive(Clone)]
pub struct SfuHandle {
    conductor: UnboundedSender<CoreInput>,
    metrics: Arc<Vec<Arc<WorkerMetrics>>>,
    active: placement::ActiveRooms,
    peers: Arc<AtomicUsize>,
    routes: Arc<Vec<Arc<RouteMetrics>>>,
    /// Whether `nats::serve` has its signaling subscription on the server.
    signaling: Arc<AtomicBool>,
    /// Messages to clients, for requests refused before they reach the conductor.
    replies: UnboundedSender<Outgoing>,
    recording_queue: PacketQueue,
    /// Files the recording thread finished, until `nats::serve` takes them to record on their rooms.
    finished_recordings: Arc<Mutex<Option<UnboundedReceiver<FinishedTrack>>>>,
    /// The finished files not yet recorded on their rooms, on disk.
    unrecorded: Unrecorded,
}

impl SfuHandle {
    /// A client's offer, answer, ICE candidate or disconnect.
    pub fn signal(&self, request: SfuRequest) {
        let _ = self.conductor.send(CoreInput::Signal(request));
    }

    /// Tells the client of a request this node will not handle why (an `error`).
    pub fn refuse(&self, request: &SfuRequest, code: &str, message: &str) {
        let _ = self.replies.send(Outgoing::error(PeerKey::of(request), code, message));
    }

    /// A room event that matters for media, stored at stream sequence `sequence`.
    pub fn room_changed(&self, change: RoomChange, sequence: u64) {
        let _ = self.conductor.send(CoreInput::Room { change, sequence });
    }

    /// Whether gateways' signaling reaches this SFU: `nats::serve` is subscribed
    /// (and the server has confirmed it) and has not stopped.
    pub fn signaling(&self) -> bool {
        self.signaling.load(Ordering::Relaxed)
    }

    pub(crate) fn set_signaling(&self, on: bool) {
        self.signaling.store(on, Ordering::Relaxed);
    }

    /// Recorded packets dropped because the recording thread was behind.
    pub fn recording_packets_dropped(&self) -> u64 {
        self.recording_queue.dropped()
    }

    /// The files the recording thread finishes, for whoever records them on
    /// their rooms, with those an earlier process left unrecorded; `None` once taken.
    pub(crate) fn take_finished_recordings(&self) -> Option<(UnboundedReceiver<FinishedTrack>, Unrecorded)> {
        let finished = self.finished_recordings.lock().ok()?.take()?;
        Some((finished, self.unrecorded.clone()))
    }

    pub fn counters(&self) -> SfuCounters {
        SfuCounters::sum(self.metrics.iter().map(Arc::as_ref))
    }

    /// Peer connections on this node, closing ones included.
    pub fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    /// Remote addresses the receive loops route, over every socket.
    pub fn routes(&self) -> usize {
        self.routes.iter().map(|metrics| metrics.routes.load(Ordering::Relaxed)).sum()
    }

    /// Datagrams dropped because they came from an unknown address and did not verify.
    pub fn unrouted_datagrams(&self) -> u64 {
        self.routes.iter().map(|metrics| metrics.unrouted.load(Ordering::Relaxed)).sum()
    }

    /// Copies the workers' counters into the process's metrics recorder (served
    /// at `/metrics` when a gateway runs in the same process). Workers keep
    /// plain atomics: a recorder lookup per packet would cost more.
    pub fn report_metrics(&self) {
        let counters = self.counters();
        ::metrics::counter!("rapat_sfu_datagrams_in_total").absolute(counters.datagrams_in);
        ::metrics::counter!("rapat_sfu_datagrams_out_total").absolute(counters.datagrams_out);
        ::metrics::counter!("rapat_sfu_rtp_forwarded_total").absolute(counters.rtp_forwarded);
        ::metrics::counter!("rapat_sfu_media_shed_total").absolute(counters.media_shed);
        ::metrics::counter!("rapat_sfu_media_expired_total").absolute(counters.media_expired);
        let rooms = self.active.lock().map_or(0, |rooms| rooms.len());
        ::metrics::gauge!("rapat_sfu_rooms").set(rooms as f64);
        ::metrics::gauge!("rapat_sfu_peers").set(self.peers() as f64);
        ::metrics::gauge!("rapat_sfu_routes").set(self.routes() as f64);
        ::metrics::counter!("rapat_sfu_datagrams_unrouted_total").absolute(self.unrouted_datagrams());
        ::metrics::counter!("rapat_sfu_recording_packets_dropped_total").absolute(self.recording_packets_dropped());
    }
}

impl Sfu {
    /// Binds the socket and starts the threads; call inside a Tokio runtime (the
    /// conductor is a task). Returns the messages the SFU sends to clients.
    pub fn start(
        config: SfuConfig,
        admission: Arc<dyn Admission>,
    ) -> std::io::Result<(Self, UnboundedReceiver<Outgoing>)> {
        let binds: Vec<SocketAddr> = match config.port_range {
            Some((first, last)) if first <= last => {
                (first..=last).map(|port| SocketAddr::new(config.udp_bind.ip(), port)).collect()
            }
            Some(_) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the SFU port range is empty"));
            }
            None => vec![config.udp_bind],
        };
        let count = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            config.workers
        };
        let (signals_tx, signals_rx) = unbounded_channel();
        let (conductor_tx, conductor_rx) = unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let metrics: Vec<Arc<WorkerMetrics>> = (0..count).map(|_| Arc::default()).collect();
        let channels: Vec<_> = metrics
            .iter()
            .map(|metrics| queues::worker_queues(queues::MEDIA_QUEUE, config.media_max_age, Arc::clone(metrics)))
            .collect();
        let queues: Vec<queues::WorkerSender> = channels.iter().map(|(tx, _)| tx.clone()).collect();
        let senders: Vec<Sender<WorkerInput>> = queues.iter().map(|tx| tx.control.clone()).collect();
        let crypto = rtc::crypto::default_provider()
            .map_err(|error| std::io::Error::other(format!("no crypto provider for STUN checks: {error}")))?;
        let mut sockets = Vec::new();
        let mut receivers = Vec::new();
        let mut route_metrics = Vec::new();
        for bind in binds {
            let socket = Arc::new(UdpSocket::bind(bind)?);
            let local_addr = socket.local_addr()?;
            let announce = SocketAddr::new(announce_ip(&config, local_addr), local_addr.port());
            let (routes, changes) = crossbeam_channel::unbounded();
            let metrics = Arc::new(RouteMetrics::default());
            receivers.push(udp::ReceiveLoop {
                socket: Arc::clone(&socket),
                local_addr: announce,
                workers: queues.clone(),
                changes,
                table: RouteTable::new(config.max_addresses_per_peer, Arc::clone(&crypto)),
                metrics: Arc::clone(&metrics),
                stop: Arc::clone(&stop),
            });
            route_metrics.push(metrics);
            sockets.push(MediaSocket { socket, announce, routes });
        }
        let local_addr = sockets[0].socket.local_addr()?;
        let announce = sockets[0].announce;
        let tcp_stop = CancellationToken::new();
        let tcp = match config.tcp_bind {
            Some(bind) => {
                let listener = std::net::TcpListener::bind(bind)?;
                listener.set_nonblocking(true)?;
                let bound = listener.local_addr()?;
                let announce = SocketAddr::new(announce_ip(&config, bound), bound.port());
                let table = RouteTable::new(config.max_addresses_per_peer, Arc::clone(&crypto));
                let media = tcp::TcpMedia::new(announce, config.tcp_limits.clone(), table);
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(tcp::accept(listener, Arc::clone(&media), senders.clone(), tcp_stop.clone()));
                tracing::info!(%bound, %announce, "SFU listening for ICE-TCP");
                Some(media)
            }
            None => None,
        };
        let tcp_announce = tcp.as_ref().map(|tcp| tcp.announce);
        let sockets = Arc::new(sockets);
        let store = Arc::new(rapat_recording::LocalDirStore::new(config.recordings_dir.clone()));
        let (finished_tx, finished_rx) = unbounded_channel();
        let unrecorded = Unrecorded::in_recordings_dir(&config.recordings_dir);
        let (recorder, recorder_orders, recording_queue) =
            Recorder::new(store, conductor_tx.clone(), finished_tx, unrecorded.clone());
        let recorder_thread = std::thread::Builder::new().name("rapat-sfu-rec".into()).spawn(move || recorder.run())?;
        let mut threads = Vec::new();
        for (index, (_, inbox)) in channels.into_iter().enumerate() {
            let worker = Worker::new(
                index,
                inbox,
                queues.clone(),
                Arc::clone(&sockets),
                conductor_tx.clone(),
                signals_tx.clone(),
                Arc::clone(&metrics[index]),
            )
            .with_tcp(tcp.clone())
            .with_downlink_estimate(config.downlink_estimate)
            .with_recorder(recording_queue.clone());
            threads.push(std::thread::Builder::new().name(format!("rapat-sfu-{index}")).spawn(move || worker.run())?);
        }
        for (index, receive) in receivers.into_iter().enumerate() {
            threads
                .push(std::thread::Builder::new().name(format!("rapat-sfu-udp{index}")).spawn(move || receive.run())?);
        }
        let active = placement::ActiveRooms::default();
        let peers = Arc::new(AtomicUsize::new(0));
        let limits = PeerLimits {
            max_peers_per_user: config.max_peers_per_user,
            active: Arc::clone(&active),
            peer_count: Arc::clone(&peers),
        };
        let conductor =
            Conductor::new(conductor_rx, conductor_tx.clone(), senders.clone(), signals_tx.clone(), admission, limits)
                .with_recorder(recorder_orders.clone());
        tokio::spawn(conductor.run());
        tracing::info!(%local_addr, %announce, sockets = sockets.len(), workers = count, "SFU listening");
        let handle = SfuHandle {
            conductor: conductor_tx,
            metrics: Arc::new(metrics),
            active,
            peers,
            routes: Arc::new(route_metrics),
            signaling: Arc::default(),
            replies: signals_tx,
            recording_queue,
            finished_recordings: Arc::new(Mutex::new(Some(finished_rx))),
            unrecorded,
        };
        let sfu = Self {
            handle,
            local_addr,
            announce,
            tcp_announce,
            stop,
            tcp_stop,
            workers: senders,
            threads,
            recorder: recorder_orders,
            recorder_thread: Some(recorder_thread),
        };
        Ok((sfu, signals_rx))
    }

    pub fn handle(&self) -> SfuHandle {
        self.handle.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address clients are told to send media to.
    pub fn announced_addr(&self) -> SocketAddr {
        self.announce
    }

    /// The address of the ICE-TCP candidate, when the SFU listens on TCP.
    pub fn tcp_announced_addr(&self) -> Option<SocketAddr> {
        self.tcp_announce
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tcp_stop.cancel();
        for worker in &self.workers {
            let _ = worker.send(WorkerInput::Stop);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // After the workers: no packet comes any more; every open file is completed.
        let _ = self.recorder.send(RecordOrder::Shutdown);
        if let Some(thread) = self.recorder_thread.take() {
            let _ = thread.join();
        }
    }
}

fn announce_ip(config: &SfuConfig, local_addr: SocketAddr) -> IpAddr {
    if let Some(ip) = config.announce_ip {
        return ip;
    }
    if !local_addr.ip().is_unspecified() {
        return local_addr.ip();
    }
    // Routing a datagram socket picks the primary interface without sending anything.
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|socket| {
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        socket.local_addr()
    });
    probe.map(|addr| addr.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
