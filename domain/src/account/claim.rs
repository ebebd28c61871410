//! The email claim: one aggregate per normalised address (id `email.claim_id()`),
//! recording which account owns it.

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
}

impl EmailClaim {
    /// The account that owns the address, if any has claimed it.
    pub fn account(&self) -> Option<UserId> {
        self.account
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }
}

impl Aggregate for EmailClaim {
    const TYPE: &'static str = "email";
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailClaimError;
    type Services = ();

    async fn handle(&mut self, command: EmailClaimCommand, _: &(), sink: &EventSink<Self>) -> Result<(), EmailClaimError> {
        let EmailClaimCommand::Claim { email, account } = command;
        match self.account {
            // A retried registration claims again for the same account: nothing to do.
            Some(owner) if owner == account => Ok(()),
            Some(_) => Err(EmailClaimError::EmailTaken),
            None => {
                sink.write(EmailClaimEvent::EmailClaimed { email, account_id: account }, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: EmailClaimEvent) {
        match event {
            EmailClaimEvent::EmailClaimed { email, account_id } => {
                self.email = Some(email);
                self.account = Some(account_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;

    const ANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
    const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));

    fn email() -> Email {
        Email::parse("ana@example.com".to_owned()).expect("valid email")
    }

    fn claim(account: UserId) -> EmailClaimCommand {
        EmailClaimCommand::Claim { email: email(), account }
    }

    fn claimed(account: UserId) -> EmailClaimEvent {
        EmailClaimEvent::EmailClaimed { email: email(), account_id: account }
    }

    #[test]
    fn the_first_claim_wins() {
        TestFramework::<EmailClaim>::with(()).given_no_previous_events().when(claim(ANA)).then_expect_events(vec![claimed(ANA)]);
    }

    #[test]
    fn claiming_again_for_the_same_account_changes_nothing() {
        TestFramework::<EmailClaim>::with(()).given(vec![claimed(ANA)]).when(claim(ANA)).then_expect_events(vec![]);
    }

    #[test]
    fn another_account_cannot_take_a_claimed_email() {
        TestFramework::<EmailClaim>::with(())
            .given(vec![claimed(ANA)])
            .when(claim(BUDI))
            .then_expect_error(EmailClaimError::EmailTaken);
    }

    #[test]
    fn state_survives_a_snapshot() {
        let mut state = EmailClaim::default();
        state.apply(claimed(ANA));
        assert_eq!((state.account(), state.email()), (Some(ANA), Some(&email())));
        let snapshot = serde_json::to_value(&state).expect("a claim serialises");
        assert_eq!(serde_json::from_value::<EmailClaim>(snapshot).ok(), Some(state));
    }
}
