//! The recording thread: while a room records, its publishers' workers hand
//! each decrypted packet of a recorded track here, on a bounded channel they
//! never wait on (a full channel drops the packet and counts it), and this
//! thread writes one file per publication (`rapat_recording::TrackRecorder`).
//! The room core says when a publication's recording starts and stops
//! ([`RecordOrder`], on a channel of its own that is never full, so an order is
//! never lost to a burst of media). A stopped file is committed to the store
//! and reported ([`FinishedTrack`]) for `nats.rs` to record on the room.

use std::collections::HashMap;
use std::io::BufWriter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use rapat_domain::ids::{RoomId, TrackRecordingId, UserId};
use rapat_domain::room::{RecordingCodec, TrackRecording};
use rapat_recording::{PartialFile, RecordingKey, RecordingStore, TrackRecorder};
use rtc::rtp;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use crate::inputs::CoreInput;
use crate::peer::PeerOutput;
use crate::source::SourceId;
use crate::unrecorded::Unrecorded;

/// Packets waiting for the recording thread, over every recorded track: about
/// a second of ten video tracks.
const PACKET_QUEUE: usize = 8_192;
/// How often held packets are looked at when none arrive (a gap's wait running out).
const TICK: Duration = Duration::from_millis(50);
/// How often the thread wakes to take what the queue holds. Taking packets in
/// batches instead of parking on the queue for each keeps the workers' sends
/// free of wake-ups (a send to a parked receiver costs the forwarding thread a
/// futex call), and a file is written a few milliseconds later, which nobody sees.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// What the room core tells the recording thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOrder {
    /// Record the publication `source` of `user` in `room` into a new file.
    Start {
        source: SourceId,
        room: Uuid,
        user: Uuid,
        codec: RecordingCodec,
    },
    Stop {
        source: SourceId,
    },
    /// The SFU is stopping: finish every file.
    Shutdown,
}

/// A packet of a recorded track, as its publisher's worker got it at `at`.
pub struct RecordedPacket {
    pub source: SourceId,
    pub packet: Arc<rtp::Packet>,
    /// The simulcast layer, for a simulcast track.
    pub layer: Option<u8>,
    pub at: Instant,
}

/// A file committed to the store, to be recorded on its room.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FinishedTrack {
    pub room: RoomId,
    pub recording: TrackRecording,
}

/// The workers' side of the packet queue.
#[derive(Clone)]
pub struct PacketQueue {
    sender: Sender<RecordedPacket>,
    dropped: Arc<AtomicU64>,
}

