//! A user's contact list: one aggregate per user, its id the owner's user id.

mod command;
mod error;
mod event;

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::ContactListCommand;
pub use error::ContactListError;
pub use event::ContactListEvent;

use crate::ids::UserId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactList {
    /// Recorded by the first `ContactAdded`; an empty list has no events yet.
    owner: Option<UserId>,
    /// A `BTreeSet` so that snapshots serialise the same way every time.
    contacts: BTreeSet<UserId>,
}

impl ContactList {
    pub fn owner(&self) -> Option<UserId> {
        self.owner
    }

    pub fn contacts(&self) -> impl Iterator<Item = UserId> + '_ {
        self.contacts.iter().copied()
    }

    pub fn contains(&self, user: UserId) -> bool {
        self.contacts.contains(&user)
    }

    fn decide(&self, command: ContactListCommand) -> Result<ContactListEvent, ContactListError> {
        let (ContactListCommand::Add { owner, .. } | ContactListCommand::Remove { owner, .. }) = command;
        if self.owner.is_some_and(|recorded| recorded != owner) {
            return Err(ContactListError::OwnerMismatch);
        }
        match command {
            ContactListCommand::Add { contact, .. } if contact == owner => Err(ContactListError::CannotAddSelf),
            ContactListCommand::Add { contact, .. } if self.contains(contact) => Err(ContactListError::AlreadyAContact),
            ContactListCommand::Add { contact, .. } => {
                Ok(ContactListEvent::ContactAdded { owner_id: owner, contact_id: contact })
            }
            ContactListCommand::Remove { contact, .. } if !self.contains(contact) => Err(ContactListError::NotAContact),
            ContactListCommand::Remove { contact, .. } => {
                Ok(ContactListEvent::ContactRemoved { owner_id: owner, contact_id: contact })
            }
        }
    }
}

impl Aggregate for ContactList {
    const TYPE: &'static str = "contacts";
    type Command = ContactListCommand;
    type Event = ContactListEvent;
    type Error = ContactListError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ContactListCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), ContactListError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ContactListEvent) {
        match event {
            ContactListEvent::ContactAdded { owner_id, contact_id } => {
                self.owner = Some(owner_id);
                self.contacts.insert(contact_id);
            }
            ContactListEvent::ContactRemoved { contact_id, .. } => {
                self.contacts.remove(&contact_id);
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
    const CITRA: UserId = UserId::from_uuid(Uuid::from_u128(3));

    fn list() -> TestFramework<ContactList> {
        TestFramework::with(())
    }

    fn added(contact: UserId) -> ContactListEvent {
        ContactListEvent::ContactAdded { owner_id: ANA, contact_id: contact }
    }

    fn add(contact: UserId) -> ContactListCommand {
        ContactListCommand::Add { owner: ANA, contact }
    }

    fn remove(contact: UserId) -> ContactListCommand {
        ContactListCommand::Remove { owner: ANA, contact }
    }

    #[test]
    fn add_records_a_contact() {
        list().given_no_previous_events().when(add(BUDI)).then_expect_events(vec![added(BUDI)]);
    }

    #[test]
    fn nobody_is_their_own_contact() {
        list().given_no_previous_events().when(add(ANA)).then_expect_error(ContactListError::CannotAddSelf);
    }

    #[test]
    fn a_contact_is_added_once() {
        list().given(vec![added(BUDI)]).when(add(BUDI)).then_expect_error(ContactListError::AlreadyAContact);
    }

    #[test]
    fn commands_for_another_users_list_are_refused() {
        let misrouted = ContactListCommand::Add { owner: BUDI, contact: CITRA };
        list().given(vec![added(BUDI)]).when(misrouted).then_expect_error(ContactListError::OwnerMismatch);
    }

    #[test]
    fn remove_takes_a_contact_away() {
        let removed = ContactListEvent::ContactRemoved { owner_id: ANA, contact_id: BUDI };
        list().given(vec![added(BUDI)]).when(remove(BUDI)).then_expect_events(vec![removed]);
    }

    #[test]
    fn only_contacts_can_be_removed() {
        list().given(vec![added(BUDI)]).when(remove(CITRA)).then_expect_error(ContactListError::NotAContact);
        list().given_no_previous_events().when(remove(BUDI)).then_expect_error(ContactListError::NotAContact);
    }

    #[test]
    fn state_follows_the_events_and_survives_a_snapshot() {
        let mut state = ContactList::default();
        for event in [added(CITRA), added(BUDI), ContactListEvent::ContactRemoved { owner_id: ANA, contact_id: CITRA }]
        {
            state.apply(event);
        }
        assert_eq!((state.owner(), state.contacts().collect::<Vec<_>>()), (Some(ANA), vec![BUDI]));
        let snapshot = serde_json::to_value(&state).expect("a list serialises");
        assert_eq!(serde_json::from_value::<ContactList>(snapshot).ok(), Some(state));
    }
}
