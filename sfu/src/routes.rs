//! A receive loop's routing table: which peer a datagram from an address is for.
//!
//! A known address maps to its peer. An address becomes known only through a
//! STUN binding request whose USERNAME names a peer that exists now (its SFU
//! ufrag, registered by the peer's worker when it created the peer) and whose
//! MESSAGE-INTEGRITY verifies with that peer's ICE password: something only the
//! client that received the SFU's answer can send. Nothing is kept for any other
//! datagram, so a spoofed request costs a parse and at most one HMAC and leaves
//! no trace; the table holds at most `max_addresses_per_peer` addresses per
//! existing peer (the first that verified), and they go when the peer closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rtc::crypto::RTCCryptoProvider;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, Message, is_stun_message};
use rtc::stun::textattrs::Username;

use crate::ufrag::{IceCredentials, local_ufrag};

/// What a worker tells the receive loop of its peer's socket (and the ICE-TCP listener).
#[derive(Clone, Debug)]
pub enum RouteChange {
    /// A peer exists: binding requests for its ufrag that verify with its password route to it.
    Admit { peer: u64, credentials: IceCredentials },
    /// The peer closed: its credentials and addresses stop routing.
    Forget { peer: u64 },
}

struct PeerRoutes {
    credentials: IceCredentials,
    addresses: Vec<SocketAddr>,
}

pub struct RouteTable {
    by_address: HashMap<SocketAddr, u64>,
    by_ufrag: HashMap<String, u64>,
    peers: HashMap<u64, PeerRoutes>,
    max_addresses_per_peer: usize,
    crypto: Arc<dyn RTCCryptoProvider>,
    /// Reused for every STUN message parsed, with its buffers.
    message: Message,
}

impl RouteTable {
    pub fn new(max_addresses_per_peer: usize, crypto: Arc<dyn RTCCryptoProvider>) -> Self {
        Self {
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            peers: HashMap::new(),
            max_addresses_per_peer: max_addresses_per_peer.max(1),
            crypto,
            message: Message::new(),
        }
    }

