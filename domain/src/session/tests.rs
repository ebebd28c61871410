//! Given/when/then tests of the session aggregate.

use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

type SessionTest = TestFramework<Session>;

const USER: UserId = UserId::from_uuid(Uuid::from_u128(1));

fn hash(n: u8) -> RefreshHash {
    RefreshToken::new(Uuid::from_u128(9), [n; 32]).hash()
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).single().expect("valid date")
}

fn started() -> SessionEvent {
    SessionEvent::SessionStarted { user_id: USER, refresh_hash: hash(1), expires_at: at(30) }
}

fn refreshed_to(n: u8, generation: u32) -> SessionEvent {
    SessionEvent::SessionRefreshed { refresh_hash: hash(n), expires_at: at(30), generation }
}

fn refresh(presented: u8, next: u8, now: DateTime<Utc>) -> SessionCommand {
    SessionCommand::Refresh { presented: hash(presented), next: hash(next), now, expires_at: at(30) }
}

#[test]
fn a_session_starts_once() {
    SessionTest::with(())
        .given_no_previous_events()
        .when(SessionCommand::Start { user: USER, refresh: hash(1), expires_at: at(30) })
        .then_expect_events(vec![started()]);
    SessionTest::with(())
        .given(vec![started()])
        .when(SessionCommand::Start { user: USER, refresh: hash(2), expires_at: at(30) })
        .then_expect_error(SessionError::AlreadyStarted);
}

#[test]
fn the_current_token_rotates() {
    SessionTest::with(())
        .given(vec![started()])
        .when(refresh(1, 2, at(2)))
        .then_expect_events(vec![refreshed_to(2, 1)]);
    SessionTest::with(())
        .given(vec![started(), refreshed_to(2, 1)])
        .when(refresh(2, 3, at(3)))
        .then_expect_events(vec![refreshed_to(3, 2)]);
}

#[test]
fn a_spent_token_revokes_the_whole_family() {
    SessionTest::with(())
        .given(vec![started(), refreshed_to(2, 1)])
        .when(refresh(1, 5, at(3)))
        .then_expect_events(vec![SessionEvent::SessionRevoked { reason: RevokeReason::RefreshReuse }]);
}

#[test]
fn a_revoked_session_refreshes_nothing() {
    let revoked = SessionEvent::SessionRevoked { reason: RevokeReason::Logout };
    SessionTest::with(())
        .given(vec![started(), revoked])
        .when(refresh(1, 2, at(2)))
        .then_expect_error(SessionError::Revoked);
}

#[test]
fn unknown_and_expired_tokens_are_refused() {
    SessionTest::with(())
        .given(vec![started()])
        .when(refresh(7, 2, at(2)))
        .then_expect_error(SessionError::UnknownRefreshToken);
    SessionTest::with(()).given(vec![started()]).when(refresh(1, 2, at(30))).then_expect_error(SessionError::Expired);
    SessionTest::with(())
        .given_no_previous_events()
        .when(refresh(1, 2, at(2)))
        .then_expect_error(SessionError::NotFound);
}

#[test]
fn logout_revokes_once() {
    let revoke = SessionCommand::Revoke { reason: RevokeReason::Logout };
    SessionTest::with(())
        .given(vec![started()])
        .when(revoke.clone())
        .then_expect_events(vec![SessionEvent::SessionRevoked { reason: RevokeReason::Logout }]);
    SessionTest::with(())
        .given(vec![started(), SessionEvent::SessionRevoked { reason: RevokeReason::Logout }])
        .when(revoke)
        .then_expect_events(vec![]);
}
