//! The email claim: one aggregate per normalised address (id `email.claim_id()`),
//! recording which account owns it.
//!
//! Registration claims the address, registers the account, then confirms the
//! claim. A claim left pending (the store went down, the process died) stays the
//! claiming account's until it is confirmed (the account was registered after all)
//! or released (its registration was abandoned first, on the account, so that it
//! can no longer land): the registration manager does one or the other after a
//! short grace. A pending claim is never simply taken over by another account,
//! since the first account's registration might still land.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::command::EmailClaimCommand;
use super::error::EmailClaimError;
use super::event::EmailClaimEvent;
use super::types::Email;
use crate::ids::UserId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailClaim {
    email: Option<Email>,
    account: Option<UserId>,
    claimed_at: Option<DateTime<Utc>>,
    confirmed: bool,
}

impl EmailClaim {
    /// The account that owns the address, if any has claimed it.
    pub fn account(&self) -> Option<UserId> {
        self.account
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// When the pending or confirmed claim was made; `None` when unclaimed, released
    /// or claimed before claims recorded a time.
    pub fn claimed_at(&self) -> Option<DateTime<Utc>> {
        self.claimed_at
    }

    fn decide(&self, command: EmailClaimCommand) -> Result<Option<EmailClaimEvent>, EmailClaimError> {
        match command {
            EmailClaimCommand::Claim { email, account, now } => match self.account {
                // A retried registration claims again for the same account: nothing to do.
                Some(owner) if owner == account => Ok(None),
                Some(_) => Err(EmailClaimError::EmailTaken),
                // Never claimed, or released.
                None => Ok(Some(EmailClaimEvent::EmailClaimed { email, account_id: account, claimed_at: Some(now) })),
            },
            EmailClaimCommand::Confirm { account } => match self.account {
                Some(owner) if owner == account && self.confirmed => Ok(None),
                Some(owner) if owner == account => {
                    Ok(Some(EmailClaimEvent::EmailClaimConfirmed { account_id: account }))
                }
                _ => Err(EmailClaimError::NotClaimedBy),
            },
            EmailClaimCommand::Release { account } => match self.account {
                Some(owner) if owner == account && self.confirmed => Err(EmailClaimError::AlreadyConfirmed),
                Some(owner) if owner == account => {
                    Ok(Some(EmailClaimEvent::EmailClaimReleased { account_id: account }))
                }
                // Released already, or held by another account: nothing of this
                // account's to release (a repeated or late release).
                _ => Ok(None),
            },
        }
    }
}

impl Aggregate for EmailClaim {
    const TYPE: &'static str = "email";
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailClaimError;
    type Services = ();

    async fn handle(
        &mut self,
        command: EmailClaimCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), EmailClaimError> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: EmailClaimEvent) {
        match event {
            EmailClaimEvent::EmailClaimed { email, account_id, claimed_at } => {
                self.email = Some(email);
                self.account = Some(account_id);
                self.claimed_at = claimed_at;
                // A v1 claim (no time) comes from before confirmations existed.
                self.confirmed = claimed_at.is_none();
            }
            EmailClaimEvent::EmailClaimConfirmed { .. } => self.confirmed = true,
            EmailClaimEvent::EmailClaimReleased { .. } => {
                self.account = None;
                self.claimed_at = None;
                self.confirmed = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;
    use crate::envelope::{StoredEvent, decode_event};

    const ANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
    const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));

    fn email() -> Email {
        Email::parse("ana@example.com".to_owned()).expect("valid email")
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, minute, 0).single().expect("valid time")
    }

    fn claim(account: UserId, minute: u32) -> EmailClaimCommand {
        EmailClaimCommand::Claim { email: email(), account, now: at(minute) }
    }

    fn claimed(account: UserId, minute: u32) -> EmailClaimEvent {
        EmailClaimEvent::EmailClaimed { email: email(), account_id: account, claimed_at: Some(at(minute)) }
    }

    fn confirmed(account: UserId) -> EmailClaimEvent {
        EmailClaimEvent::EmailClaimConfirmed { account_id: account }
    }

    #[test]
    fn the_first_claim_wins() {
        TestFramework::<EmailClaim>::with(())
            .given_no_previous_events()
            .when(claim(ANA, 0))
            .then_expect_events(vec![claimed(ANA, 0)]);
    }

    #[test]
    fn claiming_again_for_the_same_account_changes_nothing() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(claim(ANA, 1))
            .then_expect_events(vec![]);
    }

    fn released(account: UserId) -> EmailClaimEvent {
        EmailClaimEvent::EmailClaimReleased { account_id: account }
    }

    #[test]
    fn another_account_cannot_take_a_confirmed_or_pending_claim_however_old() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), confirmed(ANA)])
            .when(claim(BUDI, 30))
            .then_expect_error(EmailClaimError::EmailTaken);
        // Only a release frees a pending claim: ANA's registration might still land.
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(claim(BUDI, 59))
            .then_expect_error(EmailClaimError::EmailTaken);
    }

    #[test]
    fn a_released_claim_is_free_for_the_next_account_at_once() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), released(ANA)])
            .when(claim(BUDI, 0))
            .then_expect_events(vec![claimed(BUDI, 0)]);
    }

    #[test]
    fn only_the_claiming_account_releases_a_pending_claim_once() {
        let release = |account| EmailClaimCommand::Release { account };
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(release(ANA))
            .then_expect_events(vec![released(ANA)]);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), released(ANA)])
            .when(release(ANA))
            .then_expect_events(vec![]);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), released(ANA), claimed(BUDI, 1)])
            .when(release(ANA))
            .then_expect_events(vec![]);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), confirmed(ANA)])
            .when(release(ANA))
            .then_expect_error(EmailClaimError::AlreadyConfirmed);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), released(ANA)])
            .when(EmailClaimCommand::Confirm { account: ANA })
            .then_expect_error(EmailClaimError::NotClaimedBy);
    }

    #[test]
    fn only_the_claiming_account_confirms() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(EmailClaimCommand::Confirm { account: ANA })
            .then_expect_events(vec![confirmed(ANA)]);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), confirmed(ANA)])
            .when(EmailClaimCommand::Confirm { account: ANA })
            .then_expect_events(vec![]);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(EmailClaimCommand::Confirm { account: BUDI })
            .then_expect_error(EmailClaimError::NotClaimedBy);
    }

    #[test]
    fn a_version_1_claim_loads_as_confirmed() {
        let stored = StoredEvent {
            event_id: Uuid::nil(),
            aggregate_type: "email".into(),
            aggregate_id: email().claim_id().to_string(),
            aggregate_version: 1,
            event_type: "EmailClaimed".into(),
            schema_version: 1,
            timestamp: at(0),
            actor: None,
            correlation_id: None,
            command_id: "c".into(),
            payload: serde_json::json!({ "email": "ana@example.com", "accountId": ANA }),
        };
        let event: EmailClaimEvent = decode_event(&stored).expect("a v1 claim upcasts");
        let mut state = EmailClaim::default();
        state.apply(event);
        assert!(state.is_confirmed());
        assert_eq!(state.decide(claim(BUDI, 59)), Err(EmailClaimError::EmailTaken));
    }

    #[test]
    fn state_survives_a_snapshot() {
        let mut state = EmailClaim::default();
        state.apply(claimed(ANA, 0));
        assert_eq!((state.account(), state.email()), (Some(ANA), Some(&email())));
        let snapshot = serde_json::to_value(&state).expect("a claim serialises");
        assert_eq!(serde_json::from_value::<EmailClaim>(snapshot).ok(), Some(state));
    }
}
