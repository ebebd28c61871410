//! What can be asked of an account and of an email claim. Commands hold parsed
//! values only; `Clone` because the store retries a command after a conflict.

use chrono::{DateTime, Utc};

use super::token::{TokenHash, TokenRequest};
use super::types::{AccountStatus, AvatarChange, Email, PersonName, Role};
use crate::credentials::Password;
use crate::ids::UserId;

#[derive(Clone, Debug)]
pub enum AccountCommand {
    Register {
        email: Email,
        password: Password,
        first_name: PersonName,
        last_name: PersonName,
        /// The email verification token to send to the new address; `None`
        /// registers without asking for a verification.
        verification: Option<TokenRequest>,
    },
    /// `None` leaves a field as it is.
    UpdateProfile {
        first_name: Option<PersonName>,
        last_name: Option<PersonName>,
        avatar: Option<AvatarChange>,
        status: Option<AccountStatus>,
    },
    ChangePassword {
        current: Password,
        new: Password,
    },
    SetStatus {
        status: AccountStatus,
    },
    GrantRole {
        role: Role,
    },
    /// A password reset token was asked for; valid until `expires_at`, once.
    RequestPasswordReset {
        request: TokenRequest,
        expires_at: DateTime<Utc>,
    },
    /// Sets a new password with a reset token (its hash). `now` comes from the
    /// caller: the domain has no clock.
    ResetPassword {
        token: TokenHash,
        new: Password,
        now: DateTime<Utc>,
    },
    /// The address is the account holder's: the token sent at registration came back.
    VerifyEmail {
        token: TokenHash,
    },
    /// Gives up a registration that never completed: the account can then never be
    /// registered, so its email claim can be released safely.
    AbandonRegistration,
}

#[derive(Clone, Debug)]
pub enum EmailClaimCommand {
    /// `now` comes from the caller: the domain has no clock.
    Claim { email: Email, account: UserId, now: DateTime<Utc> },
    /// The claiming account was registered.
    Confirm { account: UserId },
    /// The claiming account's registration was abandoned: the address is free again.
    Release { account: UserId },
}
