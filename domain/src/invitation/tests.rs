//! Given/when/then tests of every invitation rule.

use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

const HANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));
const CITRA: UserId = UserId::from_uuid(Uuid::from_u128(3));
const REVIEW: RoomId = RoomId::from_uuid(Uuid::from_u128(10));
const OTHER_ROOM: RoomId = RoomId::from_uuid(Uuid::from_u128(11));

fn invitation() -> TestFramework<Invitation> {
    TestFramework::with(())
}

fn email(raw: &str) -> Email {
    Email::parse(raw.to_owned()).expect("a valid email")
}

fn issue(invitee: Invitee) -> InvitationCommand {
    InvitationCommand::Issue { room: REVIEW, host: HANA, invitee }
}

fn issued_to(user: UserId) -> InvitationEvent {
    InvitationEvent::InvitationIssued { room_id: REVIEW, host_id: HANA, invitee_id: Some(user), email: None }
}

fn issued_to_email(address: &str) -> InvitationEvent {
    InvitationEvent::InvitationIssued { room_id: REVIEW, host_id: HANA, invitee_id: None, email: Some(email(address)) }
}

fn accepted(user: UserId) -> InvitationEvent {
    InvitationEvent::InvitationAccepted { invitee_id: user }
}

fn declined(user: UserId) -> InvitationEvent {
    InvitationEvent::InvitationDeclined { invitee_id: user }
}

fn revoked() -> InvitationEvent {
    InvitationEvent::InvitationRevoked { revoked_by: HANA }
}

#[test]
fn the_host_invites_an_account() {
    invitation().given_no_previous_events().when(issue(Invitee::User(BUDI))).then_expect_events(vec![issued_to(BUDI)]);
}

#[test]
fn the_host_invites_an_email_address() {
    invitation()
        .given_no_previous_events()
        .when(issue(Invitee::Email(email("Dewi@Example.com"))))
        .then_expect_events(vec![issued_to_email("dewi@example.com")]);
}

#[test]
fn nobody_invites_themselves() {
    invitation()
        .given_no_previous_events()
        .when(issue(Invitee::User(HANA)))
        .then_expect_error(InvitationError::CannotInviteYourself);
}

#[test]
fn inviting_again_while_pending_or_accepted_changes_nothing() {
    invitation().given(vec![issued_to(BUDI)]).when(issue(Invitee::User(BUDI))).then_expect_events(vec![]);
    invitation()
        .given(vec![issued_to(BUDI), accepted(BUDI)])
        .when(issue(Invitee::User(BUDI)))
        .then_expect_events(vec![]);
}

#[test]
fn inviting_again_after_a_decline_or_a_revocation_issues_it_anew() {
    invitation()
        .given(vec![issued_to(BUDI), declined(BUDI)])
        .when(issue(Invitee::User(BUDI)))
        .then_expect_events(vec![issued_to(BUDI)]);
    invitation()
        .given(vec![issued_to(BUDI), revoked()])
        .when(issue(Invitee::User(BUDI)))
        .then_expect_events(vec![issued_to(BUDI)]);
}

#[test]
fn an_issue_routed_to_another_rooms_invitation_is_refused() {
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Issue { room: OTHER_ROOM, host: HANA, invitee: Invitee::User(BUDI) })
        .then_expect_error(InvitationError::Mismatch);
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(issue(Invitee::User(CITRA)))
        .then_expect_error(InvitationError::Mismatch);
}

#[test]
fn the_invitee_accepts_and_may_change_their_mind() {
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_events(vec![accepted(BUDI)]);
    invitation()
        .given(vec![issued_to(BUDI), accepted(BUDI)])
        .when(InvitationCommand::Decline { by: BUDI })
        .then_expect_events(vec![declined(BUDI)]);
    invitation()
        .given(vec![issued_to(BUDI), declined(BUDI)])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_events(vec![accepted(BUDI)]);
}

