//! The messages the SFU's parts exchange: what a media worker is told to do
//! ([`WorkerInput`]) and what the room core is told ([`CoreInput`]). Kept apart
//! from `worker.rs` and `room_core.rs` so that neither imports the other.

use std::sync::Arc;

use rapat_wire::signal::SfuRequest;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp;
use rtc::shared::TaggedBytesMut;

use crate::peer::PeerOutput;
use crate::room_core::{Admitted, Refused};
use crate::signal::{PeerKey, RoomChange};
use crate::source::{SourceId, Subscription};

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
    /// A decrypted packet of `source`, for this worker's subscribers of it.
    Rtp {
        source: SourceId,
        packet: Arc<rtp::Packet>,
    },
    Stop,
}

/// Everything the room core decides on.
pub enum CoreInput {
    /// A client's offer, answer, ICE candidate or disconnect, through a gateway.
    Signal(SfuRequest),
    /// A room event that matters for media.
    Room(RoomChange),
    /// What a worker learnt about one of its peers.
    FromPeer { peer: u64, output: PeerOutput },
    /// The answer to an [`crate::room_core::CoreOutput::CheckAdmission`].
    Checked { key: PeerKey, result: Result<Admitted, Refused> },
}
