//! Time-limited TURN credentials, handed to each socket in its `config` message.
//!
//! The TURN REST API scheme coturn checks with `use-auth-secret` and
//! `static-auth-secret`: the username is `<expiry as unix time>:<userId>` and
//! the password base64(HMAC-SHA1(secret, username)). coturn recomputes the
//! password from the username and refuses it once the expiry has passed, so
//! nothing is shared with the TURN server but the secret, and a leaked
//! credential works only until it expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use uuid::Uuid;

use crate::config::IceServer;

/// TURN servers sharing one secret with this gateway.
#[derive(Clone)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs, all handed out with the same credential.
    pub urls: Vec<String>,
    pub secret: String,
    /// How long a credential works from the moment the socket gets it.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &"[redacted]")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnConfig {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

    /// The `iceServers` entry for `user`, valid for `ttl` from `now`.
    pub fn ice_server(&self, user: Uuid, now: SystemTime) -> IceServer {
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_add(self.ttl).as_secs();
        let username = format!("{expiry}:{user}");
        let credential = rest_api_password(&self.secret, &username);
        IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(credential) }
    }
}

/// base64(HMAC-SHA1(secret, username)), coturn's `use-auth-secret` password.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_base64_hmac_sha1_of_the_username() {
        // RFC 2202's HMAC-SHA1 test case 2: key "Jefe", "what do ya want for nothing?"
        // gives effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(rest_api_password("Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
        // A username in coturn's scheme, computed independently (Python's hmac module).
        assert_eq!(rest_api_password("north", "1700000000:alice"), "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
        assert_ne!(rest_api_password("north", "1700000000:alice"), rest_api_password("south", "1700000000:alice"));
    }

    #[test]
    fn the_username_is_the_expiry_and_the_user() {
        let turn = TurnConfig {
            urls: vec!["turn:turn.example.org:3478?transport=udp".into(), "turns:turn.example.org:5349".into()],
            secret: "s3cret".into(),
            ttl: Duration::from_secs(600),
        };
        let user = Uuid::parse_str("6f1c1a52-1b1e-4d5e-9a43-0c6f2a9f8b11").expect("uuid");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let server = turn.ice_server(user, now);
        let username = server.username.clone().expect("a username");
        assert_eq!(username, format!("1700000600:{user}"));
        assert_eq!(server.credential.as_deref(), Some(rest_api_password("s3cret", &username).as_str()));
        assert_eq!(server.urls, turn.urls);
        assert!(!format!("{turn:?}").contains("s3cret"), "the secret stays out of logs");
    }
}
