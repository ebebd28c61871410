//! What can be asked of an invitation. Who may ask (is the actor the room's host?
//! does the email belong to an account?) needs other aggregates and read models and
//! is the command layer's to check; the invitation keeps its own rules.

use crate::ids::{RoomId, UserId};

use super::Invitee;

#[derive(Clone, Debug)]
pub enum InvitationCommand {
    /// The host invites someone to a room: an account, or an email address that may
    /// have none yet.
    Issue {
        room: RoomId,
        host: UserId,
        invitee: Invitee,
    },
    Accept {
        by: UserId,
    },
    Decline {
        by: UserId,
    },
    Revoke {
        by: UserId,
    },
    /// The account registered with an invited email address takes the invitation
    /// over, so that it can accept or decline it.
    BindAccount {
        account: UserId,
    },
}
