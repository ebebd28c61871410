//! A webrtc-rs client on its own UDP socket, for tests and the forwarding
//! benchmark: a real peer connection (ICE, DTLS, SRTP) that publishes VP8 and
//! Opus RTP at a set rate and records what it receives per track.
//!
//! Signaling is left to the caller: the client sends `(type, payload)` pairs out
//! and takes the SFU's in, so a test can carry them over NATS, a WebSocket or
//! anything else. Each packet it publishes carries its send time in its first 8
//! payload bytes, so a receiver in the same process can measure forwarding delay.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
pub use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

#[path = "loopback_clip.rs"]
mod clip;
#[path = "loopback_simulcast.rs"]
mod simulcast;

pub use clip::MediaClip;
#[path = "loopback_connection.rs"]
mod connection;
#[path = "loopback_shaper.rs"]
mod shaper;

/// A signaling message: `(type, payload)`.
pub type Signal = (String, Value);

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Publish camera and microphone tracks; otherwise receive only.
    pub publish: bool,
    pub video_packets_per_second: u32,
    pub video_payload_bytes: usize,
    pub audio_packets_per_second: u32,
    pub audio_payload_bytes: usize,
    /// Keep every packet's forwarding delay (for the benchmark).
    pub record_delays: bool,
    /// Simulated loss: drop every Nth incoming RTP datagram before decryption.
    pub drop_every: Option<u64>,
    /// Offer VP8 (and Opus) under these payload types instead of webrtc-rs's
    /// defaults, as another browser might (Firefox uses 120 for VP8).
    pub payload_types: Option<(u8, u8)>,
    /// Publish the camera as three simulcast layers (rid q, h, f), as a browser
    /// does: VP8-shaped payloads, a keyframe on a layer when asked for one.
    pub simulcast: bool,
    /// Send this encoded media instead of made-up payloads (single-stream tracks).
    pub clip: Option<std::sync::Arc<MediaClip>>,
    /// A downlink limit in bits per second, changeable while running (0: none).
    pub downlink_bps: Option<Arc<AtomicU64>>,
    /// The first peer connection's DTLS datagrams after its two hellos are lost
    /// on the way out, as a starved client's were in a connect storm: ICE
    /// connects, the handshake never finishes, and the SFU fails the peer.
    pub lose_first_handshake: bool,
}

impl ClientOptions {
    /// ~1.5 Mbit/s of VP8 (150 packets/s of 1,200 bytes) and Opus at 50 packets/s.
    pub fn publisher() -> Self {
        Self {
            publish: true,
            video_packets_per_second: 150,
            video_payload_bytes: 1200,
            audio_packets_per_second: 50,
            audio_payload_bytes: 160,
            record_delays: false,
            drop_every: None,
            payload_types: None,
            simulcast: false,
            clip: None,
            downlink_bps: None,
            lose_first_handshake: false,
        }
    }

    pub fn subscriber() -> Self {
        Self { publish: false, ..Self::publisher() }
    }
}

/// What one received track has seen.
#[derive(Clone, Debug, Default)]
pub struct TrackStats {
    /// The MediaStream id the SFU gave the track: the publisher's user id.
    pub stream_id: String,
    pub kind: Option<RtpCodecKind>,
    pub packets: u64,
    pub out_of_order: u64,
    pub last_sequence: Option<u16>,
    /// Highest extended sequence number minus the first, plus one.
    pub expected: u64,
    /// `expected` over the runs of sequence numbers before the last restart.
    expected_before: u64,
    first_extended: Option<u64>,
    highest_extended: u64,
    pub delays_us: Vec<u32>,
    /// Every payload type seen on the track.
    pub payload_types: std::collections::BTreeSet<u8>,
    /// The simulcast layers received, in order, each once per run of packets.
    pub layers: Vec<u8>,
    /// With `record_delays`: when each simulcast packet came, and its layer.
    pub layer_arrivals: Vec<(Instant, u8)>,
}

