//! What a browser's `PushSubscription` carries, parsed: the push service's
//! endpoint, the subscription's P-256 public key and its authentication secret.

use core::net::IpAddr;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::PushInputError;

/// Which endpoints are accepted: `https` only, or also `http` to a loopback
/// host (for tests and local development; `RAPAT_PUSH_ALLOW_INSECURE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointPolicy {
    #[default]
    HttpsOnly,
    AllowLoopbackHttp,
}

/// A push service's endpoint for one subscription (RFC 8030 §5): an absolute
/// `https` URL without credentials, at most [`PushEndpoint::MAX_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PushEndpoint(String);

impl PushEndpoint {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(raw: &str, policy: EndpointPolicy) -> Result<Self, PushInputError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(PushInputError::BadEndpoint);
        }
        let url = url::Url::parse(raw).map_err(|_| PushInputError::BadEndpoint)?;
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(PushInputError::BadEndpoint);
        }
        let host = url.host().ok_or(PushInputError::BadEndpoint)?;
        match url.scheme() {
            "https" => {}
            "http" if policy == EndpointPolicy::AllowLoopbackHttp && is_loopback(&host) => {}
            "http" => return Err(PushInputError::InsecureEndpoint),
            _ => return Err(PushInputError::BadEndpoint),
        }
        // A push service is on the public internet; an address literal of a
        // private, loopback or link-local network is refused unless allowed.
        if policy == EndpointPolicy::HttpsOnly && is_private_literal(&host) {
            return Err(PushInputError::PrivateEndpoint);
        }
        Ok(Self(url.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PushEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PushEndpoint").field(&self.0).finish()
    }
}

impl fmt::Display for PushEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn is_private_literal(host: &url::Host<&str>) -> bool {
    let ip: IpAddr = match host {
        url::Host::Domain(name) => return name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => (*ip).into(),
        url::Host::Ipv6(ip) => (*ip).into(),
    };
    match ip {
        IpAddr::V4(ip) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast()
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback() || ip.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The subscription's public key (`keys.p256dh`): an uncompressed P-256 point,
/// 65 bytes, in unpadded base64url.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct P256dhKey(String);

impl P256dhKey {
    pub fn parse(raw: &str) -> Result<Self, PushInputError> {
        let bytes = decode(raw).ok_or(PushInputError::BadP256dh)?;
        if bytes.len() != 65 || bytes[0] != 0x04 || p256::PublicKey::from_sec1_bytes(&bytes).is_err() {
            return Err(PushInputError::BadP256dh);
        }
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for P256dhKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("P256dhKey").field(&self.0).finish()
    }
}

/// The subscription's authentication secret (`keys.auth`): 16 bytes, in
/// unpadded base64url. A secret: never logged, redacted in the audit trail.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthSecret(String);

impl AuthSecret {
    pub fn parse(raw: &str) -> Result<Self, PushInputError> {
        match decode(raw) {
            Some(bytes) if bytes.len() == 16 => Ok(Self(URL_SAFE_NO_PAD.encode(bytes))),
            _ => Err(PushInputError::BadAuth),
        }
    }

    /// The secret, to encrypt a message with. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthSecret([redacted])")
    }
}

/// Base64url with or without padding (browsers give it unpadded; some
/// libraries pad), at most a few hundred characters.
fn decode(raw: &str) -> Option<Vec<u8>> {
    if raw.len() > 256 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()
}
