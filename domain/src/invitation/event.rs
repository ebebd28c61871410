//! What happened to an invitation. Payload shapes are a stored contract: see
//! `schemas/events/invitation/`.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::Email;
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::{RoomId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum InvitationEvent {
    /// Issued, or issued again after a decline or a revocation. Exactly one of
    /// `inviteeId` and `email` is set.
    InvitationIssued {
        room_id: RoomId,
        host_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invitee_id: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<Email>,
    },
    InvitationAccepted {
        invitee_id: UserId,
    },
    InvitationDeclined {
        invitee_id: UserId,
    },
    InvitationRevoked {
        revoked_by: UserId,
    },
    /// The account registered with the invited email address.
    InvitationBoundToAccount {
        invitee_id: UserId,
    },
}

impl DomainEvent for InvitationEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::InvitationIssued { .. } => "InvitationIssued",
            Self::InvitationAccepted { .. } => "InvitationAccepted",
            Self::InvitationDeclined { .. } => "InvitationDeclined",
            Self::InvitationRevoked { .. } => "InvitationRevoked",
            Self::InvitationBoundToAccount { .. } => "InvitationBoundToAccount",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for InvitationEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
