//! Given/when/then tests of email verification and password reset (SPEC §7).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::credentials::Password;
use crate::ids::UserId;
use crate::services::testing::MarkedHasher;

fn account() -> TestFramework<Account> {
    TestFramework::with(MarkedHasher::services())
}

fn key() -> AccountTokenKey {
    AccountTokenKey::derive(b"a deployment secret of at least 32 bytes")
}

const ANA: UserId = UserId::from_uuid(Uuid::from_u128(0xa));

fn request(purpose: TokenPurpose, n: u128) -> TokenRequest {
    TokenRequest::new(&key(), purpose, ANA, Uuid::from_u128(n))
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 5, 1, 9, minute, 0).unwrap()
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

fn registered() -> AccountEvent {
    AccountEvent::AccountRegistered {
        email: email(),
        password_hash: MarkedHasher::hash_of("password1"),
        first_name: person("Ana"),
        last_name: person("Putri"),
        role: Role::Member,
    }
}

fn verification_requested() -> AccountEvent {
    let TokenRequest { request_id, token_hash } = request(TokenPurpose::EmailVerification, 1);
    AccountEvent::EmailVerificationRequested { request_id, token_hash }
}

fn reset_requested(n: u128, expires_at: DateTime<Utc>) -> AccountEvent {
    let TokenRequest { request_id, token_hash } = request(TokenPurpose::PasswordReset, n);
    AccountEvent::PasswordResetRequested { request_id, token_hash, expires_at }
}

fn reset(n: u128, new: &str, now: DateTime<Utc>) -> AccountCommand {
    AccountCommand::ResetPassword { token: request(TokenPurpose::PasswordReset, n).token_hash, new: password(new), now }
}

#[test]
fn registering_with_a_verification_asks_for_it_in_the_same_command() {
    let command = AccountCommand::Register {
        email: email(),
        password: password("password1"),
        first_name: person("Ana"),
        last_name: person("Putri"),
        verification: Some(request(TokenPurpose::EmailVerification, 1)),
    };
    account().given_no_previous_events().when(command).then_expect_events(vec![registered(), verification_requested()]);
}

#[test]
fn the_verification_token_verifies_once_and_no_other_token_does() {
    let token = request(TokenPurpose::EmailVerification, 1).token_hash;
    let verify = |token: TokenHash| AccountCommand::VerifyEmail { token };
    account()
        .given(vec![registered(), verification_requested()])
        .when(verify(token.clone()))
        .then_expect_events(vec![AccountEvent::EmailVerified {}]);
    account()
        .given(vec![registered(), verification_requested(), AccountEvent::EmailVerified {}])
        .when(verify(token.clone()))
        .then_expect_events(vec![]);
    // A reset token of the same request id is another token.
    let other = request(TokenPurpose::PasswordReset, 1).token_hash;
    account()
        .given(vec![registered(), verification_requested()])
        .when(verify(other))
        .then_expect_error(AccountError::InvalidToken);
    account().given(vec![registered()]).when(verify(token.clone())).then_expect_error(AccountError::InvalidToken);
    account().given_no_previous_events().when(verify(token)).then_expect_error(AccountError::NotFound);
}

#[test]
fn a_reset_is_asked_for_by_a_registered_account_only() {
    let ask = || AccountCommand::RequestPasswordReset {
        request: request(TokenPurpose::PasswordReset, 7),
        expires_at: at(30),
    };
    account().given(vec![registered()]).when(ask()).then_expect_events(vec![reset_requested(7, at(30))]);
    account().given_no_previous_events().when(ask()).then_expect_error(AccountError::NotFound);
}

#[test]
fn a_reset_token_sets_the_password_once_before_it_expires() {
    let given = vec![registered(), reset_requested(7, at(30))];
    let done = AccountEvent::PasswordReset {
        password_hash: MarkedHasher::hash_of("password2"),
        token_hash: request(TokenPurpose::PasswordReset, 7).token_hash,
    };
    account().given(given.clone()).when(reset(7, "password2", at(29))).then_expect_events(vec![done.clone()]);
    account().given(given.clone()).when(reset(7, "password2", at(30))).then_expect_error(AccountError::TokenExpired);
    account().given(given.clone()).when(reset(8, "password2", at(1))).then_expect_error(AccountError::InvalidToken);
    let mut used = given;
    used.push(done);
    account().given(used.clone()).when(reset(7, "password3", at(2))).then_expect_error(AccountError::InvalidToken);
    // A reset spends every token asked for before it.
    let mut both = vec![registered(), reset_requested(7, at(30)), reset_requested(8, at(40))];
    both.push(AccountEvent::PasswordReset {
        password_hash: MarkedHasher::hash_of("password2"),
        token_hash: request(TokenPurpose::PasswordReset, 8).token_hash,
    });
    account().given(both).when(reset(7, "password3", at(2))).then_expect_error(AccountError::InvalidToken);
}

#[test]
fn only_the_newest_reset_tokens_are_kept() {
    let mut given = vec![registered()];
    let limit = u128::try_from(Account::MAX_PENDING_RESETS).expect("small");
    for n in 0..=limit {
        given.push(reset_requested(n, at(30) + TimeDelta::minutes(1)));
    }
    account().given(given.clone()).when(reset(0, "password2", at(1))).then_expect_error(AccountError::InvalidToken);
    let expected = AccountEvent::PasswordReset {
        password_hash: MarkedHasher::hash_of("password2"),
        token_hash: request(TokenPurpose::PasswordReset, 1).token_hash,
    };
    account().given(given).when(reset(1, "password2", at(1))).then_expect_events(vec![expected]);
}
