//! Registering an account, and settling a registration that was cut short.
//!
//! Registering is three commands: claim the address (`EmailClaim`), register the
//! account, confirm the claim. The claim comes first: two registrations of one
//! address meet at the same claim aggregate and only one can append, so the loser
//! gets a clean refusal instead of tripping over a read model's unique index.
//! [`register`] runs the three; the caller names each command's metadata (its
//! ids come from the request's idempotency key when it has one), so a retried
//! request stores nothing twice: each command is stored once under its id.
//!
//! A process that dies, or a store that fails, between the commands leaves the
//! claim pending and the address taken. [`settle`] finishes or undoes such a
//! registration; the gateway's registration manager runs it on claims left
//! pending past a grace period, and [`register`] runs it at once when the account
//! step is refused:
//!
//! 1. `AbandonRegistration` on the claiming account. The account decides: if it
//!    was registered, it refuses (`AlreadyRegistered`) and the claim is
//!    confirmed; otherwise it records that it will never be registered, and
//!    the claim is released, so the address is free at once.
//! 2. `Confirm` or `Release` on the claim.
//!
//! The order matters. Releasing first would let a registration that is merely
//! slow land after the release, leaving an account whose address another account
//! may claim. Abandoning first turns that late registration into a refusal: the
//! account's optimistic concurrency lets only one of `Register` and
//! `AbandonRegistration` append.
//!
//! Every settling command has an id derived from the claim (or account), and the
//! aggregates treat repeats as no-ops, so two managers, a manager and the
//! registering request itself, or a retry after an outage never do anything twice.

use std::time::Duration;

use chrono::Utc;
use rapat_domain::account::{
    Account, AccountCommand, AccountError, Email, EmailClaim, EmailClaimCommand, EmailClaimError, PersonName,
    TokenRequest,
};
use rapat_domain::credentials::Password;
use rapat_domain::ids::UserId;
use uuid::Uuid;

use crate::{CommandBus, CommandError, CommandMetadata};

/// The namespace of the settling commands' ids. Fixed: a changed namespace would
/// give a repeated command a new id.
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x3b0e_51c4_7a2d_4f19_8c6e_0d5a_9f21_b7e4);

/// The longest a refused registration waits for its claim to be settled before
/// it answers; whatever is left, the registration manager finishes.
const SETTLE_NOW_LIMIT: Duration = Duration::from_secs(1);

/// A new account, parsed.
#[derive(Debug)]
pub struct Registration {
    /// The new account's id (from the request's idempotency key when it has one,
    /// so that a retry names the account the first attempt created).
    pub account: UserId,
    pub email: Email,
    pub password: Password,
    pub first_name: PersonName,
    pub last_name: PersonName,
    /// The email verification token to ask for with the account (SPEC §7).
    pub verification: Option<TokenRequest>,
}

/// The metadata of each of a registration's commands: their ids, actor and
/// correlation are the caller's.
#[derive(Clone, Debug)]
pub struct RegistrationCommands {
    pub claim: CommandMetadata,
    pub register: CommandMetadata,
    pub confirm: CommandMetadata,
}

/// A registration that was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    pub account: UserId,
    /// The stream sequence of the account's registration: what a reader waits for
    /// to see the account.
    pub account_sequence: u64,
    /// False when confirming the claim failed: the account exists and can log in,
    /// and the registration manager confirms the claim later.
    pub claim_confirmed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The address could not be claimed (taken by another account, or the store
    /// failed); nothing was registered.
    #[error("claiming the address: {0}")]
    Claim(CommandError<EmailClaimError>),
    /// The account step failed after the claim. Unless the store was unavailable
    /// or the outcome is unknown, the claim was settled before this answer (or is
    /// left to the registration manager), so the address is free again.
    #[error("registering the account: {0}")]
    Account(CommandError<AccountError>),
}

