//! ICE credentials that name their peer.
//!
//! All peers share one UDP socket, so the first packet from a new address (a STUN
//! binding request) must say which peer it is for. Its USERNAME is
//! `<SFU ufrag>:<client ufrag>`, and the SFU's ufrag is chosen here to carry the
//! peer number, followed by random characters so it cannot be guessed.

use rand::Rng;
use rand::distr::Alphanumeric;

const SEPARATOR: char = 'z';

/// A fresh ufrag and password for the peer numbered `peer`.
pub fn credentials(peer: u64) -> (String, String) {
    let random = |len: usize| rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect::<String>();
    // Hex digits never contain the separator.
    (format!("{peer:x}{SEPARATOR}{}", random(8)), random(24))
}

/// The peer number in a STUN USERNAME sent to the SFU.
pub fn peer_of_username(username: &str) -> Option<u64> {
    let local = username.split_once(':').map_or(username, |(local, _)| local);
    let (peer, _) = local.split_once(SEPARATOR)?;
    u64::from_str_radix(peer, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_number_round_trips_through_a_stun_username() {
        let (ufrag, pwd) = credentials(0xabc_0000_0000);
        assert!(ufrag.len() >= 4 && pwd.len() >= 22, "RFC 8445 minimum lengths");
        assert_eq!(peer_of_username(&format!("{ufrag}:clientfrag")), Some(0xabc_0000_0000));
        assert_eq!(peer_of_username("nonsense:x"), None);
        assert_eq!(peer_of_username(""), None);
    }
}
