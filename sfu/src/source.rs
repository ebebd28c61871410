//! Published tracks, as the rest of the SFU refers to them.

use std::fmt;

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use uuid::Uuid;

use crate::leg::SourceParameters;

/// One track a client publishes; unique across the SFU for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// Everything a subscriber's peer needs to add a leg for a published track.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub source: SourceId,
    /// Becomes the forwarded track's MediaStream id, so a browser knows whose it is.
    pub publisher_user: Uuid,
    pub kind: RtpCodecKind,
    pub codec: RTCRtpCodec,
    pub parameters: SourceParameters,
}
