//! The messages the SFU's parts exchange: what a media worker is told to do
//! ([`WorkerInput`]) and what the room core is told ([`CoreInput`]). Kept apart
//! from `worker.rs` and `room_core.rs` so that neither imports the other; the
//! answer to an admission check ([`Admitted`], [`Refused`]) is one of them.

use std::sync::Arc;

use rapat_wire::signal::SfuRequest;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp;
use rtc::shared::TaggedBytesMut;

use crate::peer::PeerOutput;
use crate::signal::{PeerKey, RoomChange};
use crate::simulcast::LayerTag;
use crate::source::{SourceId, Subscription};
use crate::speakers::LevelSummary;

pub enum WorkerInput {
    Datagram {
        peer: u64,
        datagram: TaggedBytesMut,
    },
    Create {
        peer: u64,
        key: PeerKey,
        audio_blocked: bool,
    },
    Offer {
        peer: u64,
        sdp: String,
    },
    Answer {
        peer: u64,
        sdp: String,
    },
    Candidate {
        peer: u64,
        candidate: RTCIceCandidateInit,
    },
    Subscribe {
        peer: u64,
        subscription: Subscription,
    },
    Unsubscribe {
        peer: u64,
        source: SourceId,
    },
    BlockAudio {
        peer: u64,
        blocked: bool,
    },
    Keyframe {
        peer: u64,
        source: SourceId,
    },
    Close {
        peer: u64,
    },
    /// A decrypted packet of `source`, for this worker's subscribers of it;
    /// `layer` tags a packet of a simulcast track.
    Rtp {
        source: SourceId,
        packet: Arc<rtp::Packet>,
        layer: Option<LayerTag>,
    },
    /// Ask the publisher `peer` for a keyframe of one simulcast layer of `source`.
    LayerKeyframe {
        peer: u64,
        source: SourceId,
        layer: u8,
    },
    /// Tell publisher `peer` which layers of its simulcast track `source` are needed.
    PublisherLayers {
        peer: u64,
        source: SourceId,
        active: crate::layer_demand::ActiveLayers,
    },
    /// Subscriber `peer` shows `publisher`'s video at most `max_height` high.
    VideoConstraint {
        peer: u64,
        publisher: uuid::Uuid,
        max_height: u16,
    },
    /// Hand (`on`) or stop handing the packets of `peer`'s track `source` to the recording thread.
    Record {
        peer: u64,
        source: SourceId,
        on: bool,
    },
    /// The workers other than `peer`'s that hold peers of its room: the packets
    /// `peer` publishes are handed to them. Until told, a peer's packets stay on
    /// its worker (`room_core.rs` keeps a small room on one worker).
    RoomWorkers {
        peer: u64,
        others: Arc<[usize]>,
    },
    Stop,
}

/// Everything the room core decides on.
pub enum CoreInput {
    /// A client's offer, answer, ICE candidate or disconnect, through a gateway.
    Signal(SfuRequest),
    /// A room event that matters for media, and its stream sequence.
    Room { change: RoomChange, sequence: u64 },
    /// What a worker learnt about one of its peers.
    FromPeer { peer: u64, output: PeerOutput },
    /// The answer to an [`crate::room_core::CoreOutput::CheckAdmission`].
    Checked { key: PeerKey, result: Result<Admitted, Refused> },
    /// A worker's count of its publishers' audio levels up to `at`.
    AudioLevels { at: std::time::Instant, levels: Vec<(SourceId, LevelSummary)> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Audio starts blocked when the participant is muted.
    pub audio_muted: bool,
    /// The room's `maxUsers`: at most this many distinct users have peers in it.
    pub max_users: u32,
    /// The stream sequence the room's events were applied through when this was
    /// decided: a leave, removal or end seen while the check ran refuses the
    /// offer only if it came later.
    pub as_of: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    NotParticipant,
    RoomEnded,
    /// Peers of `maxUsers` other users are already in the room.
    RoomFull,
    Unavailable(String),
}

impl Refused {
    pub(crate) fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Refused::NotParticipant => ("not_a_participant", "join the room before sending media".into()),
            Refused::RoomEnded => ("room_ended", "the room has ended".into()),
            Refused::RoomFull => ("room_full", "the room's media is full: it has reached its participant limit".into()),
            Refused::Unavailable(reason) => ("sfu_unavailable", format!("cannot check the room now: {reason}")),
        }
    }
}

impl std::fmt::Debug for WorkerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            WorkerInput::Datagram { .. } => "Datagram",
            WorkerInput::Create { .. } => "Create",
            WorkerInput::Offer { .. } => "Offer",
            WorkerInput::Answer { .. } => "Answer",
            WorkerInput::Candidate { .. } => "Candidate",
            WorkerInput::Subscribe { .. } => "Subscribe",
            WorkerInput::Unsubscribe { .. } => "Unsubscribe",
            WorkerInput::BlockAudio { .. } => "BlockAudio",
            WorkerInput::Keyframe { .. } => "Keyframe",
            WorkerInput::Close { .. } => "Close",
            WorkerInput::Rtp { .. } => "Rtp",
            WorkerInput::LayerKeyframe { .. } => "LayerKeyframe",
            WorkerInput::VideoConstraint { .. } => "VideoConstraint",
            WorkerInput::PublisherLayers { .. } => "PublisherLayers",
            WorkerInput::Record { .. } => "Record",
            WorkerInput::RoomWorkers { .. } => "RoomWorkers",
            WorkerInput::Stop => "Stop",
        };
        f.write_str(name)
    }
}