impl TrackStats {
    fn record(&mut self, sequence: u16, delay: Option<Duration>, keep_delay: bool) {
        self.packets += 1;
        let extended = match self.last_sequence {
            None => u64::from(sequence) + (1 << 16),
            Some(last) => {
                let forward = sequence.wrapping_sub(last);
                if forward == 0 || forward >= 0x8000 {
                    self.out_of_order += 1;
                }
                let delta = i64::from(forward as i16);
                (self.highest_extended as i64 + delta).max(0) as u64
            }
        };
        if self.last_sequence.is_none_or(|last| sequence.wrapping_sub(last) < 0x8000) {
            self.last_sequence = Some(sequence);
        }
        self.highest_extended = self.highest_extended.max(extended);
        let first = *self.first_extended.get_or_insert(extended);
        self.expected = self.expected_before + self.highest_extended - first + 1;
        if keep_delay && let Some(delay) = delay {
            self.delays_us.push(delay.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }

    /// A new peer connection sends this track on a new SSRC with new sequence
    /// numbers: they start a new run, counted on from what was expected so far.
    fn restart(&mut self) {
        self.expected_before = self.expected;
        (self.first_extended, self.last_sequence, self.highest_extended) = (None, None, 0);
    }

    /// Packets missing at the end of the run, as a fraction of those expected.
    pub fn loss(&self) -> f64 {
        if self.expected == 0 {
            return 0.0;
        }
        self.expected.saturating_sub(self.packets) as f64 / self.expected as f64
    }
}

/// Shared between the client task and the test.
#[derive(Default)]
pub struct ClientStats {
    pub connected: AtomicBool,
    pub closed: AtomicBool,
    /// Times the client started over with a new peer connection because the
    /// SFU said its last one failed (`peer_failed`).
    pub restarts: AtomicU64,
    /// Times ICE went disconnected (consent checks unanswered for a while, as
    /// on a link whose queue drops them); the client carries on, as a browser does.
    pub disconnects: AtomicU64,
    pub sent_packets: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub offers_received: AtomicU64,
    pub answers_received: AtomicU64,
    pub sender_reports: AtomicU64,
    pub dropped_on_purpose: AtomicU64,
    pub errors: Mutex<Vec<Value>>,
    /// ICE and peer connection states in order, with the time since the client started.
    pub states: Mutex<Vec<(Duration, String)>>,
    /// Every `active_speakers` message's payload and arrival, in order.
    pub speakers: Mutex<Vec<(Instant, Value)>>,
    /// Where the SFU's datagrams come from.
    remote: Mutex<Option<SocketAddr>>,
    /// The SFU's ICE ufrag and password, from its first answer.
    remote_ice: Mutex<Option<(String, String)>>,
    tracks: Mutex<HashMap<String, TrackStats>>,
}

impl ClientStats {
    pub fn tracks(&self) -> Vec<TrackStats> {
        self.tracks.lock().map(|tracks| tracks.values().cloned().collect()).unwrap_or_default()
    }

    pub fn remote_port(&self) -> Option<u16> {
        self.remote.lock().ok().and_then(|remote| remote.map(|addr| addr.port()))
    }

    /// The ICE ufrag and password the SFU gave this client's peer (`a=ice-ufrag`, `a=ice-pwd` of its answer).
    pub fn remote_ice_credentials(&self) -> Option<(String, String)> {
        self.remote_ice.lock().ok().and_then(|credentials| credentials.clone())
    }

    /// Packets received from `stream_id` of `kind`.
    pub fn packets_from(&self, stream_id: &str, kind: RtpCodecKind) -> u64 {
        self.tracks().iter().filter(|t| t.stream_id == stream_id && t.kind == Some(kind)).map(|t| t.packets).sum()
    }
}

enum Command {
    RequestKeyframes,
    Publish(bool),
    /// Adds a second video track (as a screen share does) and offers.
    AddScreen,
    /// Removes it again and offers.
    RemoveScreen,
    AudioLevel(Option<u8>),
    /// Sends a signaling message (as `video_constraints`).
    Signal(Signal),
}

pub struct LoopbackClient {
    stats: Arc<ClientStats>,
    commands: UnboundedSender<Command>,
    task: JoinHandle<()>,
    pub local_addr: SocketAddr,
}

impl Drop for LoopbackClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Process-wide time base for the send times carried in payloads.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl LoopbackClient {
    /// Binds a socket on 127.0.0.1, creates the peer connection and sends its first offer.
    pub async fn start(
        options: ClientOptions,
        outgoing: UnboundedSender<Signal>,
        incoming: UnboundedReceiver<Signal>,
    ) -> Result<Self, ClientError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let now = Instant::now();
        let (pc, senders, sdp) = connection::open(&options, local_addr, now)?;
        let _ = outgoing.send(("offer".into(), json!({ "type": "offer", "sdp": sdp })));

        let stats = Arc::new(ClientStats::default());
        let (commands_tx, commands_rx) = unbounded_channel();
        let driver = Driver {
            pc,
            socket,
            local_addr,
            options,
            senders,
            publishing: true,
            audio_level: None,
            receivers: HashMap::new(),
            stats: Arc::clone(&stats),
            outgoing,
            started: now,
            rtp_seen: 0,
            shaper: shaper::Shaper::default(),
            restart: false,
            dtls_sent: 0,
        };
        let task = tokio::spawn(driver.run(incoming, commands_rx));
        Ok(Self { stats, commands: commands_tx, task, local_addr })
    }

    pub fn stats(&self) -> Arc<ClientStats> {
        Arc::clone(&self.stats)
    }

    /// Sends a PLI for every video track received.
    pub fn request_keyframes(&self) {
        let _ = self.commands.send(Command::RequestKeyframes);
    }

    pub fn set_publishing(&self, on: bool) {
        let _ = self.commands.send(Command::Publish(on));
    }

    pub fn add_screen(&self) {
        let _ = self.commands.send(Command::AddScreen);
    }

    pub fn remove_screen(&self) {
        let _ = self.commands.send(Command::RemoveScreen);
    }

    /// Audio packets carry this RFC 6464 level (-dBov, flagged as voice) from
    /// now on; `None` (the start) sends none.
    pub fn set_audio_level(&self, dbov: Option<u8>) {
        let _ = self.commands.send(Command::AudioLevel(dbov));
    }

    /// Tells the SFU this client shows `publisher`'s video at most `max_height` high.
    pub fn send_video_constraints(&self, publisher: &str, max_height: u16) {
        let payload = json!({ "publisherId": publisher, "maxHeight": max_height });
        let _ = self.commands.send(Command::Signal(("video_constraints".into(), payload)));
    }
}

/// webrtc-rs's default codecs, or only VP8 and Opus under the given payload types.
fn media_engine(payload_types: Option<(u8, u8)>) -> Result<MediaEngine, ClientError> {
    let mut engine = MediaEngine::default();
    crate::speakers::register(&mut engine)?;
    let Some((vp8, opus)) = payload_types else {
        engine.register_default_codecs()?;
        return Ok(engine);
    };
    let feedback = |typ: &str, parameter: &str| RTCPFeedback { typ: typ.into(), parameter: parameter.into() };
    let video = RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.into(),
        clock_rate: 90_000,
        rtcp_feedback: vec![
            feedback("goog-remb", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ],
        ..Default::default()
    };
    let audio = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        ..Default::default()
    };
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: video, payload_type: vp8 }, RtpCodecKind::Video)?;
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: audio, payload_type: opus }, RtpCodecKind::Audio)?;
    Ok(engine)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
}

