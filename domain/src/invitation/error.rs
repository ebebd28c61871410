//! Why an invitation refused a command.

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("you cannot invite yourself")]
    CannotInviteYourself,
    #[error("no such invitation")]
    NotFound,
    #[error("only the invited user can answer this invitation")]
    NotTheInvitee,
    #[error("only the host who sent this invitation can revoke it")]
    NotTheHost,
    #[error("this invitation was revoked")]
    Revoked,
    #[error("this invitation already belongs to another account")]
    BoundToAnotherAccount,
    /// A command addressed to the invitation of another room or invitee: its id is
    /// derived from both, so this is a routing bug, not a user mistake.
    #[error("this invitation is for another room or invitee")]
    Mismatch,
}
