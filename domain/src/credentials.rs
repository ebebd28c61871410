//! Passwords in clear (only ever in memory, redacted in logs) and their hashes.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A password as a person typed it. Its `Debug` output is redacted, and it is never
/// serialised: only a [`PasswordHash`] reaches an event.
#[derive(Clone)]
pub struct Password(SecretString);

/// Why a string is not an acceptable password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("the password must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("the password must contain a letter and a digit or symbol")]
    TooWeak,
}

impl Password {
    pub const ACCOUNT_MIN_CHARS: usize = 8;
    pub const ROOM_MIN_CHARS: usize = 4;
    pub const MAX_CHARS: usize = 128;
    /// What a login or a room join accepts as a guess before it is even compared.
    /// Characters, as the API document's maxLength counts them (at most 4 KiB).
    pub const CANDIDATE_MAX_CHARS: usize = 1024;

    /// A new account password: 8 to 128 characters, with a letter and something
    /// that is not a letter.
    pub fn parse_for_account(raw: String) -> Result<Self, PasswordError> {
        check_length(&raw, Self::ACCOUNT_MIN_CHARS)?;
        let has_letter = raw.chars().any(char::is_alphabetic);
        let has_other = raw.chars().any(|c| !c.is_alphabetic());
        if !(has_letter && has_other) {
            return Err(PasswordError::TooWeak);
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// A new room password: 4 to 128 characters of anything.
    pub fn parse_for_room(raw: String) -> Result<Self, PasswordError> {
        check_length(&raw, Self::ROOM_MIN_CHARS)?;
        Ok(Self(SecretString::from(raw)))
    }

    /// A password someone offers to be checked against a hash (login, room join).
    /// No strength rules apply; only an absurd length is refused.
    pub fn parse_candidate(raw: String) -> Result<Self, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::TooShort { min: 1 });
        }
        if raw.chars().count() > Self::CANDIDATE_MAX_CHARS {
            return Err(PasswordError::TooLong { max: Self::CANDIDATE_MAX_CHARS });
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// The clear text, for the hashing service only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

fn check_length(raw: &str, min: usize) -> Result<(), PasswordError> {
    let chars = raw.chars().count();
    if chars < min {
        return Err(PasswordError::TooShort { min });
    }
    if chars > Password::MAX_CHARS {
        return Err(PasswordError::TooLong { max: Password::MAX_CHARS });
    }
    Ok(())
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$...`). Stored in events;
/// never returned by the API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by the hashing service.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not secret in the cryptographic sense, but it has no place in logs.
        f.write_str("PasswordHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(parse: fn(String) -> Result<Password, PasswordError>, raw: &str, expect: Result<(), PasswordError>) {
        assert_eq!(parse(raw.to_string()).map(|_| ()), expect, "input {raw:?}");
    }

    #[test]
    fn account_passwords() {
        check(Password::parse_for_account, "abc123", Err(PasswordError::TooShort { min: 8 }));
        check(Password::parse_for_account, "abcdefgh", Err(PasswordError::TooWeak));
        check(Password::parse_for_account, "12345678", Err(PasswordError::TooWeak));
        check(Password::parse_for_account, "password1", Ok(()));
        check(Password::parse_for_account, &"a1".repeat(65), Err(PasswordError::TooLong { max: 128 }));
    }

    #[test]
    fn room_and_candidate_passwords() {
        check(Password::parse_for_room, "abc", Err(PasswordError::TooShort { min: 4 }));
        check(Password::parse_for_room, "abcd", Ok(()));
        check(Password::parse_candidate, "", Err(PasswordError::TooShort { min: 1 }));
        check(Password::parse_candidate, "x", Ok(()));
        check(Password::parse_candidate, &"x".repeat(1025), Err(PasswordError::TooLong { max: 1024 }));
    }

    #[test]
    fn debug_output_is_redacted() {
        let password = Password::parse_for_account("hunter2hunter2".into()).expect("valid password");
        assert_eq!(format!("{password:?}"), "Password([REDACTED])");
    }
}
