//! Why a contact list refused a command.

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactListError {
    #[error("you cannot add yourself as a contact")]
    CannotAddSelf,
    #[error("that user is already a contact")]
    AlreadyAContact,
    #[error("that user is not a contact")]
    NotAContact,
    /// A command sent to another user's list: a routing bug, not a user mistake.
    #[error("this contact list belongs to another user")]
    OwnerMismatch,
}
