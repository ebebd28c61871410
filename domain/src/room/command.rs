//! What can be asked of a room. Commands hold parsed values only.

use super::types::{MaxUsers, PasswordChange, RoomDescription, RoomName};
use crate::credentials::Password;
use crate::ids::UserId;
use crate::text::Timestamp;

/// `Clone` because the event store retries a command after a concurrency conflict.
#[derive(Clone, Debug)]
pub enum RoomCommand {
    Create {
        host: UserId,
        name: RoomName,
        description: RoomDescription,
        password: Option<Password>,
        max_users: MaxUsers,
        scheduled_at: Option<Timestamp>,
    },
    /// `None` leaves a setting as it is.
    UpdateSettings {
        actor: UserId,
        name: Option<RoomName>,
        description: Option<RoomDescription>,
        password: Option<PasswordChange>,
        max_users: Option<MaxUsers>,
    },
    Join {
        user: UserId,
        password: Option<Password>,
    },
    Leave {
        user: UserId,
    },
    /// Mutes `target` until the host allows them to unmute (`AllowUnmute`).
    MuteParticipant {
        actor: UserId,
        target: UserId,
    },
    /// Lifts the host's mute of `target`; their microphone stays off until they
    /// unmute themselves.
    AllowUnmute {
        actor: UserId,
        target: UserId,
    },
    RemoveParticipant {
        actor: UserId,
        target: UserId,
    },
    SetAudio {
        user: UserId,
        muted: bool,
    },
    SetVideo {
        user: UserId,
        on: bool,
    },
    SetScreenShare {
        user: UserId,
        sharing: bool,
    },
    End {
        actor: UserId,
    },
}
