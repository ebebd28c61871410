//! What happened to a room. Payload shapes are a stored contract: see
//! `schemas/events/room/` and bump [`RoomEvent::event_version`] with an upcaster when
//! one changes.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::recording::{RecordingStopReason, TrackRecording};
use super::types::{DurationMinutes, MaxUsers, RoomDescription, RoomName};
use crate::credentials::PasswordHash;
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::{TrackRecordingId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoomEvent {
    RoomCreated {
        host_id: UserId,
        name: RoomName,
        description: RoomDescription,
        password_hash: Option<PasswordHash>,
        max_users: MaxUsers,
        scheduled_at: Option<DateTime<Utc>>,
        /// Absent in rooms created before durations existed, and when none was given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_minutes: Option<DurationMinutes>,
    },
    /// Only what changed is present; `password_cleared` is true when the password
    /// was removed (a new password arrives as `password_hash` instead).
    RoomSettingsUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<RoomName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<RoomDescription>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_hash: Option<PasswordHash>,
        #[serde(default)]
        password_cleared: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_users: Option<MaxUsers>,
    },
    ParticipantJoined {
        user_id: UserId,
    },
    ParticipantLeft {
        user_id: UserId,
    },
    /// The host muted `user_id`, who cannot unmute until the host allows it.
    ParticipantMutedByHost {
        user_id: UserId,
        muted_by: UserId,
    },
    /// The host allowed `user_id` to unmute again; their microphone stays off.
    ParticipantUnmuteAllowed {
        user_id: UserId,
        allowed_by: UserId,
    },
    ParticipantRemoved {
        user_id: UserId,
        removed_by: UserId,
    },
    ParticipantAudioChanged {
        user_id: UserId,
        muted: bool,
    },
    ParticipantVideoChanged {
        user_id: UserId,
        on: bool,
    },
    ParticipantScreenShareChanged {
        user_id: UserId,
        sharing: bool,
    },
    RoomEnded {},
    /// The meeting, not started yet, moved. Carries the whole new schedule;
    /// `schedule_sequence` counts the schedules (0 at creation, one more per
    /// reschedule): a calendar's `SEQUENCE`, and what a reminder timer is for.
    RoomRescheduled {
        scheduled_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_minutes: Option<DurationMinutes>,
        schedule_sequence: u32,
        rescheduled_by: UserId,
    },
    /// The host ended a room that never started: the meeting is called off. Always
    /// followed by `RoomEnded` in the same commit, so what reads only the end of a
    /// room needs to know nothing of cancellations.
    RoomCancelled {
        cancelled_by: UserId,
    },
    /// A reminder of the meeting came due for one recipient (SPEC §6); at most one
    /// per schedule and recipient.
    MeetingReminderDue {
        recipient_id: UserId,
        schedule_sequence: u32,
        due_at: DateTime<Utc>,
        late: bool,
    },
    /// The host started recording the room (SPEC §10).
    RecordingStarted {
        started_by: UserId,
    },
    /// `stopped_by` is absent when the recording stopped because the room ended.
    RecordingStopped {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_by: Option<UserId>,
        reason: RecordingStopReason,
    },
    /// The SFU finished one track's file; at most once per track recording.
    TrackRecordingFinished {
        recording: TrackRecording,
    },
    /// The file is gone: older than the retention setting allows.
    TrackRecordingExpired {
        track_recording_id: TrackRecordingId,
    },
}

impl DomainEvent for RoomEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::RoomCreated { .. } => "RoomCreated",
            Self::RoomSettingsUpdated { .. } => "RoomSettingsUpdated",
            Self::ParticipantJoined { .. } => "ParticipantJoined",
            Self::ParticipantLeft { .. } => "ParticipantLeft",
            Self::ParticipantMutedByHost { .. } => "ParticipantMutedByHost",
            Self::ParticipantUnmuteAllowed { .. } => "ParticipantUnmuteAllowed",
            Self::ParticipantRemoved { .. } => "ParticipantRemoved",
            Self::ParticipantAudioChanged { .. } => "ParticipantAudioChanged",
            Self::ParticipantVideoChanged { .. } => "ParticipantVideoChanged",
            Self::ParticipantScreenShareChanged { .. } => "ParticipantScreenShareChanged",
            Self::RoomEnded {} => "RoomEnded",
            Self::RoomRescheduled { .. } => "RoomRescheduled",
            Self::RoomCancelled { .. } => "RoomCancelled",
            Self::MeetingReminderDue { .. } => "MeetingReminderDue",
            Self::RecordingStarted { .. } => "RecordingStarted",
            Self::RecordingStopped { .. } => "RecordingStopped",
            Self::TrackRecordingFinished { .. } => "TrackRecordingFinished",
            Self::TrackRecordingExpired { .. } => "TrackRecordingExpired",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        // No room payload has changed shape yet.
        "1".to_owned()
    }
}

impl Upcast for RoomEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
