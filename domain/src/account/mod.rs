//! Accounts (who a user is: email, password hash, profile, role) and email claims
//! (which account owns an address, so that two registrations cannot share one).
//!
//! Registration runs as three commands: `EmailClaimCommand::Claim` on the aggregate
//! `email.claim_id()`, `AccountCommand::Register` on the new account, then
//! `EmailClaimCommand::Confirm`. The claim is what makes uniqueness race-free, since
//! both registrations of one address meet at the same claim aggregate and the event
//! store lets only one of them append. A registration cut short is finished or
//! undone later: `Confirm` if the account was registered, otherwise
//! `AccountCommand::AbandonRegistration` and then `EmailClaimCommand::Release`. The
//! account decides between the two (it is registered or abandoned, never both), so
//! a registration that lands late cannot meet a released claim.

mod claim;
mod command;
mod error;
mod event;
#[cfg(test)]
mod recovery_tests;
mod token;
mod types;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use claim::EmailClaim;
pub use command::{AccountCommand, EmailClaimCommand};
pub use error::{AccountError, AccountInputError, EmailClaimError};
pub use event::{AccountEvent, EmailClaimEvent};
pub use token::{AccountToken, AccountTokenKey, MalformedAccountToken, TokenHash, TokenPurpose, TokenRequest};
pub use types::{AccountStatus, Avatar, AvatarChange, Email, PersonName, Role};

use crate::credentials::PasswordHash;
use crate::services::DomainServices;

/// An account as its events made it. `Default` is the account before registration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    email: Option<Email>,
    password_hash: Option<PasswordHash>,
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    avatar: Option<Avatar>,
    status: AccountStatus,
    role: Role,
    /// Its registration was given up: it can never be registered.
    #[serde(default)]
    abandoned: bool,
    #[serde(default)]
    email_verified: bool,
    /// The hash of the verification token sent at registration.
    #[serde(default)]
    verification: Option<TokenHash>,
    /// Reset tokens asked for and not yet used, newest last (at most
    /// [`Account::MAX_PENDING_RESETS`]); a reset spends them all.
    #[serde(default)]
    pending_resets: Vec<PendingReset>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingReset {
    token_hash: TokenHash,
    expires_at: DateTime<Utc>,
}