impl PacketQueue {
    /// Never waits: a full queue drops the packet (and counts it).
    pub fn offer(&self, packet: RecordedPacket) {
        if let Err(TrySendError::Full(_)) = self.sender.try_send(packet) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Packets dropped because the recording thread was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The peer id the recording thread speaks as to the room core: no real peer's.
/// A recorded simulcast track is wanted at its top layer under it, so the
/// publisher keeps sending the best layer while it is recorded, whatever size
/// the subscribers show it at.
pub const RECORDER_PEER: u64 = u64::MAX;

struct Track {
    /// Whether the top layer was asked for (once, at the first simulcast packet).
    top_layer_wanted: bool,
    room: Uuid,
    user: Uuid,
    codec: RecordingCodec,
    id: TrackRecordingId,
    /// Opened at the first packet, so a publication that sends nothing leaves no file.
    writing: Option<(TrackRecorder<BufWriter<PartialFile>>, DateTime<Utc>)>,
}

pub struct Recorder {
    store: Arc<dyn RecordingStore>,
    orders: Receiver<RecordOrder>,
    packets: Receiver<RecordedPacket>,
    /// For keyframe requests, as if a subscriber had lost the picture.
    conductor: UnboundedSender<CoreInput>,
    finished: UnboundedSender<FinishedTrack>,
    /// Where a committed file waits until its room has recorded it.
    unrecorded: Unrecorded,
    tracks: HashMap<SourceId, Track>,
}

impl Recorder {
    /// The recording thread's state, the orders' sender and the workers' packet queue.
    pub fn new(
        store: Arc<dyn RecordingStore>,
        conductor: UnboundedSender<CoreInput>,
        finished: UnboundedSender<FinishedTrack>,
        unrecorded: Unrecorded,
    ) -> (Self, Sender<RecordOrder>, PacketQueue) {
        let (orders_tx, orders) = crossbeam_channel::unbounded();
        let (sender, packets) = crossbeam_channel::bounded(PACKET_QUEUE);
        let queue = PacketQueue { sender, dropped: Arc::default() };
        let recorder = Self { store, orders, packets, conductor, finished, unrecorded, tracks: HashMap::new() };
        (recorder, orders_tx, queue)
    }

    pub fn run(mut self) {
        let mut last_tick = Instant::now();
        loop {
            // Orders first: a track's start is always sent before its first packet.
            while let Ok(order) = self.orders.try_recv() {
                if !self.obey(order) {
                    return;
                }
            }
            loop {
                match self.packets.try_recv() {
                    Ok(packet) => self.write(packet),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.finish_all();
                        return;
                    }
                }
            }
            let now = Instant::now();
            if now.duration_since(last_tick) >= TICK {
                last_tick = now;
                self.tick(now);
            }
            std::thread::sleep(DRAIN_EVERY);
        }
    }

    /// Carries out an order; `false` once the thread should end.
    fn obey(&mut self, order: RecordOrder) -> bool {
        match order {
            RecordOrder::Start { source, room, user, codec } => {
                let id = TrackRecordingId::from_uuid(Uuid::new_v4());
                tracing::info!(%room, %user, %source, %id, codec = codec.as_str(), "recording a track");
                if let Some(replaced) =
                    self.tracks.insert(source, Track { top_layer_wanted: false, room, user, codec, id, writing: None })
                {
                    self.finish(replaced);
                }
            }
            RecordOrder::Stop { source } => {
                if let Some(track) = self.tracks.remove(&source) {
                    self.finish(track);
                }
            }
            RecordOrder::Shutdown => {
                self.finish_all();
                return false;
            }
        }
        true
    }

    fn write(&mut self, recorded: RecordedPacket) {
        let Some(track) = self.tracks.get_mut(&recorded.source) else { return };
        if track.writing.is_none() {
            let key = RecordingKey::for_track(RoomId::from_uuid(track.room), track.id, track.codec);
            let opened = self.store.create(key).map_err(|error| error.to_string()).and_then(|file| {
                TrackRecorder::new(track.codec, BufWriter::new(file)).map_err(|error| error.to_string())
            });
            match opened {
                Ok(recorder) => track.writing = Some((recorder, Utc::now())),
                Err(error) => {
                    tracing::warn!(%error, source = %recorded.source, "cannot open a recording file; the track is not recorded");
                    self.tracks.remove(&recorded.source);
                    return;
                }
            }
        }
        if recorded.layer.is_some() && !track.top_layer_wanted {
            track.top_layer_wanted = true;
            let top = (crate::simulcast::LAYERS - 1) as u8;
            let output = PeerOutput::LayerWanted { source: recorded.source, layer: top, forwarded: top };
            let _ = self.conductor.send(CoreInput::FromPeer { peer: RECORDER_PEER, output });
        }
        let Some((recorder, _)) = &mut track.writing else { return };
        if let Err(error) = recorder.push(recorded.packet, recorded.layer, recorded.at) {
            tracing::warn!(%error, source = %recorded.source, "writing a recording failed; the track is not recorded");
            self.tracks.remove(&recorded.source);
            return;
        }
        if recorder.take_keyframe_request() {
            self.ask_keyframe(recorded.source, recorded.layer);
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for (source, track) in &mut self.tracks {
            if let Some((recorder, _)) = &mut track.writing
                && let Err(error) = recorder.poll(now)
            {
                tracing::warn!(%error, %source, "writing a recording failed; the track is not recorded");
                failed.push(*source);
            }
        }
        for source in failed {
            self.tracks.remove(&source);
        }
    }

    fn ask_keyframe(&self, source: SourceId, layer: Option<u8>) {
        // The publisher's id is in the source's; `peer` is not read for these.
        let output = match layer {
            Some(layer) => PeerOutput::LayerKeyframeWanted { source, layer },
            None => PeerOutput::KeyframeWanted(source),
        };
        let _ = self.conductor.send(CoreInput::FromPeer { peer: 0, output });
    }

    fn finish_all(&mut self) {
        for (_, track) in std::mem::take(&mut self.tracks) {
            self.finish(track);
        }
    }

    /// Completes the file, commits it and reports it; a file with nothing
    /// playable in it is dropped instead.
    fn finish(&self, track: Track) {
        let Some((recorder, started_at)) = track.writing else { return };
        let (lost, dropped) = (recorder.packets_lost, recorder.frames_dropped);
        let completed = recorder.finish().and_then(|(writer, written)| {
            let file = writer.into_inner().map_err(|error| error.into_error())?;
            Ok((file, written))
        });
        let (file, written) = match completed {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%error, id = %track.id, "cannot complete a recording file");
                return;
            }
        };
        if written.empty {
            tracing::info!(id = %track.id, "a recorded track had nothing playable; no file kept");
            if let Err(error) = self.store.discard(file) {
                tracing::warn!(%error, id = %track.id, "cannot remove an empty recording file");
            }
            return;
        }
        let bytes = match self.store.commit(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, id = %track.id, "cannot commit a recording file");
                return;
            }
        };
        tracing::info!(
            id = %track.id, duration_ms = written.duration_ms, bytes, packets_lost = lost, frames_dropped = dropped,
            "track recording finished"
        );
        let recording = TrackRecording {
            id: track.id,
            user_id: UserId::from_uuid(track.user),
            codec: track.codec,
            started_at,
            duration_ms: written.duration_ms,
            bytes,
        };
        let finished = FinishedTrack { room: RoomId::from_uuid(track.room), recording };
        // On disk before it is handed on: a process that stops before the room
        // has the event records it when it starts again.
        if let Err(error) = self.unrecorded.keep(&finished) {
            tracing::warn!(%error, id = %finished.recording.id, "cannot note a finished recording file before recording it");
        }
        let _ = self.finished.send(finished);
    }
}

/// The codec a track is recorded in, from its negotiated MIME type; `None` for
/// codecs that are not recorded (the SFU forwards H.264 too, but records only
/// what SPEC §10 names).
pub fn recording_codec(mime_type: &str) -> Option<RecordingCodec> {
    if mime_type.eq_ignore_ascii_case("audio/opus") {
        Some(RecordingCodec::Opus)
    } else if mime_type.eq_ignore_ascii_case("video/vp8") {
        Some(RecordingCodec::Vp8)
    } else {
        None
    }
}