#[test]
fn answering_the_same_way_twice_changes_nothing() {
    invitation()
        .given(vec![issued_to(BUDI), accepted(BUDI)])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_events(vec![]);
    invitation()
        .given(vec![issued_to(BUDI), declined(BUDI)])
        .when(InvitationCommand::Decline { by: BUDI })
        .then_expect_events(vec![]);
}

#[test]
fn only_the_invitee_answers() {
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Accept { by: CITRA })
        .then_expect_error(InvitationError::NotTheInvitee);
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Decline { by: HANA })
        .then_expect_error(InvitationError::NotTheInvitee);
}

#[test]
fn a_revoked_invitation_cannot_be_accepted() {
    invitation()
        .given(vec![issued_to(BUDI), revoked()])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_error(InvitationError::Revoked);
}

#[test]
fn only_the_host_revokes_and_revoking_twice_changes_nothing() {
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Revoke { by: BUDI })
        .then_expect_error(InvitationError::NotTheHost);
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::Revoke { by: HANA })
        .then_expect_events(vec![revoked()]);
    invitation()
        .given(vec![issued_to(BUDI), revoked()])
        .when(InvitationCommand::Revoke { by: HANA })
        .then_expect_events(vec![]);
}

#[test]
fn commands_to_an_invitation_never_issued_are_refused() {
    for command in [
        InvitationCommand::Accept { by: BUDI },
        InvitationCommand::Decline { by: BUDI },
        InvitationCommand::Revoke { by: HANA },
        InvitationCommand::BindAccount { account: BUDI },
    ] {
        invitation().given_no_previous_events().when(command).then_expect_error(InvitationError::NotFound);
    }
}

#[test]
fn an_email_invitation_is_answered_by_the_account_bound_to_it() {
    let bound = InvitationEvent::InvitationBoundToAccount { invitee_id: BUDI };
    invitation()
        .given(vec![issued_to_email("budi@example.com")])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_error(InvitationError::NotTheInvitee);
    invitation()
        .given(vec![issued_to_email("budi@example.com")])
        .when(InvitationCommand::BindAccount { account: BUDI })
        .then_expect_events(vec![bound.clone()]);
    invitation()
        .given(vec![issued_to_email("budi@example.com"), bound.clone()])
        .when(InvitationCommand::Accept { by: BUDI })
        .then_expect_events(vec![accepted(BUDI)]);
    invitation()
        .given(vec![issued_to_email("budi@example.com"), bound.clone()])
        .when(InvitationCommand::BindAccount { account: BUDI })
        .then_expect_events(vec![]);
    invitation()
        .given(vec![issued_to_email("budi@example.com"), bound])
        .when(InvitationCommand::BindAccount { account: CITRA })
        .then_expect_error(InvitationError::BoundToAnotherAccount);
}

#[test]
fn only_an_email_invitation_is_bound_to_an_account() {
    invitation()
        .given(vec![issued_to(BUDI)])
        .when(InvitationCommand::BindAccount { account: CITRA })
        .then_expect_error(InvitationError::Mismatch);
}

#[test]
fn an_accepted_invitation_admits_its_invitee_only() {
    let mut state = Invitation::default();
    for event in [issued_to(BUDI), accepted(BUDI)] {
        state.apply(event);
    }
    assert!(state.admits(BUDI));
    assert!(!state.admits(CITRA));
    state.apply(revoked());
    assert!(!state.admits(BUDI));
}

#[test]
fn one_room_and_invitee_is_one_invitation() {
    let by_mail = |raw: &str| Invitation::id_for(REVIEW, &Invitee::Email(email(raw)));
    assert_eq!(by_mail("Budi@Example.com"), by_mail("budi@example.com"));
    assert_eq!(Invitation::id_for(REVIEW, &Invitee::User(BUDI)), Invitation::id_for(REVIEW, &Invitee::User(BUDI)));
    assert_ne!(Invitation::id_for(REVIEW, &Invitee::User(BUDI)), Invitation::id_for(OTHER_ROOM, &Invitee::User(BUDI)));
    assert_ne!(Invitation::id_for(REVIEW, &Invitee::User(BUDI)), Invitation::id_for(REVIEW, &Invitee::User(CITRA)));
}
