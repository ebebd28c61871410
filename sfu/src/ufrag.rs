//! The SFU side's ICE credentials of each peer.
//!
//! All peers share a UDP socket, so the first packet from a new address (a STUN
//! binding request) must say which peer it is for: its USERNAME is
//! `<SFU ufrag>:<client ufrag>`, and `routes.rs` looks the SFU half up among the
//! peers that exist. The ufrag starts with the peer number, so it is unique, and
//! goes on with random characters, so it cannot be guessed; the password, which
//! keys the request's MESSAGE-INTEGRITY, only the peer's client ever receives.

use rand::Rng;
use rand::distr::Alphanumeric;

const SEPARATOR: char = 'z';

#[derive(Clone)]
pub struct IceCredentials {
    pub ufrag: String,
    pub password: String,
}

impl std::fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceCredentials").field("ufrag", &self.ufrag).field("password", &"[redacted]").finish()
    }
}

/// A fresh ufrag and password for the peer numbered `peer`.
pub fn credentials(peer: u64) -> IceCredentials {
    let random = |len: usize| rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect::<String>();
    // Hex digits never contain the separator, so no two peers' ufrags are equal.
    IceCredentials { ufrag: format!("{peer:x}{SEPARATOR}{}", random(8)), password: random(24) }
}

/// The SFU's half of a STUN USERNAME sent to the SFU.
pub fn local_ufrag(username: &str) -> &str {
    username.split_once(':').map_or(username, |(local, _)| local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_unique_long_enough_and_the_username_names_them() {
        let first = credentials(0xabc_0000_0000);
        let second = credentials(0xabc_0000_0000);
        assert!(first.ufrag.len() >= 4 && first.password.len() >= 22, "RFC 8445 minimum lengths");
        assert_ne!(first.ufrag, second.ufrag);
        assert_ne!(first.password, second.password);
        assert_eq!(local_ufrag(&format!("{}:clientfrag", first.ufrag)), first.ufrag);
        assert_eq!(local_ufrag("nocolon"), "nocolon");
        assert_eq!(local_ufrag(""), "");
        assert!(!format!("{first:?}").contains(&first.password));
    }
}
