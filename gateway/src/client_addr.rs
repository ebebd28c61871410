//! The client's address, which every per-address limit is keyed on.
//!
//! It is the TCP peer, unless the peer is one of the trusted reverse proxies
//! (`GatewayConfig::trusted_proxies`): then `X-Forwarded-For` is read from the
//! right (the hop nearest this server), skipping trusted proxies, and the first
//! address that is not one is the client. A client can prepend anything it likes
//! to that header, so nothing left of the first untrusted hop is believed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use ipnet::IpNet;
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The trusted proxies, and the one way to tell a request's client address.
#[derive(Clone, Debug, Default)]
pub struct ClientAddr {
    trusted_proxies: Arc<[IpNet]>,
}

impl ClientAddr {
    pub fn new(trusted_proxies: &[IpNet]) -> Self {
        Self { trusted_proxies: trusted_proxies.into() }
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies.iter().any(|proxy| proxy.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        // Every X-Forwarded-For header, in order, as one list; read from its end.
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A malformed hop was not written by a proxy we trust: stop at the
            // last address a trusted one vouched for.
            let Some(address) = parse_hop(hop) else { break };
            client = address;
            if !self.is_trusted(address) {
                break;
            }
        }
        client
    }

    /// The client of a request, from its `ConnectInfo` and headers; `None` when
    /// the server did not record the peer (never, for `Application`'s server).
    pub fn of_request<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
        Some(self.of(peer.ip(), request.headers()))
    }
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .map(|address| address.to_canonical())
}

/// tower_governor keys its buckets by the client address.
impl KeyExtractor for ClientAddr {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        self.of_request(request).ok_or(GovernorError::UnableToExtractKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(trusted: &[&str], peer: &str, forwarded: &[&str], expected: &str) {
        let trusted: Vec<IpNet> = trusted.iter().map(|net| net.parse().expect("a CIDR")).collect();
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(FORWARDED_FOR, value.parse().expect("a header value"));
        }
        let client = ClientAddr::new(&trusted).of(peer.parse().expect("an address"), &headers);
        assert_eq!(client, expected.parse::<IpAddr>().expect("an address"), "peer {peer}, forwarded {forwarded:?}");
    }

    #[test]
    fn the_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        check(&[], "198.51.100.1", &["203.0.113.7"], "198.51.100.1");
        check(&["10.0.0.0/8"], "198.51.100.1", &["203.0.113.7"], "198.51.100.1");
        check(&["10.0.0.0/8"], "10.1.2.3", &["203.0.113.7"], "203.0.113.7");
        check(&["10.0.0.0/8"], "10.1.2.3", &[], "10.1.2.3");
    }

    #[test]
    fn addresses_a_client_prepended_are_not_believed() {
        check(&["10.0.0.0/8"], "10.1.2.3", &["1.2.3.4, 203.0.113.7"], "203.0.113.7");
        check(&["10.0.0.0/8"], "10.1.2.3", &["1.2.3.4", "203.0.113.7, 10.9.9.9"], "203.0.113.7");
        check(&["10.0.0.0/8"], "10.1.2.3", &["203.0.113.7, garbage"], "10.1.2.3");
        check(&["10.0.0.0/8"], "10.1.2.3", &["10.0.0.5, 10.0.0.6"], "10.0.0.5");
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        check(&["::1/128"], "::1", &["[2001:db8::1]:443"], "2001:db8::1");
        check(&["127.0.0.0/8"], "::ffff:127.0.0.1", &["203.0.113.7:5000"], "203.0.113.7");
    }
}
