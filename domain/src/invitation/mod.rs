//! An invitation to a room: one aggregate per (room, invitee), its id derived from
//! both ([`Invitation::id_for`]), so inviting someone twice addresses the same
//! invitation and is idempotent.
//!
//! An invitee is an account, or an email address that may have no account yet; an
//! email invitation is bound to the account registered with that address
//! (`BindAccount`), which can then answer it. The invitee may change their mind
//! (accept after declining, decline after accepting); the host may revoke it, and
//! invite again later, which issues it anew.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::InvitationCommand;
pub use error::InvitationError;
pub use event::InvitationEvent;

use crate::account::Email;
use crate::ids::{InvitationId, RoomId, UserId};

/// Who is invited.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Invitee {
    User(UserId),
    Email(Email),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InvitationStatus {
    /// Not issued yet: the aggregate has no events.
    #[default]
    NotIssued,
    Pending,
    Accepted,
    Declined,
    Revoked,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    room: Option<RoomId>,
    host: Option<UserId>,
    /// The invited account: given when issued, or bound later to an email invitation.
    invitee_id: Option<UserId>,
    /// The invited address, for an email invitation.
    email: Option<Email>,
    status: InvitationStatus,
}

impl Invitation {
    /// The namespace of [`Invitation::id_for`]. Fixed forever: changing it would
    /// give every (room, invitee) a second invitation.
    const ID_NAMESPACE: Uuid = Uuid::from_u128(0x1b7e_52c4_9d3a_4f81_a6c0_3e2d_8f91_07b5);

    /// The invitation of `invitee` to `room`: a UUIDv5 of both, the email lowercased
    /// by its parser, so one (room, invitee) is one aggregate.
    pub fn id_for(room: RoomId, invitee: &Invitee) -> InvitationId {
        let name = match invitee {
            Invitee::User(user) => format!("{room}/user/{user}"),
            Invitee::Email(email) => format!("{room}/email/{}", email.as_str()),
        };
        InvitationId::from_uuid(Uuid::new_v5(&Self::ID_NAMESPACE, name.as_bytes()))
    }

    pub fn status(&self) -> InvitationStatus {
        self.status
    }

    pub fn room(&self) -> Option<RoomId> {
        self.room
    }

    pub fn host(&self) -> Option<UserId> {
        self.host
    }

    pub fn invitee_id(&self) -> Option<UserId> {
        self.invitee_id
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// Whether the invitee may join the room on this invitation (without the room's
    /// password, SPEC §6).
    pub fn admits(&self, user: UserId) -> bool {
        self.status == InvitationStatus::Accepted && self.invitee_id == Some(user)
    }

    fn decide(&self, command: InvitationCommand) -> Result<Vec<InvitationEvent>, InvitationError> {
        use InvitationStatus::{Accepted, Declined, NotIssued, Revoked};
        match command {
            InvitationCommand::Issue { room, host, invitee } => self.issue(room, host, invitee),
            _ if self.status == NotIssued => Err(InvitationError::NotFound),
            InvitationCommand::Accept { by } => {
                self.answer(by, Accepted, InvitationEvent::InvitationAccepted { invitee_id: by })
            }
            InvitationCommand::Decline { by } => {
                self.answer(by, Declined, InvitationEvent::InvitationDeclined { invitee_id: by })
            }
            InvitationCommand::Revoke { by } if self.host != Some(by) => Err(InvitationError::NotTheHost),
            InvitationCommand::Revoke { .. } if self.status == Revoked => Ok(vec![]),
            InvitationCommand::Revoke { by } => Ok(vec![InvitationEvent::InvitationRevoked { revoked_by: by }]),
            InvitationCommand::BindAccount { .. } if self.email.is_none() => Err(InvitationError::Mismatch),
            InvitationCommand::BindAccount { account } => match self.invitee_id {
                Some(bound) if bound == account => Ok(vec![]),
                Some(_) => Err(InvitationError::BoundToAnotherAccount),
                None => Ok(vec![InvitationEvent::InvitationBoundToAccount { invitee_id: account }]),
            },
        }
    }

    fn issue(&self, room: RoomId, host: UserId, invitee: Invitee) -> Result<Vec<InvitationEvent>, InvitationError> {
        if invitee == Invitee::User(host) {
            return Err(InvitationError::CannotInviteYourself);
        }
        let (invitee_id, email) = match invitee {
            Invitee::User(user) => (Some(user), None),
            Invitee::Email(email) => (None, Some(email)),
        };
        if self.status != InvitationStatus::NotIssued {
            let same_invitee = match &email {
                Some(email) => self.email.as_ref() == Some(email),
                None => self.email.is_none() && self.invitee_id == invitee_id,
            };
            if self.room != Some(room) || !same_invitee {
                return Err(InvitationError::Mismatch);
            }
            // Inviting someone already invited changes nothing.
            if matches!(self.status, InvitationStatus::Pending | InvitationStatus::Accepted) {
                return Ok(vec![]);
            }
        }
        Ok(vec![InvitationEvent::InvitationIssued { room_id: room, host_id: host, invitee_id, email }])
    }

    /// The invitee's answer, `event`, unless the invitation already stands at `answered`.
    fn answer(
        &self,
        user: UserId,
        answered: InvitationStatus,
        event: InvitationEvent,
    ) -> Result<Vec<InvitationEvent>, InvitationError> {
        if self.invitee_id != Some(user) {
            return Err(InvitationError::NotTheInvitee);
        }
        if self.status == InvitationStatus::Revoked {
            return Err(InvitationError::Revoked);
        }
        Ok(if self.status == answered { vec![] } else { vec![event] })
    }
}

impl Aggregate for Invitation {
    const TYPE: &'static str = "invitation";
    type Command = InvitationCommand;
    type Event = InvitationEvent;
    type Error = InvitationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InvitationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), InvitationError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: InvitationEvent) {
        match event {
            InvitationEvent::InvitationIssued { room_id, host_id, invitee_id, email } => {
                self.room = Some(room_id);
                self.host = Some(host_id);
                // A re-issued email invitation keeps the account it was bound to.
                self.invitee_id = invitee_id.or(self.invitee_id);
                self.email = email;
                self.status = InvitationStatus::Pending;
            }
            InvitationEvent::InvitationAccepted { .. } => self.status = InvitationStatus::Accepted,
            InvitationEvent::InvitationDeclined { .. } => self.status = InvitationStatus::Declined,
            InvitationEvent::InvitationRevoked { .. } => self.status = InvitationStatus::Revoked,
            InvitationEvent::InvitationBoundToAccount { invitee_id } => self.invitee_id = Some(invitee_id),
        }
    }
}
