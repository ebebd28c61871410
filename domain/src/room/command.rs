//! What can be asked of a room. Commands hold parsed values only.

use chrono::{DateTime, Utc};

use super::recording::TrackRecording;
use super::types::{DurationMinutes, MaxUsers, PasswordChange, RoomDescription, RoomName};
use crate::credentials::Password;
use crate::ids::{TrackRecordingId, UserId};
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
        duration_minutes: Option<DurationMinutes>,
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
        /// The command layer found an accepted invitation of `user` to this room
        /// (SPEC §6): it stands in for the room's password.
        invited: bool,
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
    /// Ends the room; a room that never started is cancelled instead.
    End {
        actor: UserId,
    },
    /// Moves a meeting that has not started: `None` keeps that part of the
    /// schedule. A duration alone needs a room that already has a time.
    Reschedule {
        actor: UserId,
        scheduled_at: Option<Timestamp>,
        duration_minutes: Option<DurationMinutes>,
    },
    /// A reminder timer of `schedule_sequence` came due for `recipient` (the
    /// reminder loop, SPEC §6). `late` when it is sent after its moment because
    /// no process was up to send it then.
    FireReminder {
        recipient: UserId,
        schedule_sequence: u32,
        due_at: DateTime<Utc>,
        late: bool,
    },
    /// The host starts recording every published track (SPEC §10).
    StartRecording {
        actor: UserId,
    },
    StopRecording {
        actor: UserId,
    },
    /// The SFU closed one track's file. Accepted after the room ended too.
    FinishTrackRecording {
        recording: TrackRecording,
    },
    /// The retention setting removed the file. Accepted after the room ended too.
    ExpireTrackRecording {
        track_recording_id: TrackRecordingId,
    },
}
