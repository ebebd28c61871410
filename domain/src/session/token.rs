//! Refresh tokens: what a client holds, and the hash the session keeps of it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A refresh token as handed to a client: `<session id>.<secret>`, the secret being
/// 32 random bytes in hex. The session id says which aggregate to ask; only the
/// secret's hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    session_id: Uuid,
    secret: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the refresh token is malformed")]
pub struct MalformedRefreshToken;

impl RefreshToken {
    const SECRET_HEX_LEN: usize = 64;

    /// A token for `session_id` from 32 random bytes the caller drew.
    pub fn new(session_id: Uuid, secret: [u8; 32]) -> Self {
        let secret = secret.iter().map(|byte| format!("{byte:02x}")).collect();
        Self { session_id, secret }
    }

    pub fn parse(raw: &str) -> Result<Self, MalformedRefreshToken> {
        let (session_id, secret) = raw.trim().split_once('.').ok_or(MalformedRefreshToken)?;
        let session_id = Uuid::parse_str(session_id).map_err(|_| MalformedRefreshToken)?;
        let well_formed = secret.len() == Self::SECRET_HEX_LEN
            && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(MalformedRefreshToken);
        }
        Ok(Self { session_id, secret: secret.to_string() })
    }

    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    pub fn hash(&self) -> RefreshHash {
        let digest = Sha256::digest(self.secret.as_bytes());
        RefreshHash(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The token as the client receives it.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.session_id, self.secret)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshToken({}.[REDACTED])", self.session_id)
    }
}

/// SHA-256 of a refresh token's secret, in hex. A plain hash suffices (unlike for
/// passwords) because the secret is 256 random bits, not something a person chose.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefreshHash(String);

impl RefreshHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_their_text_form() {
        let token = RefreshToken::new(Uuid::from_u128(7), [0xab; 32]);
        let parsed = RefreshToken::parse(&token.expose()).expect("parses");
        assert_eq!(parsed, token);
        assert_eq!(parsed.hash(), token.hash());
        assert_eq!(token.hash().as_str().len(), 64);
        assert!(!format!("{token:?}").contains("abab"), "Debug hides the secret");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good_secret = "ab".repeat(32);
        for raw in [
            "",
            "no-dot",
            "not-a-uuid.abcd",
            &format!("{}.{}", Uuid::nil(), "zz".repeat(32)),
            &format!("{}.abc", Uuid::nil()),
        ] {
            assert_eq!(RefreshToken::parse(raw), Err(MalformedRefreshToken), "input {raw:?}");
        }
        assert!(RefreshToken::parse(&format!("{}.{good_secret}", Uuid::nil())).is_ok());
    }
}
