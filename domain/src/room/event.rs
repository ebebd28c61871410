//! What happened to a room. Payload shapes are a stored contract: see
//! `schemas/events/room/` and bump [`RoomEvent::event_version`] with an upcaster when
//! one changes.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::{MaxUsers, RoomDescription, RoomName};
use crate::credentials::PasswordHash;
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

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
