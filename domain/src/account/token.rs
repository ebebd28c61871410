//! Single-use account tokens: the password reset and the email verification
//! tokens sent by email (SPEC §7).
//!
//! A token is `<account id>.<secret>`, the secret being the hex HMAC-SHA256 of
//! `"<purpose>:<request id>"` under a key derived from the deployment's secret.
//! The account id says which aggregate to ask; only the token's SHA-256 is ever
//! stored (in the request's event). Because the secret is derived, not drawn, the
//! email worker can compute the token again from the event's request id when it
//! builds the email (at least once, perhaps in another process), and no token is
//! ever kept anywhere.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::UserId;

type HmacSha256 = Hmac<Sha256>;

/// What a token is for; part of what its secret is derived from, so a token of
/// one purpose is never valid for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    fn label(self) -> &'static str {
        match self {
            Self::PasswordReset => "password-reset",
            Self::EmailVerification => "verify-email",
        }
    }
}

/// The key account tokens are derived with: HMAC-SHA256 of a fixed label under
/// the deployment's secret (the access tokens' signing key), so the two uses of
/// that secret never share a key.
#[derive(Clone)]
pub struct AccountTokenKey([u8; 32]);

impl AccountTokenKey {
    const LABEL: &'static [u8] = b"rapat account tokens v1";

    pub fn derive(secret: &[u8]) -> Self {
        Self(mac(secret, Self::LABEL))
    }

    /// The token of `request` (an id the request's event records) for `account`.
    pub fn token(&self, purpose: TokenPurpose, account: UserId, request: Uuid) -> AccountToken {
        let message = format!("{}:{request}", purpose.label());
        let secret = mac(&self.0, message.as_bytes());
        AccountToken { account, secret: hex(&secret) }
    }
}

impl fmt::Debug for AccountTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountTokenKey([REDACTED])")
    }
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A token as the user receives it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountToken {
    account: UserId,
    secret: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the token is malformed")]
pub struct MalformedAccountToken;

impl AccountToken {
    const SECRET_HEX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, MalformedAccountToken> {
        let (account, secret) = raw.trim().split_once('.').ok_or(MalformedAccountToken)?;
        let account = Uuid::parse_str(account).map_err(|_| MalformedAccountToken)?;
        let well_formed = secret.len() == Self::SECRET_HEX_LEN
            && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(MalformedAccountToken);
        }
        Ok(Self { account: UserId::from_uuid(account), secret: secret.to_owned() })
    }

    pub fn account(&self) -> UserId {
        self.account
    }

    /// What the account's event stores and later checks a presented token against.
    pub fn hash(&self) -> TokenHash {
        TokenHash(hex(&Sha256::digest(self.expose().as_bytes())))
    }

    pub fn expose(&self) -> String {
        format!("{}.{}", self.account.as_uuid(), self.secret)
    }
}

impl fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountToken({}.[REDACTED])", self.account.as_uuid())
    }
}

/// The SHA-256 (hex) of an [`AccountToken`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token asked for: the request's id (from which the token is derived) and the
/// token's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub request_id: Uuid,
    pub token_hash: TokenHash,
}

impl TokenRequest {
    pub fn new(key: &AccountTokenKey, purpose: TokenPurpose, account: UserId, request_id: Uuid) -> Self {
        Self { request_id, token_hash: key.token(purpose, account, request_id).hash() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_derived_again_from_its_request_and_parses_back() {
        let key = AccountTokenKey::derive(b"a secret of the deployment, long enough");
        let account = UserId::from_uuid(Uuid::from_u128(1));
        let request = Uuid::from_u128(2);
        let token = key.token(TokenPurpose::PasswordReset, account, request);
        assert_eq!(token, key.token(TokenPurpose::PasswordReset, account, request));
        assert_ne!(token, key.token(TokenPurpose::EmailVerification, account, request));
        assert_ne!(token, key.token(TokenPurpose::PasswordReset, account, Uuid::from_u128(3)));
        assert_ne!(token, AccountTokenKey::derive(b"another").token(TokenPurpose::PasswordReset, account, request));
        let parsed = AccountToken::parse(&token.expose()).expect("parses");
        assert_eq!(parsed.account(), account);
        assert_eq!(parsed.hash(), token.hash());
        assert_eq!(TokenRequest::new(&key, TokenPurpose::PasswordReset, account, request).token_hash, token.hash());
        assert!(!format!("{token:?}").contains(&token.expose()[37..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for raw in ["", "x", "not-a-uuid.00", &format!("{}.{}", Uuid::nil(), "g".repeat(64)), &Uuid::nil().to_string()]
        {
            assert_eq!(AccountToken::parse(raw), Err(MalformedAccountToken), "{raw}");
        }
    }
}
