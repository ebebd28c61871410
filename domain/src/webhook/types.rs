//! What a webhook endpoint is made of, parsed: its URL, the event types it wants
//! and its signing secret. Whether a URL's host is a private address is decided by
//! [`is_public_address`]; looking the host up is I/O and belongs to the callers
//! (the gateway at registration, the delivery worker before every connection).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::WebhookError;
use crate::text::{TextRules, parse_text};

/// Longest URL accepted (browsers and proxies commonly cap near this).
pub const MAX_URL_CHARS: usize = 2048;
/// Most patterns in one endpoint's `eventTypes`.
pub const MAX_EVENT_TYPES: usize = 100;
/// A description's rules: optional prose.
pub const DESCRIPTION_RULES: TextRules = TextRules { may_be_empty: true, max_chars: 500, multiline: true };

/// An endpoint's URL: absolute `http` or `https`, with a host, without user
/// information or a fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let bad = |why: &str| WebhookError::BadUrl(why.to_owned());
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(bad("is longer than 2048 characters"));
        }
        let url = url::Url::parse(raw.trim()).map_err(|error| bad(&error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must use http or https"));
        }
        if url.host().is_none() {
            return Err(bad("has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry a user name or password"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host as the URL names it: a name to look up, or an address literal
    /// (IPv6 without its brackets).
    pub fn host(&self) -> Host {
        match url::Url::parse(&self.0).ok().and_then(|url| url.host().map(|host| host.to_owned())) {
            Some(url::Host::Ipv4(address)) => Host::Address(IpAddr::V4(address)),
            Some(url::Host::Ipv6(address)) => Host::Address(IpAddr::V6(address)),
            Some(url::Host::Domain(name)) => Host::Name(name),
            None => Host::Name(String::new()),
        }
    }

    /// The port a connection goes to (the scheme's default when none is given).
    pub fn port(&self) -> u16 {
        url::Url::parse(&self.0).ok().and_then(|url| url.port_or_known_default()).unwrap_or(443)
    }
}

/// The host part of a [`WebhookUrl`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Address(IpAddr),
    Name(String),
}

impl TryFrom<String> for WebhookUrl {
    type Error = WebhookError;

    fn try_from(raw: String) -> Result<Self, WebhookError> {
        Self::parse(&raw)
    }
}

impl From<WebhookUrl> for String {
    fn from(url: WebhookUrl) -> String {
        url.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which events an endpoint wants: one event type (`RoomCreated`), every event of
/// one aggregate type (`room.*`), or everything (`*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventTypePattern {
    All,
    Aggregate(String),
    Exact(String),
}

impl EventTypePattern {
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let bad = || WebhookError::BadEventType(raw.chars().take(100).collect());
        if raw == "*" {
            return Ok(Self::All);
        }
        if let Some(aggregate) = raw.strip_suffix(".*") {
            let mut chars = aggregate.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && aggregate.len() <= 64;
            return if valid { Ok(Self::Aggregate(aggregate.to_owned())) } else { Err(bad()) };
        }
        let mut chars = raw.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric())
            && raw.len() <= 100;
        if valid { Ok(Self::Exact(raw.to_owned())) } else { Err(bad()) }
    }

    /// Whether an event of `event_type` of an aggregate of `aggregate_type` matches.
    pub fn matches(&self, aggregate_type: &str, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Aggregate(aggregate) => aggregate == aggregate_type,
            Self::Exact(name) => name == event_type,
        }
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Aggregate(aggregate) => write!(f, "{aggregate}.*"),
            Self::Exact(name) => f.write_str(name),
        }
    }
}

impl TryFrom<String> for EventTypePattern {
    type Error = WebhookError;

    fn try_from(raw: String) -> Result<Self, WebhookError> {
        Self::parse(&raw)
    }
}

impl From<EventTypePattern> for String {
    fn from(pattern: EventTypePattern) -> String {
        pattern.to_string()
    }
}

/// A non-empty list of patterns, without repeats, in the order given.
pub fn parse_event_types<S: AsRef<str>>(raw: &[S]) -> Result<Vec<EventTypePattern>, WebhookError> {
    if raw.is_empty() {
        return Err(WebhookError::NoEventTypes);
    }
    if raw.len() > MAX_EVENT_TYPES {
        return Err(WebhookError::TooManyEventTypes);
    }
    let mut patterns: Vec<EventTypePattern> = Vec::with_capacity(raw.len());
    for entry in raw {
        let pattern = EventTypePattern::parse(entry.as_ref())?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Ok(patterns)
}

/// A description, trimmed; may be empty.
pub fn parse_description(raw: &str) -> Result<String, WebhookError> {
    parse_text(raw, DESCRIPTION_RULES).map_err(|error| WebhookError::BadDescription(error.to_string()))
}

/// A signing secret in the Standard Webhooks format: `whsec_` and the base64 of
/// 24 to 32 random bytes. Printed redacted; its value is reached on purpose only
/// ([`WebhookSecret::expose`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";

    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let key = raw.strip_prefix(Self::PREFIX).ok_or(WebhookError::BadSecret)?;
        let bytes = STANDARD.decode(key).map_err(|_| WebhookError::BadSecret)?;
        if !(24..=32).contains(&bytes.len()) {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret made of `key` (random bytes the caller drew).
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self(format!("{}{}", Self::PREFIX, STANDARD.encode(key)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the bytes the base64 part stands for.
    pub fn key(&self) -> Vec<u8> {
        STANDARD.decode(&self.0[Self::PREFIX.len()..]).unwrap_or_default()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = WebhookError;

    fn try_from(raw: String) -> Result<Self, WebhookError> {
        Self::parse(&raw)
    }
}

impl From<WebhookSecret> for String {
    fn from(secret: WebhookSecret) -> String {
        secret.0
    }
}

/// Whether `address` is one a webhook may be sent to: not loopback, private
/// (RFC 1918, unique local), link-local, unspecified, multicast, shared
/// (carrier-grade NAT), broadcast or reserved, also when an IPv6 address carries
/// such an IPv4 address (mapped, NAT64, 6to4).
pub fn is_public_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let refused = a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32));
    }
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(((segments[1] as u32) << 16) | segments[2] as u32));
    }
    let refused = address.is_unspecified()
        || address.is_loopback()
        || segments[..6] == [0; 6] // IPv4-compatible (deprecated)
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] & 0xff00) == 0xff00; // multicast
    !refused
}
