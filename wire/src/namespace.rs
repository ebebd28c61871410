//! One deployment's NATS names, all derived from its namespace (`RAPAT_NAMESPACE`).
//!
//! Several deployments (and every test) share one NATS cluster by using different
//! namespaces. For the namespace `rapat`:
//!
//! | what | name |
//! |---|---|
//! | event stream | `RAPAT_EVENTS`, subjects `rapat.events.<type>.<id>` |
//! | snapshots bucket | `RAPAT_SNAPSHOTS` |
//! | projection consumers | `rapat_projection_<projection>` |
//! | chat stream | `RAPAT_CHAT`, subjects `rapat.chat.<roomId>` |
//! | presence bucket | `RAPAT_PRESENCE` |
//! | SFU placement bucket | `RAPAT_SFU_ROOMS` |
//! | a user's new notifications | `rapat.users.<userId>.notifications` (core NATS) |
//! | gateway → SFU | `rapat.sfu.rooms.<roomId>.in` (core NATS) |
//! | SFU/gateway → a room's sockets | `rapat.rooms.<roomId>.signal` (core NATS) |

use std::fmt;

/// A namespace: 1–64 characters of ASCII letters, digits, `_` or `-`, so that every
/// name derived from it is a valid stream, bucket, consumer and subject token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace(String);

#[derive(Debug, thiserror::Error)]
#[error("invalid namespace {0:?}: use 1 to 64 ASCII letters, digits, '_' or '-'")]
pub struct InvalidNamespace(pub String);

impl Namespace {
    pub const MAX_LEN: usize = 64;

    pub fn parse(name: &str) -> Result<Self, InvalidNamespace> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid { Ok(Self(name.to_string())) } else { Err(InvalidNamespace(name.to_string())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn upper(&self) -> String {
        self.0.to_ascii_uppercase()
    }

    // The event store.

    /// The stream holding every domain event: the source of truth.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.upper())
    }

    /// `<ns>.events`: every event subject starts with this.
    pub fn event_subject_prefix(&self) -> String {
        format!("{}.events", self.0)
    }

    /// The subject of one aggregate instance: `<ns>.events.<type>.<id>`.
    pub fn event_subject(&self, aggregate_type: &str, aggregate_id: impl fmt::Display) -> String {
        format!("{}.events.{aggregate_type}.{aggregate_id}", self.0)
    }

    /// Every event of one aggregate type: `<ns>.events.<type>.>`.
    pub fn event_subjects_of(&self, aggregate_type: &str) -> String {
        format!("{}.events.{aggregate_type}.>", self.0)
    }

    /// Every event subject: `<ns>.events.>`.
    pub fn all_event_subjects(&self) -> String {
        format!("{}.events.>", self.0)
    }

    pub fn snapshots_bucket(&self) -> String {
        format!("{}_SNAPSHOTS", self.upper())
    }

    /// The durable consumer of one projection: `<ns>_projection_<name>`.
    pub fn projection_consumer(&self, projection: &str) -> String {
        format!("{}_projection_{projection}", self.0)
    }

    // Chat and presence (gateway).

    pub fn chat_stream(&self) -> String {
        format!("{}_CHAT", self.upper())
    }

    pub fn chat_subject(&self, room: impl fmt::Display) -> String {
        format!("{}.chat.{room}", self.0)
    }

    /// Every room's chat subject: `<ns>.chat.*`.
    pub fn all_chat_subjects(&self) -> String {
        format!("{}.chat.*", self.0)
    }

    pub fn presence_bucket(&self) -> String {
        format!("{}_PRESENCE", self.upper())
    }

    // Signaling between gateways and SFU nodes (core NATS).

    /// Gateway → SFU: a client's signaling for a room.
    pub fn sfu_inbound_subject(&self, room: impl fmt::Display) -> String {
        format!("{}.sfu.rooms.{room}.in", self.0)
    }

    /// Every room's gateway → SFU subject, for an SFU node to subscribe to.
    pub fn all_sfu_inbound_subjects(&self) -> String {
        self.sfu_inbound_subject("*")
    }

    /// A room's messages for its sockets, on whichever gateway holds them.
    pub fn room_signal_subject(&self, room: impl fmt::Display) -> String {
        format!("{}.rooms.{room}.signal", self.0)
    }

    /// A user's new notifications, published by the notifications projection after
    /// its batch commits, for every gateway holding a socket of that user.
    pub fn user_notifications_subject(&self, user: impl fmt::Display) -> String {
        format!("{}.users.{user}.notifications", self.0)
    }

    /// Which SFU node serves each room.
    pub fn sfu_rooms_bucket(&self) -> String {
        format!("{}_SFU_ROOMS", self.upper())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Namespace {
    type Err = InvalidNamespace;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_the_default_namespace() {
        let ns = Namespace::parse("rapat").expect("valid");
        assert_eq!(ns.events_stream(), "RAPAT_EVENTS");
        assert_eq!(ns.event_subject("room", "r1"), "rapat.events.room.r1");
        assert_eq!(ns.event_subjects_of("room"), "rapat.events.room.>");
        assert_eq!(ns.all_event_subjects(), "rapat.events.>");
        assert_eq!(ns.snapshots_bucket(), "RAPAT_SNAPSHOTS");
        assert_eq!(ns.projection_consumer("rooms"), "rapat_projection_rooms");
        assert_eq!(ns.chat_stream(), "RAPAT_CHAT");
        assert_eq!(ns.chat_subject("r1"), "rapat.chat.r1");
        assert_eq!(ns.presence_bucket(), "RAPAT_PRESENCE");
        assert_eq!(ns.sfu_inbound_subject("r1"), "rapat.sfu.rooms.r1.in");
        assert_eq!(ns.all_sfu_inbound_subjects(), "rapat.sfu.rooms.*.in");
        assert_eq!(ns.room_signal_subject("r1"), "rapat.rooms.r1.signal");
        assert_eq!(ns.sfu_rooms_bucket(), "RAPAT_SFU_ROOMS");
        assert_eq!(ns.user_notifications_subject("u1"), "rapat.users.u1.notifications");
    }

    #[test]
    fn names_that_would_break_a_subject_or_stream_are_refused() {
        for bad in ["", "a.b", "a b", "a>", "a*", "ä", &"x".repeat(65)] {
            assert!(Namespace::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Namespace::parse("t_1-x").is_ok());
    }
}
