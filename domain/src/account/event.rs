//! What happened to an account or an email claim. Payload shapes are a stored
//! contract (see `schemas/events/account/` and `schemas/events/email/`): a change
//! bumps the variant's version in [`AccountEvent::event_version`] and teaches
//! [`Upcast`] to bring the old shape forward.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use uuid::Uuid;

use super::token::TokenHash;
use super::types::{AccountStatus, Avatar, Email, PersonName, Role};
use crate::credentials::PasswordHash;
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum AccountEvent {
    /// Version 2 added `role`; version 1 accounts were all members.
    AccountRegistered {
        email: Email,
        password_hash: PasswordHash,
        first_name: PersonName,
        last_name: PersonName,
        role: Role,
    },
    /// Only what changed is present; `avatar_removed` is true when the avatar was
    /// taken away (a new one arrives as `avatar` instead).
    ProfileUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<PersonName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_name: Option<PersonName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        avatar: Option<Avatar>,
        #[serde(default)]
        avatar_removed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<AccountStatus>,
    },
    PasswordChanged {
        password_hash: PasswordHash,
    },
    StatusChanged {
        status: AccountStatus,
    },
    RoleGranted {
        role: Role,
    },
    /// An email verification token was sent for (at registration). The token is
    /// derived from `request_id` (see `token.rs`); only its hash is kept.
    EmailVerificationRequested {
        request_id: Uuid,
        token_hash: TokenHash,
    },
    /// The verification token came back: the address is the account holder's.
    EmailVerified {},
    /// A password reset token was asked for; it is valid once, until `expires_at`.
    PasswordResetRequested {
        request_id: Uuid,
        token_hash: TokenHash,
        expires_at: DateTime<Utc>,
    },
    /// The password was set with the reset token `token_hash`; every session of
    /// the account is to be revoked.
    PasswordReset {
        password_hash: PasswordHash,
        token_hash: TokenHash,
    },
    /// A registration that never completed was given up (see
    /// `AccountCommand::AbandonRegistration`); the account stays unregistered.
    RegistrationAbandoned {},
}

impl AccountEvent {
    /// The schema version this build writes for an event type, `None` for a type it
    /// does not know.
    fn current_version(event_type: &str) -> Option<u32> {
        match event_type {
            "AccountRegistered" => Some(2),
            "ProfileUpdated"
            | "PasswordChanged"
            | "StatusChanged"
            | "RoleGranted"
            | "RegistrationAbandoned"
            | "EmailVerificationRequested"
            | "EmailVerified"
            | "PasswordResetRequested"
            | "PasswordReset" => Some(1),
            _ => None,
        }
    }
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::ProfileUpdated { .. } => "ProfileUpdated",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::StatusChanged { .. } => "StatusChanged",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::RegistrationAbandoned {} => "RegistrationAbandoned",
            Self::EmailVerificationRequested { .. } => "EmailVerificationRequested",
            Self::EmailVerified {} => "EmailVerified",
            Self::PasswordResetRequested { .. } => "PasswordResetRequested",
            Self::PasswordReset { .. } => "PasswordReset",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        let version = Self::current_version(&self.event_type()).unwrap_or(1);
        version.to_string()
    }
}

impl Upcast for AccountEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        // An unknown type passes through: decoding then fails naming the type.
        let Some(current) = Self::current_version(event_type) else { return Ok(payload) };
        refuse_newer(event_type, schema_version, current)?;
        match (event_type, schema_version, payload) {
            ("AccountRegistered", 1, Value::Object(mut fields)) => {
                // Roles came with version 2; every account before that was a member.
                fields.insert("role".to_owned(), serde_json::to_value(Role::Member).map_err(|e| malformed(1, e))?);
                Ok(Value::Object(fields))
            }
            ("AccountRegistered", 1, other) => Err(malformed(1, format!("expected an object, got {other}"))),
            (_, _, payload) => Ok(payload),
        }
    }
}

fn malformed(schema_version: u32, reason: impl ToString) -> UpcastError {
    UpcastError::Malformed { event_type: "AccountRegistered".to_owned(), schema_version, reason: reason.to_string() }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum EmailClaimEvent {
    /// Schema v2 added `claimedAt`; a v1 claim (`None`) predates confirmation and
    /// counts as confirmed.
    EmailClaimed { email: Email, account_id: UserId, claimed_at: Option<DateTime<Utc>> },
    /// The account holding the claim was registered: the claim is final.
    EmailClaimConfirmed { account_id: UserId },
    /// The account holding the claim was never registered (its registration was
    /// abandoned): the address is free for the next registration.
    EmailClaimReleased { account_id: UserId },
}

impl DomainEvent for EmailClaimEvent {
    fn event_type(&self) -> String {
        match self {
            Self::EmailClaimed { .. } => "EmailClaimed".to_owned(),
            Self::EmailClaimConfirmed { .. } => "EmailClaimConfirmed".to_owned(),
            Self::EmailClaimReleased { .. } => "EmailClaimReleased".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        match self {
            Self::EmailClaimed { .. } => "2".to_owned(),
            Self::EmailClaimConfirmed { .. } | Self::EmailClaimReleased { .. } => "1".to_owned(),
        }
    }
}

impl Upcast for EmailClaimEvent {
    fn upcast(event_type: &str, schema_version: u32, mut payload: Value) -> Result<Value, UpcastError> {
        match event_type {
            "EmailClaimed" => {
                refuse_newer(event_type, schema_version, 2)?;
                if schema_version < 2
                    && let Value::Object(fields) = &mut payload
                {
                    fields.entry("claimedAt").or_insert(Value::Null);
                }
                Ok(payload)
            }
            _ => {
                refuse_newer(event_type, schema_version, 1)?;
                Ok(payload)
            }
        }
    }
}
