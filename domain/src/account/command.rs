//! What can be asked of an account and of an email claim. Commands hold parsed
//! values only; `Clone` because the store retries a command after a conflict.

use chrono::{DateTime, Utc};

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
