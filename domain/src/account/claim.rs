//! The email claim: one aggregate per normalised address (id `email.claim_id()`),
//! recording which account owns it.
//!
//! Registration claims the address, registers the account, then confirms the
//! claim. If the middle step never happens (the store went down, the process
//! died), the claim stays pending; after [`EmailClaim::PENDING_TIMEOUT`] another
//! registration may take it over, so an address is never locked for good. (The
//! gateway first makes sure no account with the address exists in the read model,
//! which covers a registration that succeeded but was never confirmed.)

use chrono::{DateTime, Duration, Utc};
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
    /// How long an unconfirmed claim holds an address against another account.
    pub const PENDING_TIMEOUT: Duration = Duration::minutes(2);

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

    fn decide(&self, command: EmailClaimCommand) -> Result<Option<EmailClaimEvent>, EmailClaimError> {
        match command {
            EmailClaimCommand::Claim { email, account, now } => match self.account {
                // A retried registration claims again for the same account: nothing to do.
                Some(owner) if owner == account => Ok(None),
                Some(_) if self.confirmed => Err(EmailClaimError::EmailTaken),
                Some(_) if self.claimed_at.is_some_and(|at| now - at < Self::PENDING_TIMEOUT) => {
                    Err(EmailClaimError::EmailTaken)
                }
                // Unclaimed, or a pending claim that was abandoned.
                _ => Ok(Some(EmailClaimEvent::EmailClaimed { email, account_id: account, claimed_at: Some(now) })),
            },
            EmailClaimCommand::Confirm { account } => match self.account {
                Some(owner) if owner == account && self.confirmed => Ok(None),
                Some(owner) if owner == account => Ok(Some(EmailClaimEvent::EmailClaimConfirmed { account_id: account })),
                _ => Err(EmailClaimError::NotClaimedBy),
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

    async fn handle(&mut self, command: EmailClaimCommand, _: &(), sink: &EventSink<Self>) -> Result<(), EmailClaimError> {
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
        TestFramework::<EmailClaim>::with(()).given(vec![claimed(ANA, 0)]).when(claim(ANA, 1)).then_expect_events(vec![]);
    }

    #[test]
    fn another_account_cannot_take_a_confirmed_or_recent_claim() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0), confirmed(ANA)])
            .when(claim(BUDI, 30))
            .then_expect_error(EmailClaimError::EmailTaken);
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(claim(BUDI, 1))
            .then_expect_error(EmailClaimError::EmailTaken);
    }

    #[test]
    fn an_abandoned_pending_claim_can_be_taken_over() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA, 0)])
            .when(claim(BUDI, 2))
            .then_expect_events(vec![claimed(BUDI, 2)]);
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
