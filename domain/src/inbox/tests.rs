use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

const ANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));

fn inbox() -> TestFramework<Inbox> {
    TestFramework::with(())
}

#[test]
fn marking_read_records_the_ids_once_each() {
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    inbox()
        .given_no_previous_events()
        .when(InboxCommand::MarkRead { user: ANA, ids: vec![b, a, b] })
        .then_expect_events(vec![InboxEvent::NotificationsRead { user_id: ANA, ids: vec![a, b] }]);
}

#[test]
fn marking_nothing_is_refused() {
    inbox()
        .given_no_previous_events()
        .when(InboxCommand::MarkRead { user: ANA, ids: vec![] })
        .then_expect_error(InboxError::NothingToMark);
}

#[test]
fn read_all_is_recorded() {
    inbox()
        .given(vec![InboxEvent::AllNotificationsRead { user_id: ANA }])
        .when(InboxCommand::MarkAllRead { user: ANA })
        .then_expect_events(vec![InboxEvent::AllNotificationsRead { user_id: ANA }]);
}

#[test]
fn another_users_inbox_refuses() {
    inbox()
        .given(vec![InboxEvent::AllNotificationsRead { user_id: ANA }])
        .when(InboxCommand::MarkAllRead { user: BUDI })
        .then_expect_error(InboxError::OwnerMismatch);
}
