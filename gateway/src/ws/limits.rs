//! Per-socket message rate limits, by kind of message.
//!
//! Each socket has one token bucket per kind (`WsRateLimits`): a message takes a
//! token from its kind's bucket, and a socket that finds its bucket empty is
//! closed with 1008 (policy violation) before the message is handled. Closing the
//! sender, rather than dropping its messages, keeps a flooder from filling the
//! queues of everyone else in the room (a full queue drops that listener).
//!
//! The buckets live with the socket, in the gateway that holds it: a socket is in
//! one process, so nothing here needs to be shared between gateways.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{RateLimit, WsRateLimits};

/// The kinds of client message that have a bucket of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MessageKind {
    JoinRoom,
    Chat,
    Media,
    Sdp,
    Ice,
    Other,
}

impl MessageKind {
    /// The kind of a client message's `type`.
    pub(super) fn of(message_type: &str) -> Self {
        match message_type {
            "join_room" => Self::JoinRoom,
            "chat" => Self::Chat,
            "mute" | "video" | "screen_share" | "request_unmute" | "allow_unmute" => Self::Media,
            "offer" | "answer" => Self::Sdp,
            "ice-candidate" => Self::Ice,
            _ => Self::Other,
        }
    }

    /// The reason of the close frame when a socket sends too many of this kind.
    pub(super) fn close_reason(self) -> &'static str {
        match self {
            Self::JoinRoom => "too many join_room messages",
            Self::Chat => "too many chat messages",
            Self::Media => "too many media-state messages",
            Self::Sdp => "too many offers and answers",
            Self::Ice => "too many ice candidates",
            Self::Other => "too many messages",
        }
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// One socket's buckets.
pub(super) struct SocketRates {
    join_room: Bucket,
    chat: Bucket,
    media: Bucket,
    sdp: Bucket,
    ice: Bucket,
    other: Bucket,
}

fn bucket(limit: RateLimit) -> Bucket {
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    // A zero period would mean "unlimited", which no setting should give by accident.
    let quota = Quota::with_period(limit.replenish_every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, clock())
}

/// One clock for every bucket. Making one (`DefaultClock::default`) queries the
/// CPU's features each time, which in a virtual machine traps to the host: six
/// per socket were a fifth of the gateway's CPU samples while 10,000 sockets
/// were being admitted.
fn clock() -> DefaultClock {
    static CLOCK: OnceLock<DefaultClock> = OnceLock::new();
    CLOCK.get_or_init(DefaultClock::default).clone()
}

impl SocketRates {
    pub(super) fn new(limits: &WsRateLimits) -> Self {
        Self {
            join_room: bucket(limits.join_room),
            chat: bucket(limits.chat),
            media: bucket(limits.media),
            sdp: bucket(limits.sdp),
            ice: bucket(limits.ice),
            other: bucket(limits.other),
        }
    }

    /// Takes a token for a message of `kind`; false when its bucket is empty.
    pub(super) fn allow(&self, kind: MessageKind) -> bool {
        let bucket = match kind {
            MessageKind::JoinRoom => &self.join_room,
            MessageKind::Chat => &self.chat,
            MessageKind::Media => &self.media,
            MessageKind::Sdp => &self.sdp,
            MessageKind::Ice => &self.ice,
            MessageKind::Other => &self.other,
        };
        bucket.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_kind_is_refused_and_other_kinds_are_not() {
        let strict = RateLimit { burst: 3, replenish_every: Duration::from_secs(3600) };
        let limits = WsRateLimits { chat: strict, ..WsRateLimits::default() };
        let rates = SocketRates::new(&limits);
        assert!((0..3).all(|_| rates.allow(MessageKind::of("chat"))));
        assert!(!rates.allow(MessageKind::Chat));
        assert!(rates.allow(MessageKind::of("ice-candidate")));
        assert_eq!(MessageKind::of("mute"), MessageKind::Media);
        assert_eq!(MessageKind::of("teleport"), MessageKind::Other);
    }
}
