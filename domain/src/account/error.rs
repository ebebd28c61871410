//! Why an account or an email claim refused a command, and why a value is not a
//! valid part of an account.

use crate::services::HashingError;

/// A command the account refuses. [`AccountError::Hashing`] is the password
/// service failing, not a decision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("an account is already registered here")]
    AlreadyRegistered,
    #[error("the account does not exist")]
    NotFound,
    #[error("the current password is wrong")]
    WrongPassword,
    /// The registration took too long and was given up; a new one may start.
    #[error("the registration took too long and was abandoned")]
    RegistrationAbandoned,
    /// A reset or verification token that this account never issued, or one
    /// already used.
    #[error("the token is not valid or was already used")]
    InvalidToken,
    #[error("the token has expired")]
    TokenExpired,
    #[error(transparent)]
    Hashing(#[from] HashingError),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailClaimError {
    #[error("the email address is already in use")]
    EmailTaken,
    #[error("the email address is not claimed by this account")]
    NotClaimedBy,
    #[error("the email claim is confirmed and cannot be released")]
    AlreadyConfirmed,
}

/// A value that cannot be part of an account (a 400 at the API).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountInputError {
    #[error("the email address is not valid")]
    EmailInvalid,
    #[error("the email address must be at most {max} characters long")]
    EmailTooLong { max: usize },
    #[error("the name must not be empty")]
    NameEmpty,
    #[error("the name must be at most {max} characters long")]
    NameTooLong { max: usize },
    #[error("the name must not contain control characters")]
    NameHasControlCharacters,
    #[error("the avatar must be a PNG, JPEG, GIF or WebP image as a base64 data URL")]
    AvatarNotAnImage,
    #[error("the avatar must be at most {max_bytes} bytes")]
    AvatarTooLarge { max_bytes: usize },
}
