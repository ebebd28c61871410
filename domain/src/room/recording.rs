//! Recording a room (SPEC §10): the host starts and stops it; the SFU writes each
//! published track to its own file and records each finished file on the room.
//!
//! A recording stops when the host stops it, when the host leaves the room (an
//! explicit leave; a dropped socket that comes back is not one), and when the room
//! ends: nobody is recorded without the one who started it being there. A track's
//! file may be finished after the recording stopped, or after the room ended,
//! because the SFU closes files as their last packets are written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{TrackRecordingId, UserId};

/// The codec a track was recorded in; the file keeps it as sent, untranscoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingCodec {
    /// Audio, in an Ogg file.
    Opus,
    /// Video, in a WebM file.
    Vp8,
}

impl RecordingCodec {
    pub fn kind(self) -> TrackKind {
        match self {
            Self::Opus => TrackKind::Audio,
            Self::Vp8 => TrackKind::Video,
        }
    }

    /// The media type of the file (what a download is served as).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Opus => "audio/ogg",
            Self::Vp8 => "video/webm",
        }
    }

    pub fn file_extension(self) -> &'static str {
        match self {
            Self::Opus => "ogg",
            Self::Vp8 => "webm",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Vp8 => "vp8",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Audio,
    Video,
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// Why a recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordingStopReason {
    /// The host stopped it.
    Host,
    /// The host left the room.
    HostLeft,
    /// The room ended.
    RoomEnded,
}

/// One finished file: one publication of one track, from its first packet to its
/// last. Where the file is kept follows from the room, the id and the codec, so no
/// path is ever read from an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackRecording {
    pub id: TrackRecordingId,
    /// The publisher.
    pub user_id: UserId,
    pub codec: RecordingCodec,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub bytes: u64,
}
