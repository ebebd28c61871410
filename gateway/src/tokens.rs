//! Access tokens (JWT, HS256 pinned) and refresh tokens.
//!
//! An access token names its session (`sid`); every request checks that the
//! session is still active in the read model, so logout revokes access tokens at
//! once instead of when they expire.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use rapat_domain::ids::UserId;
use rapat_domain::session::RefreshToken;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

const ISSUER: &str = "rapat";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Derives the refresh token of a keyed login (see [`Self::keyed_refresh`]).
    refresh_derivation: Hmac<Sha256>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        // Only HS256 is accepted: a token claiming `none` or an asymmetric
        // algorithm is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = 5;
        // A key of its own, derived from the secret, so that no HMAC made here
        // can be mistaken for a token's signature.
        let mut derivation = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        derivation.update(b"rapat refresh tokens of keyed logins");
        let refresh_key = derivation.finalize().into_bytes();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            refresh_derivation: Hmac::<Sha256>::new_from_slice(&refresh_key).expect("HMAC accepts any key length"),
            access_ttl,
            refresh_ttl,
        }
    }

    /// A signed access token and its lifetime in seconds.
    pub fn issue_access(&self, user: UserId, session: Uuid, role: &str, now: DateTime<Utc>) -> (String, u64) {
        let ttl = self.access_ttl.as_secs();
        let claims = AccessClaims {
            sub: user.as_uuid(),
            sid: session,
            role: role.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl as i64,
            iss: ISSUER.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, ttl)
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(
            |error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )
    }

    /// The claims of a token this gateway signed, expired or not: logout accepts
    /// an expired access token so that a client can always end its session.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }

    /// A fresh refresh token for `session`, from the OS's random source.
    pub fn new_refresh(&self, session: Uuid) -> RefreshToken {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        RefreshToken::new(session, secret)
    }

    /// The refresh token of a login sent with an Idempotency-Key (`bound`, the
    /// key bound to the user and the route): derived from it with the server's
    /// secret, so a retry of the login gives back the token the first attempt
    /// stored, and nobody without the secret can compute it.
    pub fn keyed_refresh(&self, session: Uuid, bound: Uuid) -> RefreshToken {
        let mut mac = self.refresh_derivation.clone();
        mac.update(bound.as_bytes());
        RefreshToken::new(session, mac.finalize().into_bytes().into())
    }

    pub fn refresh_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.refresh_ttl).unwrap_or(chrono::Duration::days(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(900), Duration::from_secs(86400))
    }

    #[test]
    fn a_keyed_login_gets_the_same_refresh_token_again_and_only_for_its_key_and_secret() {
        let (session, bound) = (Uuid::new_v4(), Uuid::new_v4());
        let first = keys().keyed_refresh(session, bound);
        assert_eq!(first.hash(), keys().keyed_refresh(session, bound).hash());
        assert_ne!(first.hash(), keys().keyed_refresh(session, Uuid::new_v4()).hash());
        let other_secret =
            TokenKeys::new(b"another secret, just as long....", Duration::from_secs(900), Duration::from_secs(86400));
        assert_ne!(first.hash(), other_secret.keyed_refresh(session, bound).hash());
    }

    #[test]
    fn issued_tokens_verify() {
        let user = UserId::new_random();
        let session = Uuid::new_v4();
        let (token, ttl) = keys().issue_access(user, session, "member", Utc::now());
        assert_eq!(ttl, 900);
        let claims = keys().verify_access(&token).expect("valid");
        assert_eq!((claims.sub, claims.sid, claims.role.as_str()), (user.as_uuid(), session, "member"));
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_refused() {
        let (old, _) = keys().issue_access(
            UserId::new_random(),
            Uuid::new_v4(),
            "member",
            Utc::now() - chrono::Duration::hours(1),
        );
        assert_eq!(keys().verify_access(&old).map(|_| ()), Err(TokenError::Expired));
        let other =
            TokenKeys::new(b"another secret, another issuer..", Duration::from_secs(900), Duration::from_secs(60));
        let (forged, _) = other.issue_access(UserId::new_random(), Uuid::new_v4(), "admin", Utc::now());
        assert_eq!(keys().verify_access(&forged).map(|_| ()), Err(TokenError::Invalid));
        // {"alg":"none"} with the same claims must never pass.
        let (good, _) = keys().issue_access(UserId::new_random(), Uuid::new_v4(), "admin", Utc::now());
        let payload = good.split('.').nth(1).expect("three parts");
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(keys().verify_access(&unsigned).map(|_| ()), Err(TokenError::Invalid));
        assert_eq!(keys().verify_access("garbage").map(|_| ()), Err(TokenError::Invalid));
    }
}