/// Claims the address, registers the account, confirms the claim.
pub async fn register(
    accounts: &CommandBus<Account>,
    emails: &CommandBus<EmailClaim>,
    registration: Registration,
    commands: RegistrationCommands,
) -> Result<Registered, RegistrationError> {
    let Registration { account, email, password, first_name, last_name, verification } = registration;
    let claim_id = email.claim_id();
    let claim = EmailClaimCommand::Claim { email: email.clone(), account, now: Utc::now() };
    let claimed =
        emails.execute(&claim_id.to_string(), claim, commands.claim).await.map_err(RegistrationError::Claim)?;
    let register = AccountCommand::Register { email, password, first_name, last_name, verification };
    let registered = match accounts.execute(&account.to_string(), register, commands.register).await {
        Ok(registered) => registered,
        Err(error) => {
            if !(error.is_unavailable() || error.is_outcome_unknown()) {
                settle_now(accounts, emails, PendingClaim { claim_id, account, claim_version: claimed.version }).await;
            }
            // The registration is not stored, whatever the claim's steps stored: the
            // request's answer must not read as "stored, not visible yet".
            if !error.is_outcome_unknown() {
                crate::deadline::not_applied();
            }
            return Err(RegistrationError::Account(error));
        }
    };
    let confirm = EmailClaimCommand::Confirm { account };
    let claim_confirmed = match emails.execute(&claim_id.to_string(), confirm, commands.confirm).await {
        Ok(_) => true,
        Err(error) => {
            // The account exists and can log in; confirming is bookkeeping that the
            // registration manager finishes.
            tracing::warn!(%account, %error, "the new account's email claim is left for the registration manager to confirm");
            false
        }
    };
    Ok(Registered { account, account_sequence: registered.stream_sequence, claim_confirmed })
}

/// Settles the claim of a registration whose account step was refused now rather
/// than after the grace period, so that trying again (after a 503 for busy
/// hashing, say) finds the address free. Not while the store is unavailable or
/// the account step's outcome is unknown (that would only make the answer wait
/// longer, and a retry with the same ids must find the registration as it was),
/// and never for long.
async fn settle_now(accounts: &CommandBus<Account>, emails: &CommandBus<EmailClaim>, claim: PendingClaim) {
    match tokio::time::timeout(SETTLE_NOW_LIMIT, settle(accounts, emails, claim)).await {
        Ok(Ok(settled)) => {
            tracing::info!(account = %claim.account, ?settled, "settled the claim of a failed registration")
        }
        Ok(Err(error)) => {
            tracing::warn!(account = %claim.account, %error, "left the claim of a failed registration to the registration manager");
        }
        Err(_) => {
            tracing::warn!(account = %claim.account, "settling the claim of a failed registration took too long; left to the registration manager")
        }
    }
}

/// One claim of an address by an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingClaim {
    /// The claim aggregate's id (`Email::claim_id`).
    pub claim_id: Uuid,
    pub account: UserId,
    /// The claim aggregate's version at the claim, so that a later claim of the
    /// same address gets command ids of its own.
    pub claim_version: u64,
}

/// How a pending claim was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The account had been registered: the claim is confirmed.
    Confirmed,
    /// The account will never be registered: the address is free.
    Released,
    /// Someone settled it before.
    Already,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("abandoning the registration: {0}")]
    Account(CommandError<AccountError>),
    #[error("settling the email claim: {0}")]
    Claim(CommandError<EmailClaimError>),
}

impl SettleError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Account(error) => error.is_unavailable(),
            Self::Claim(error) => error.is_unavailable(),
        }
    }
}

/// Confirms `claim` if its account was registered, and otherwise makes sure it
/// never will be and releases the claim. Safe to repeat and to run concurrently.
pub async fn settle(
    accounts: &CommandBus<Account>,
    emails: &CommandBus<EmailClaim>,
    claim: PendingClaim,
) -> Result<Settled, SettleError> {
    let PendingClaim { claim_id, account, claim_version } = claim;
    let abandon_id = settling_id(&format!("account/{account}/abandon-registration"));
    let abandoned =
        accounts.execute(&account.to_string(), AccountCommand::AbandonRegistration, system(abandon_id)).await;
    let (command, settled, step) = match abandoned {
        Ok(_) => (EmailClaimCommand::Release { account }, Settled::Released, "release"),
        Err(CommandError::Rejected(AccountError::AlreadyRegistered)) => {
            (EmailClaimCommand::Confirm { account }, Settled::Confirmed, "confirm")
        }
        Err(error) => return Err(SettleError::Account(error)),
    };
    let id = settling_id(&format!("claim/{claim_id}/{claim_version}/{step}"));
    let outcome = emails.execute(&claim_id.to_string(), command, system(id)).await.map_err(SettleError::Claim)?;
    Ok(if outcome.events.is_empty() || outcome.duplicate { Settled::Already } else { settled })
}

fn settling_id(name: &str) -> Uuid {
    Uuid::new_v5(&COMMAND_NAMESPACE, name.as_bytes())
}

fn system(command_id: Uuid) -> CommandMetadata {
    CommandMetadata::system().with_command_id(command_id)
}