    /// Addresses routed, over every peer.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    pub fn apply(&mut self, change: RouteChange) {
        match change {
            RouteChange::Admit { peer, credentials } => {
                self.by_ufrag.insert(credentials.ufrag.clone(), peer);
                self.peers.insert(peer, PeerRoutes { credentials, addresses: Vec::new() });
            }
            RouteChange::Forget { peer } => {
                let Some(routes) = self.peers.remove(&peer) else { return };
                self.by_ufrag.remove(&routes.credentials.ufrag);
                for address in routes.addresses {
                    self.by_address.remove(&address);
                }
            }
        }
    }

    /// The peer of an address already routed.
    pub fn known(&self, from: SocketAddr) -> Option<u64> {
        self.by_address.get(&from).copied()
    }

    /// Routes `from` to a peer if `datagram` is a binding request verified with
    /// that peer's credentials (an address already routed stays with its peer).
    /// A peer at its cap of addresses gets no more: every new address also becomes
    /// a remote candidate inside the peer's ICE agent, so even the peer's own
    /// client must not add them without end. A client that moves more often than
    /// that reconnects, with a new peer.
    pub fn learn(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<u64> {
        if let Some(peer) = self.known(from) {
            return Some(peer);
        }
        let peer = self.verified_peer(datagram)?;
        let routes = self.peers.get_mut(&peer)?;
        if routes.addresses.len() >= self.max_addresses_per_peer {
            tracing::debug!(peer, %from, "a peer at its cap of addresses tried another");
            return None;
        }
        routes.addresses.push(from);
        self.by_address.insert(from, peer);
        Some(peer)
    }

    /// The peer a STUN binding request is for, if it names an existing peer and
    /// its MESSAGE-INTEGRITY holds with that peer's password.
    fn verified_peer(&mut self, datagram: &[u8]) -> Option<u64> {
        if !is_stun_message(datagram) {
            return None;
        }
        self.message.unmarshal_binary(datagram).ok()?;
        if self.message.typ != BINDING_REQUEST {
            return None;
        }
        let username = Username::get_from_as(&self.message, ATTR_USERNAME).ok()?;
        let peer = *self.by_ufrag.get(local_ufrag(&username.text))?;
        let password = self.peers.get(&peer)?.credentials.password.as_bytes();
        MessageIntegrity::check(&mut self.message, password, self.crypto.crypto()).ok()?;
        Some(peer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rand::{Rng, RngCore};
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::message::{Setter, TransactionId};

    use super::*;
    use crate::ufrag::credentials;

    fn table(max_addresses: usize) -> RouteTable {
        RouteTable::new(max_addresses, rtc::crypto::default_provider().expect("a crypto provider"))
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], port))
    }

    /// A binding request as a client sends it: USERNAME, MESSAGE-INTEGRITY, FINGERPRINT.
    fn binding_request(username: &str, password: &str) -> Vec<u8> {
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        let mut message = Message::new();
        let integrity =
            MessageIntegrity::new_short_term_integrity_with_provider(password.to_string(), provider.crypto());
        let setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, username.to_string())),
            Box::new(integrity),
            Box::new(FINGERPRINT),
        ];
        message.build(&setters).expect("a binding request");
        message.raw
    }

    #[test]
    fn only_a_verified_request_for_an_existing_peer_adds_a_route() {
        let mut routes = table(8);
        let real = credentials(7);
        let username = format!("{}:client", real.ufrag);
        assert_eq!(routes.learn(address(1), &binding_request(&username, &real.password)), None, "no such peer yet");
        routes.apply(RouteChange::Admit { peer: 7, credentials: real.clone() });

        assert_eq!(routes.learn(address(2), &binding_request(&username, "the wrong password, 24 ch")), None);
        assert_eq!(routes.learn(address(3), &binding_request("7zNotTheRealOne:client", &real.password)), None);
        assert_eq!(
            routes.learn(address(4), &binding_request(&format!("{}:client", credentials(7).ufrag), &real.password)),
            None
        );
        assert_eq!(routes.len(), 0, "nothing kept for refused requests");

        assert_eq!(routes.learn(address(5), &binding_request(&username, &real.password)), Some(7));
        assert_eq!(routes.known(address(5)), Some(7));
        assert_eq!(routes.len(), 1);

        routes.apply(RouteChange::Forget { peer: 7 });
        assert_eq!((routes.len(), routes.known(address(5))), (0, None));
        assert_eq!(
            routes.learn(address(6), &binding_request(&username, &real.password)),
            None,
            "a closed peer's credentials stop working"
        );
    }

    #[test]
    fn a_peer_routes_from_at_most_its_first_addresses() {
        let mut routes = table(3);
        let real = credentials(1);
        routes.apply(RouteChange::Admit { peer: 1, credentials: real.clone() });
        let request = binding_request(&format!("{}:c", real.ufrag), &real.password);
        for port in 1..=10 {
            let expected = (port <= 3).then_some(1);
            assert_eq!(routes.learn(address(port), &request), expected, "port {port}");
        }
        assert_eq!(routes.len(), 3);
        assert_eq!([1, 2, 3].map(|port| routes.known(address(port))), [Some(1); 3]);
        assert_eq!(routes.learn(address(2), b"not even STUN"), Some(1), "a routed address needs no new check");
    }

    /// Random datagrams, random STUN-shaped ones and mutations of a valid request:
    /// nothing panics, and nothing but the intact request routes.
    #[test]
    fn hostile_datagrams_neither_panic_nor_route() {
        let mut routes = table(8);
        let real = credentials(3);
        routes.apply(RouteChange::Admit { peer: 3, credentials: real.clone() });
        let valid = binding_request(&format!("{}:client", real.ufrag), &real.password);
        let mut rng = rand::rng();
        let started = Instant::now();
        let mut tried = 0u32;
        while tried < 50_000 && started.elapsed() < Duration::from_secs(10) {
            tried += 1;
            let datagram: Vec<u8> = match tried % 4 {
                0 => {
                    let mut bytes = vec![0u8; rng.random_range(0..1500)];
                    rng.fill_bytes(&mut bytes);
                    bytes
                }
                1 => {
                    // A STUN header (magic cookie) with a random length and random attributes.
                    let mut bytes = vec![0u8; rng.random_range(20..600)];
                    rng.fill_bytes(&mut bytes);
                    bytes[0] &= 0x3f;
                    bytes[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
                    if rng.random_bool(0.5) {
                        let length = (bytes.len() - 20) as u16 & !3;
                        bytes[2..4].copy_from_slice(&length.to_be_bytes());
                    }
                    bytes
                }
                2 => {
                    let mut bytes = valid.clone();
                    for _ in 0..rng.random_range(1..4) {
                        let at = rng.random_range(0..bytes.len());
                        bytes[at] = rng.random();
                    }
                    if bytes == valid {
                        continue;
                    }
                    bytes
                }
                _ => valid[..rng.random_range(0..valid.len())].to_vec(),
            };
            let from = address(rng.random_range(1..u16::MAX));
            if let Some(peer) = routes.learn(from, &datagram) {
                // FINGERPRINT (the last 8 bytes) comes after MESSAGE-INTEGRITY, so the HMAC does not
                // cover it, nor a header length that ends the message before it (the HMAC is computed
                // with the length cut there anyway).
                let covered = valid.len() - 8;
                assert_eq!(peer, 3);
                assert_eq!(
                    (&datagram[..2], &datagram[4..covered]),
                    (&valid[..2], &valid[4..covered]),
                    "a changed request routed"
                );
                routes.apply(RouteChange::Forget { peer: 3 });
                routes.apply(RouteChange::Admit { peer: 3, credentials: real.clone() });
            }
            assert_eq!(routes.len(), 0, "datagram {datagram:02x?} routed");
        }
        assert!(tried >= 1_000, "only {tried} datagrams in the time allowed");
        assert_eq!(routes.learn(address(1), &valid), Some(3));
    }
}