struct Outbound {
    sender: RTCRtpSenderId,
    kind: RtpCodecKind,
    ssrc: u32,
    sequence: u16,
    payload_type: Option<u8>,
    sent: u64,
    /// Simulcast layers, each sent every time a packet is due; empty: one stream.
    layers: Vec<simulcast::Layer>,
    /// Where in the clip this track is, when it sends one.
    clip: clip::Position,
}

struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    options: ClientOptions,
    senders: Vec<Outbound>,
    publishing: bool,
    audio_level: Option<u8>,
    receivers: HashMap<String, (RTCRtpReceiverId, u32)>,
    stats: Arc<ClientStats>,
    outgoing: UnboundedSender<Signal>,
    started: Instant,
    rtp_seen: u64,
    shaper: shaper::Shaper,
    /// The SFU said the peer connection failed: start over (`loopback_connection.rs`).
    restart: bool,
    /// DTLS datagrams the first connection sent (`lose_first_handshake`).
    dtls_sent: u64,
}

const TICK: Duration = Duration::from_millis(5);

impl Driver {
    async fn run(mut self, mut incoming: UnboundedReceiver<Signal>, mut commands: UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2000];
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.drain().await;
            // A closed connection waits here: the SFU may yet say it failed, and then the client starts over.
            if std::mem::take(&mut self.restart)
                && let Err(error) = self.restart().await
            {
                tracing::warn!(%error, "loopback client: cannot start over");
            }
            let deadline = self.pc.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let sleep = tokio::time::sleep_until(deadline.into());
            let release = self.shaper.next_release();
            let shaped = tokio::time::sleep_until(release.unwrap_or(deadline).into());
            tokio::select! {
                _ = sleep => { let _ = self.pc.handle_timeout(Instant::now()); }
                _ = shaped, if release.is_some() => {
                    while let Some((from, datagram)) = self.shaper.release(Instant::now()) {
                        self.deliver(from, datagram);
                    }
                }
                _ = ticker.tick() => self.publish(Instant::now()),
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        if let Ok(mut remote) = self.stats.remote.lock() {
                            remote.get_or_insert(from);
                        }
                        let limit = self.options.downlink_bps.as_ref().map_or(0, |bps| bps.load(Ordering::Relaxed));
                        if limit > 0 {
                            self.shaper.admit(Instant::now(), limit, from, BytesMut::from(&buf[..len]));
                        } else {
                            self.deliver(from, BytesMut::from(&buf[..len]));
                        }
                    }
                }
                signal = incoming.recv() => match signal {
                    Some((kind, payload)) => self.signal(&kind, payload),
                    None => return,
                },
                command = commands.recv() => match command {
                    Some(Command::RequestKeyframes) => self.request_keyframes(),
                    Some(Command::Publish(on)) => self.publishing = on,
                    Some(Command::AddScreen) => self.add_screen(),
                    Some(Command::RemoveScreen) => self.remove_screen(),
                    Some(Command::AudioLevel(dbov)) => self.audio_level = dbov,
                    Some(Command::Signal(signal)) => { let _ = self.outgoing.send(signal); }
                    None => return,
                },
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, datagram: BytesMut) {
        if self.drop_on_purpose(&datagram) {
            return;
        }
        let _ = self.pc.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: datagram,
        });
    }

    /// Whether to lose this datagram: every Nth SRTP media packet, once connected.
    fn drop_on_purpose(&mut self, datagram: &[u8]) -> bool {
        let Some(every) = self.options.drop_every else { return false };
        // RFC 7983 / 5761: RTP and RTCP start 128..=191; RTCP's second byte is 192..=223.
        let is_rtp = datagram.len() > 12 && (128..=191).contains(&datagram[0]) && !(192..=223).contains(&datagram[1]);
        if !is_rtp || !self.stats.connected.load(Ordering::Relaxed) {
            return false;
        }
        self.rtp_seen += 1;
        if self.rtp_seen.is_multiple_of(every) {
            self.stats.dropped_on_purpose.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// `lose_first_handshake`: the first connection's DTLS after its hellos.
    fn lose_on_purpose(&mut self, datagram: &[u8]) -> bool {
        if !self.options.lose_first_handshake || self.stats.restarts.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let is_dtls = matches!(datagram.first(), Some(20..=63));
        self.dtls_sent += u64::from(is_dtls);
        is_dtls && self.dtls_sent > 2
    }

    fn signal(&mut self, kind: &str, payload: Value) {
        let now = Instant::now();
        let sdp = payload.get("sdp").and_then(Value::as_str).map(str::to_string);
        match (kind, sdp) {
            ("answer", Some(sdp)) => {
                self.stats.answers_received.fetch_add(1, Ordering::Relaxed);
                let attribute =
                    |name: &str| sdp.lines().find_map(|line| line.trim().strip_prefix(name)).map(str::to_string);
                let credentials = attribute("a=ice-ufrag:").zip(attribute("a=ice-pwd:"));
                if let (Ok(mut remote), Some(credentials)) = (self.stats.remote_ice.lock(), credentials) {
                    remote.get_or_insert(credentials);
                }
                if let Ok(answer) = RTCSessionDescription::answer(sdp)
                    && let Err(error) = self.pc.set_remote_description(now, answer)
                {
                    tracing::warn!(%error, "loopback client: bad answer");
                }
            }
            ("offer", Some(sdp)) => {
                self.stats.offers_received.fetch_add(1, Ordering::Relaxed);
                let answered = RTCSessionDescription::offer(sdp)
                    .and_then(|offer| self.pc.set_remote_description(now, offer))
                    .and_then(|_| self.pc.create_answer(None))
                    .and_then(|answer| self.pc.set_local_description(now, answer));
                match answered {
                    Ok(()) => {
                        let sdp = self.pc.local_description().map(|d| d.sdp).unwrap_or_default();
                        let _ = self.outgoing.send(("answer".into(), json!({ "type": "answer", "sdp": sdp })));
                    }
                    Err(error) => tracing::warn!(%error, "loopback client: cannot answer the SFU's offer"),
                }
            }
            ("ice-candidate", _) => {
                if let Ok(candidate) = serde_json::from_value::<RTCIceCandidateInit>(payload) {
                    let _ = self.pc.add_remote_candidate(candidate);
                }
            }
            ("active_speakers", _) => {
                if let Ok(mut speakers) = self.stats.speakers.lock() {
                    speakers.push((now, payload));
                }
            }
            ("error", _) => {
                // As the browser client does: a failed peer is made again.
                self.restart |= payload["code"] == "peer_failed";
                if let Ok(mut errors) = self.stats.errors.lock() {
                    errors.push(payload);
                }
            }
            _ => {}
        }
    }

    fn publish(&mut self, now: Instant) {
        if !self.options.publish || !self.publishing || !self.stats.connected.load(Ordering::Relaxed) {
            return;
        }
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let stamp = now.duration_since(epoch()).as_micros() as u64;
        for outbound in &mut self.senders {
            let (rate, size, clock) = match outbound.kind {
                RtpCodecKind::Video => {
                    (self.options.video_packets_per_second, self.options.video_payload_bytes, 90_000.0)
                }
                _ => (self.options.audio_packets_per_second, self.options.audio_payload_bytes, 48_000.0),
            };
            let due = (elapsed * f64::from(rate)) as u64;
            let Some(mut sender) = self.pc.rtp_sender(outbound.sender) else { continue };
            if outbound.payload_type.is_none() {
                outbound.payload_type =
                    sender.get_parameters().rtp_parameters.codecs.first().map(|codec| codec.payload_type);
            }
            let Some(payload_type) = outbound.payload_type else { continue };
            if !outbound.layers.is_empty() {
                let transceiver = rtc::rtp_transceiver::RTCRtpTransceiverId::from(outbound.sender);
                let mid = self.pc.rtp_transceiver(transceiver).and_then(|t| t.mid().clone()).unwrap_or_default();
                let Some(mut sender) = self.pc.rtp_sender(outbound.sender) else { continue };
                let timestamp = (elapsed * clock) as u32;
                let frame = simulcast::Frame { payload_type, size, timestamp, mid: &mid, stamp };
                let sent = simulcast::send(&mut sender, outbound, due, &frame, now);
                self.stats.sent_packets.fetch_add(sent, Ordering::Relaxed);
                continue;
            }
            if let Some(media) = &self.options.clip {
                let sent = clip::send(&mut sender, outbound, media, payload_type, elapsed, now);
                self.stats.sent_packets.fetch_add(sent, Ordering::Relaxed);
                continue;
            }
            let audio_level = (outbound.kind == RtpCodecKind::Audio)
                .then(|| {
                    let extensions = &sender.get_parameters().rtp_parameters.header_extensions;
                    let id = extensions.iter().find(|ext| ext.uri == crate::speakers::AUDIO_LEVEL_URI)?.id;
                    Some((u8::try_from(id).ok()?, Bytes::from(vec![0x80 | self.audio_level? & 0x7f])))
                })
                .flatten();
            while outbound.sent < due {
                let mut payload = vec![0u8; size.max(8)];
                payload[..8].copy_from_slice(&stamp.to_be_bytes());
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: true,
                        payload_type,
                        sequence_number: outbound.sequence,
                        timestamp: (elapsed * clock) as u32,
                        ssrc: outbound.ssrc,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                let mut packet = packet;
                if let Some((id, level)) = &audio_level {
                    let _ = packet.header.set_extension(*id, level.clone());
                }
                outbound.sequence = outbound.sequence.wrapping_add(1);
                outbound.sent += 1;
                if sender.write_rtp(now, packet).is_ok() {
                    self.stats.sent_packets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn add_screen(&mut self) {
        let ssrc = rand::random::<u32>();
        let codec = RTCRtpCodec { mime_type: MIME_TYPE_VP8.to_string(), clock_rate: 90_000, ..Default::default() };
        let track = MediaStreamTrack::new(
            "loopback".to_string(),
            "loopback-screen".to_string(),
            "screen".to_string(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                active: true,
                codec,
                ..Default::default()
            }],
        );
        match self.pc.add_track(track) {
            Ok(sender) => {
                // Sent from now on, at the video rate.
                let elapsed = Instant::now().duration_since(self.started).as_secs_f64();
                let sent = (elapsed * f64::from(self.options.video_packets_per_second)) as u64;
                self.senders.push(Outbound {
                    sender,
                    kind: RtpCodecKind::Video,
                    ssrc,
                    sequence: rand::random(),
                    payload_type: None,
                    sent,
                    layers: Vec::new(),
                    clip: clip::Position::default(),
                });
                self.offer();
            }
            Err(error) => tracing::warn!(%error, "loopback client: cannot add a screen track"),
        }
    }

    fn remove_screen(&mut self) {
        if self.senders.len() < 3 {
            return;
        }
        if let Some(screen) = self.senders.pop()
            && let Err(error) = self.pc.remove_track(screen.sender)
        {
            tracing::warn!(%error, "loopback client: cannot remove the screen track");
        }
        self.offer();
    }

    fn offer(&mut self) {
        let now = Instant::now();
        let offered = self.pc.create_offer(None).and_then(|offer| self.pc.set_local_description(now, offer));
        match offered {
            Ok(()) => {
                let sdp = self.pc.local_description().map(|d| d.sdp).unwrap_or_default();
                let _ = self.outgoing.send(("offer".into(), json!({ "type": "offer", "sdp": sdp })));
            }
            Err(error) => tracing::warn!(%error, "loopback client: cannot offer"),
        }
    }

    fn request_keyframes(&mut self) {
        let now = Instant::now();
        let video: Vec<(RTCRtpReceiverId, u32)> = self
            .receivers
            .values()
            .copied()
            .filter(|(receiver, _)| {
                self.pc.rtp_receiver(*receiver).is_some_and(|r| r.track().kind() == RtpCodecKind::Video)
            })
            .collect();
        for (receiver, media_ssrc) in video {
            if let Some(mut receiver) = self.pc.rtp_receiver(receiver) {
                let _ = receiver.write_rtcp(now, vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })]);
            }
        }
    }

    fn note_state(&self, state: String) {
        if let Ok(mut states) = self.stats.states.lock() {
            states.push((self.started.elapsed(), state));
        }
    }

    async fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match &event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => self.note_state(format!("pc {state}")),
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                    self.note_state(format!("ice {state}"))
                }
                _ => {}
            }
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => self.stats.connected.store(true, Ordering::Relaxed),
                    // Disconnected is transient: it ends when checks are answered again.
                    // (Ending the client on it stopped a shaped subscriber for good
                    // when a full queue dropped the SFU's check responses.)
                    RTCPeerConnectionState::Disconnected => {
                        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.stats.connected.store(false, Ordering::Relaxed);
                        self.stats.closed.store(true, Ordering::Relaxed);
                    }
                    _ => {}
                },
                RTCPeerConnectionEvent::OnIceCandidateEvent(event) => {
                    if let Ok(candidate) = event.candidate.to_json() {
                        let _ = self
                            .outgoing
                            .send(("ice-candidate".into(), serde_json::to_value(candidate).unwrap_or_default()));
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self.pc.rtp_receiver(init.receiver_id).map(|r| r.track().kind());
                    self.receivers.insert(init.track_id.clone(), (init.receiver_id, init.ssrc));
                    if let Ok(mut tracks) = self.stats.tracks.lock() {
                        let track = tracks.entry(init.track_id.clone()).or_default();
                        track.stream_id = init.stream_ids.first().cloned().unwrap_or_default();
                        track.kind = kind;
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { now, message }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track, packet) => {
                    // A simulcast payload starts with its VP8 headers; the stamp follows.
                    let at = if simulcast::layer_of(&packet.payload).is_some() { simulcast::STAMP_AT } else { 0 };
                    // A clip's payload is media as it is: it carries no send stamp.
                    let stamped = self.options.clip.is_none();
                    let delay = packet.payload.get(at..at + 8).filter(|_| stamped).map(|stamp| {
                        let sent = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
                        now.duration_since(epoch()).saturating_sub(Duration::from_micros(sent))
                    });
                    if let Ok(mut tracks) = self.stats.tracks.lock() {
                        let stats = tracks.entry(track).or_default();
                        stats.payload_types.insert(packet.header.payload_type);
                        if let Some(layer) = simulcast::layer_of(&packet.payload)
                            && stats.layers.last() != Some(&layer)
                        {
                            stats.layers.push(layer);
                        }
                        if let Some(layer) = simulcast::layer_of(&packet.payload)
                            && self.options.record_delays
                        {
                            stats.layer_arrivals.push((now, layer));
                        }
                        stats.record(packet.header.sequence_number, delay, self.options.record_delays);
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    simulcast::keyframes_asked(&mut self.senders, &packets);
                    clip::keyframes_asked(&mut self.senders, &packets);
                    let count =
                        |is: fn(&dyn std::any::Any) -> bool| packets.iter().filter(|p| is(p.as_any())).count() as u64;
                    self.stats
                        .keyframe_requests
                        .fetch_add(count(|p| p.is::<PictureLossIndication>()), Ordering::Relaxed);
                    self.stats.sender_reports.fetch_add(count(|p| p.is::<SenderReport>()), Ordering::Relaxed);
                }
                _ => {}
            }
        }
        while let Some(datagram) = self.pc.poll_write() {
            if self.lose_on_purpose(&datagram.message) {
                continue;
            }
            let _ = self.socket.send_to(&datagram.message, datagram.transport.peer_addr).await;
        }
    }
}