impl Account {
    /// Reset tokens kept per account: asking again and again keeps only the newest.
    pub const MAX_PENDING_RESETS: usize = 5;

    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    pub fn is_registered(&self) -> bool {
        self.email.is_some()
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    pub fn password_hash(&self) -> Option<&PasswordHash> {
        self.password_hash.as_ref()
    }

    pub fn first_name(&self) -> Option<&PersonName> {
        self.first_name.as_ref()
    }

    pub fn last_name(&self) -> Option<&PersonName> {
        self.last_name.as_ref()
    }

    pub fn avatar(&self) -> Option<&Avatar> {
        self.avatar.as_ref()
    }

    pub fn status(&self) -> AccountStatus {
        self.status
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Decides what a command does to this account, without changing it.
    async fn decide(
        &self,
        command: AccountCommand,
        services: &DomainServices,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if let AccountCommand::AbandonRegistration = command {
            return match (self.is_registered(), self.abandoned) {
                (true, _) => Err(AccountError::AlreadyRegistered),
                (false, true) => Ok(vec![]),
                (false, false) => Ok(vec![AccountEvent::RegistrationAbandoned {}]),
            };
        }
        if let AccountCommand::Register { email, password, first_name, last_name, verification } = command {
            if self.is_registered() {
                return Err(AccountError::AlreadyRegistered);
            }
            if self.abandoned {
                return Err(AccountError::RegistrationAbandoned);
            }
            let password_hash = services.passwords.hash(&password).await?;
            let mut events = vec![AccountEvent::AccountRegistered {
                email,
                password_hash,
                first_name,
                last_name,
                role: Role::Member,
            }];
            if let Some(TokenRequest { request_id, token_hash }) = verification {
                events.push(AccountEvent::EmailVerificationRequested { request_id, token_hash });
            }
            return Ok(events);
        }
        let current_hash = self.password_hash.as_ref().ok_or(AccountError::NotFound)?;
        match command {
            // Answered above; listed so that the match needs no wildcard arm.
            AccountCommand::Register { .. } => Err(AccountError::AlreadyRegistered),
            AccountCommand::AbandonRegistration => Err(AccountError::AlreadyRegistered),
            AccountCommand::UpdateProfile { first_name, last_name, avatar, status } => {
                let first_name = first_name.filter(|new| self.first_name.as_ref() != Some(new));
                let last_name = last_name.filter(|new| self.last_name.as_ref() != Some(new));
                let status = status.filter(|new| *new != self.status);
                let (avatar, avatar_removed) = match avatar {
                    Some(AvatarChange::Set(new)) if self.avatar.as_ref() != Some(&new) => (Some(new), false),
                    Some(AvatarChange::Remove) if self.avatar.is_some() => (None, true),
                    _ => (None, false),
                };
                if first_name.is_none()
                    && last_name.is_none()
                    && avatar.is_none()
                    && !avatar_removed
                    && status.is_none()
                {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::ProfileUpdated { first_name, last_name, avatar, avatar_removed, status }])
            }
            AccountCommand::ChangePassword { current, new } => {
                if !services.passwords.verify(&current, current_hash).await? {
                    return Err(AccountError::WrongPassword);
                }
                let password_hash = services.passwords.hash(&new).await?;
                Ok(vec![AccountEvent::PasswordChanged { password_hash }])
            }
            AccountCommand::SetStatus { status } if status == self.status => Ok(vec![]),
            AccountCommand::SetStatus { status } => Ok(vec![AccountEvent::StatusChanged { status }]),
            AccountCommand::RequestPasswordReset { request, expires_at } => {
                Ok(vec![AccountEvent::PasswordResetRequested {
                    request_id: request.request_id,
                    token_hash: request.token_hash,
                    expires_at,
                }])
            }
            AccountCommand::ResetPassword { token, new, now } => {
                let pending = self
                    .pending_resets
                    .iter()
                    .find(|pending| pending.token_hash == token)
                    .ok_or(AccountError::InvalidToken)?;
                if pending.expires_at <= now {
                    return Err(AccountError::TokenExpired);
                }
                let password_hash = services.passwords.hash(&new).await?;
                Ok(vec![AccountEvent::PasswordReset { password_hash, token_hash: token }])
            }
            AccountCommand::VerifyEmail { token } if self.verification.as_ref() != Some(&token) => {
                Err(AccountError::InvalidToken)
            }
            AccountCommand::VerifyEmail { .. } if self.email_verified => Ok(vec![]),
            AccountCommand::VerifyEmail { .. } => Ok(vec![AccountEvent::EmailVerified {}]),
            AccountCommand::GrantRole { role } if role == self.role => Ok(vec![]),
            AccountCommand::GrantRole { role } => Ok(vec![AccountEvent::RoleGranted { role }]),
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = DomainServices;

    async fn handle(
        &mut self,
        command: AccountCommand,
        services: &DomainServices,
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        for event in self.decide(command, services).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::AccountRegistered { email, password_hash, first_name, last_name, role } => {
                self.email = Some(email);
                self.password_hash = Some(password_hash);
                self.first_name = Some(first_name);
                self.last_name = Some(last_name);
                self.role = role;
            }
            AccountEvent::ProfileUpdated { first_name, last_name, avatar, avatar_removed, status } => {
                if first_name.is_some() {
                    self.first_name = first_name;
                }
                if last_name.is_some() {
                    self.last_name = last_name;
                }
                if avatar_removed {
                    self.avatar = None;
                }
                if avatar.is_some() {
                    self.avatar = avatar;
                }
                if let Some(status) = status {
                    self.status = status;
                }
            }
            AccountEvent::PasswordChanged { password_hash } => self.password_hash = Some(password_hash),
            AccountEvent::StatusChanged { status } => self.status = status,
            AccountEvent::RoleGranted { role } => self.role = role,
            AccountEvent::RegistrationAbandoned {} => self.abandoned = true,
            AccountEvent::EmailVerificationRequested { token_hash, .. } => self.verification = Some(token_hash),
            AccountEvent::EmailVerified {} => self.email_verified = true,
            AccountEvent::PasswordResetRequested { token_hash, expires_at, .. } => {
                if self.pending_resets.len() >= Self::MAX_PENDING_RESETS {
                    self.pending_resets.remove(0);
                }
                self.pending_resets.push(PendingReset { token_hash, expires_at });
            }
            AccountEvent::PasswordReset { password_hash, .. } => {
                self.password_hash = Some(password_hash);
                self.pending_resets.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cqrs_es::test::TestFramework;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::credentials::Password;
    use crate::envelope::{EventCodecError, StoredEvent, UpcastError, decode_event};
    use crate::services::testing::MarkedHasher;

    fn account() -> TestFramework<Account> {
        TestFramework::with(MarkedHasher::services())
    }

    fn email() -> Email {
        Email::parse("ana@example.com".to_owned()).expect("valid email")
    }

    fn person(raw: &str) -> PersonName {
        PersonName::parse(raw.to_owned()).expect("valid name")
    }

    fn password(raw: &str) -> Password {
        Password::parse_for_account(raw.to_owned()).expect("valid password")
    }

    fn avatar() -> Avatar {
        Avatar::parse("data:image/png;base64,iVBORw0KGgo=".to_owned()).expect("valid avatar")
    }

    fn registered() -> AccountEvent {
        AccountEvent::AccountRegistered {
            email: email(),
            password_hash: MarkedHasher::hash_of("password1"),
            first_name: person("Ana"),
            last_name: person("Putri"),
            role: Role::Member,
        }
    }

    fn update(avatar: Option<AvatarChange>, status: Option<AccountStatus>) -> AccountCommand {
        AccountCommand::UpdateProfile { first_name: Some(person("Ana")), last_name: None, avatar, status }
    }

    #[test]
    fn register_records_a_member_with_a_hashed_password() {
        let command = AccountCommand::Register {
            email: email(),
            password: password("password1"),
            first_name: person("Ana"),
            last_name: person("Putri"),
            verification: None,
        };
        account().given_no_previous_events().when(command.clone()).then_expect_events(vec![registered()]);
        account().given(vec![registered()]).when(command).then_expect_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn an_unregistered_account_can_be_abandoned_once_and_then_never_registered() {
        let abandoned = AccountEvent::RegistrationAbandoned {};
        let register = AccountCommand::Register {
            email: email(),
            password: password("password1"),
            first_name: person("Ana"),
            last_name: person("Putri"),
            verification: None,
        };
        account()
            .given_no_previous_events()
            .when(AccountCommand::AbandonRegistration)
            .then_expect_events(vec![abandoned.clone()]);
        account().given(vec![abandoned.clone()]).when(AccountCommand::AbandonRegistration).then_expect_events(vec![]);
        account().given(vec![abandoned.clone()]).when(register).then_expect_error(AccountError::RegistrationAbandoned);
        account()
            .given(vec![abandoned])
            .when(AccountCommand::SetStatus { status: AccountStatus::Busy })
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn a_registered_account_cannot_be_abandoned() {
        account()
            .given(vec![registered()])
            .when(AccountCommand::AbandonRegistration)
            .then_expect_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn every_command_needs_a_registered_account() {
        let commands = [
            update(None, None),
            AccountCommand::ChangePassword { current: password("password1"), new: password("password2") },
            AccountCommand::SetStatus { status: AccountStatus::Busy },
            AccountCommand::GrantRole { role: Role::Admin },
        ];
        for command in commands {
            account().given_no_previous_events().when(command).then_expect_error(AccountError::NotFound);
        }
    }

    #[test]
    fn update_profile_records_only_what_changed() {
        let command = update(Some(AvatarChange::Set(avatar())), Some(AccountStatus::Away));
        let expected = AccountEvent::ProfileUpdated {
            first_name: None,
            last_name: None,
            avatar: Some(avatar()),
            avatar_removed: false,
            status: Some(AccountStatus::Away),
        };
        account().given(vec![registered()]).when(command).then_expect_events(vec![expected.clone()]);
        let again = update(Some(AvatarChange::Set(avatar())), Some(AccountStatus::Away));
        account().given(vec![registered(), expected]).when(again).then_expect_events(vec![]);
    }

    #[test]
    fn update_profile_removes_the_avatar_once() {
        let with_avatar = AccountEvent::ProfileUpdated {
            first_name: None,
            last_name: None,
            avatar: Some(avatar()),
            avatar_removed: false,
            status: None,
        };
        let removed = AccountEvent::ProfileUpdated {
            first_name: None,
            last_name: None,
            avatar: None,
            avatar_removed: true,
            status: None,
        };
        let remove = || update(Some(AvatarChange::Remove), None);
        account().given(vec![registered(), with_avatar]).when(remove()).then_expect_events(vec![removed]);
        account().given(vec![registered()]).when(remove()).then_expect_events(vec![]);
    }

    #[test]
    fn change_password_checks_the_current_one() {
        let change =
            |current| AccountCommand::ChangePassword { current: password(current), new: password("password2") };
        let changed = AccountEvent::PasswordChanged { password_hash: MarkedHasher::hash_of("password2") };
        account().given(vec![registered()]).when(change("password1")).then_expect_events(vec![changed]);
        account().given(vec![registered()]).when(change("password9")).then_expect_error(AccountError::WrongPassword);
    }

    #[test]
    fn set_status_records_a_change_only() {
        let busy = || AccountCommand::SetStatus { status: AccountStatus::Busy };
        let changed = AccountEvent::StatusChanged { status: AccountStatus::Busy };
        account().given(vec![registered()]).when(busy()).then_expect_events(vec![changed.clone()]);
        account().given(vec![registered(), changed]).when(busy()).then_expect_events(vec![]);
    }

    #[test]
    fn grant_role_records_a_change_only() {
        let admin = || AccountCommand::GrantRole { role: Role::Admin };
        let granted = AccountEvent::RoleGranted { role: Role::Admin };
        account().given(vec![registered()]).when(admin()).then_expect_events(vec![granted.clone()]);
        account().given(vec![registered(), granted]).when(admin()).then_expect_events(vec![]);
    }

    #[test]
    fn state_follows_the_events_and_survives_a_snapshot() {
        let mut state = Account::default();
        assert!(!state.is_registered());
        state.apply(registered());
        state.apply(AccountEvent::ProfileUpdated {
            first_name: Some(person("Siti")),
            last_name: None,
            avatar: Some(avatar()),
            avatar_removed: false,
            status: None,
        });
        state.apply(AccountEvent::RoleGranted { role: Role::Admin });
        assert_eq!(state.email(), Some(&email()));
        assert_eq!((state.first_name(), state.last_name()), (Some(&person("Siti")), Some(&person("Putri"))));
        assert_eq!(
            (state.avatar(), state.status(), state.role()),
            (Some(&avatar()), AccountStatus::Active, Role::Admin)
        );
        assert_eq!(state.password_hash(), Some(&MarkedHasher::hash_of("password1")));

        let snapshot = serde_json::to_value(&state).expect("an account serialises");
        let restored: Account = serde_json::from_value(snapshot).expect("a snapshot loads");
        assert_eq!(restored, state);

        let mut abandoned = Account::default();
        abandoned.apply(AccountEvent::RegistrationAbandoned {});
        let mut snapshot = serde_json::to_value(&abandoned).expect("an account serialises");
        assert_eq!(serde_json::from_value::<Account>(snapshot.clone()).ok(), Some(abandoned));
        // A snapshot taken before abandoning existed loads as not abandoned.
        snapshot.as_object_mut().map(|fields| fields.remove("abandoned"));
        assert_eq!(serde_json::from_value::<Account>(snapshot).ok(), Some(Account::default()));
    }

    fn stored(event_type: &str, schema_version: u32, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::from_u128(7),
            aggregate_type: Account::TYPE.to_owned(),
            aggregate_id: Uuid::from_u128(8).to_string(),
            aggregate_version: 1,
            event_type: event_type.to_owned(),
            schema_version,
            timestamp: Utc::now(),
            actor: None,
            correlation_id: None,
            command_id: "register-1".to_owned(),
            payload,
        }
    }

    #[test]
    fn version_1_registrations_load_as_members() {
        let v1 = json!({
            "email": "ana@example.com",
            "passwordHash": "test-hash:password1",
            "firstName": "Ana",
            "lastName": "Putri",
        });
        let decoded = decode_event::<AccountEvent>(&stored("AccountRegistered", 1, v1));
        assert_eq!(decoded.ok(), Some(registered()));
    }

    #[test]
    fn payloads_from_a_newer_build_are_refused() {
        let payload = serde_json::to_value(registered()).expect("an event serialises")["AccountRegistered"].take();
        let decoded = decode_event::<AccountEvent>(&stored("AccountRegistered", 3, payload));
        let expected = UpcastError::FromTheFuture { event_type: "AccountRegistered".to_owned(), schema_version: 3 };
        assert!(matches!(decoded, Err(EventCodecError::Upcast(error)) if error == expected));
    }

    #[test]
    fn a_version_1_payload_that_is_not_an_object_is_malformed() {
        let decoded = decode_event::<AccountEvent>(&stored("AccountRegistered", 1, json!("ana")));
        assert!(matches!(decoded, Err(EventCodecError::Upcast(UpcastError::Malformed { .. }))));
    }
}
