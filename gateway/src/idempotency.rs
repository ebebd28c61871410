//! `Idempotency-Key`: a client names a write so that sending it again (after a
//! timeout, a 503 `outcome_unknown`, a dropped connection) is stored at most once
//! and answered as the first was.
//!
//! The key is bound to who sends it and to the route (method and path), so two
//! users, or two endpoints, never share a command. From that binding come the
//! command ids (`Nats-Msg-Id`, which JetStream deduplicates within the stream's
//! duplicate window, 120 s) and the ids of what a write creates (a room, an
//! account), so a retried creation names the same resource as the first.

use axum::http::{HeaderMap, Method};
use uuid::Uuid;

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";

/// The longest key accepted.
pub const MAX_LEN: usize = 255;

/// The namespace of every id derived here (a fixed random UUID: changing it would
/// make retries across a deployment miss their first attempt).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a3e_9b47_4d0a_8e55_31c7_d2f0_a964);

/// The request's key, checked: 1 to 255 visible ASCII characters, sent once.
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else { return Ok(None) };
    let invalid = |why: &str| ApiError::bad_request("invalid_idempotency_key", format!("Idempotency-Key {why}"));
    if values.next().is_some() {
        return Err(invalid("must be sent once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_LEN {
        return Err(invalid("must be 1 to 255 characters long"));
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(invalid("must be visible ASCII characters (no spaces or control characters)"));
    }
    Ok(value.to_str().ok())
}

/// The request's key bound to `principal` (who sends it: a user id, or for a
/// registration the email address) and the route.
pub fn bind(headers: &HeaderMap, principal: &str, method: &Method, path: &str) -> Result<Option<Uuid>, ApiError> {
    Ok(key(headers)?.map(|key| Uuid::new_v5(&NAMESPACE, format!("{principal}\n{method} {path}\n{key}").as_bytes())))
}

/// An id derived from a bound key: the same for every retry of the request.
pub fn derive(bound: Uuid, what: &str) -> Uuid {
    Uuid::new_v5(&bound, what.as_bytes())
}

/// The command id of one command of a keyed request: a request may run several
/// commands (a registration claims, registers, confirms), each needs its own.
pub fn command_id<C: std::fmt::Debug>(bound: Uuid, aggregate_type: &str, aggregate_id: &str, command: &C) -> Uuid {
    command_id_of(bound, aggregate_type, aggregate_id, &variant_name(command))
}

/// [`command_id`] for a command known by its variant's name (`"Register"`), for
/// requests whose commands are built on the write side (a registration).
pub fn command_id_of(bound: Uuid, aggregate_type: &str, aggregate_id: &str, variant: &str) -> Uuid {
    derive(bound, &format!("{aggregate_type}/{aggregate_id}/{variant}"))
}

/// `Create` of `Create { .. }`: the derived `Debug` output starts with the
/// variant's name.
fn variant_name<C: std::fmt::Debug>(command: &C) -> String {
    format!("{command:?}").chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_bytes(value).expect("valid"));
        }
        headers
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length_sent_once() {
        assert_eq!(key(&headers(&[])).expect("valid"), None);
        assert_eq!(key(&headers(&[b"a-1_b:c"])).expect("valid"), Some("a-1_b:c"));
        assert!(key(&headers(&[&[b'k'; 255]])).expect("valid").is_some());
        for bad in [&b""[..], &[b'k'; 256], b"with space", b"tab\there", "é".as_bytes()] {
            assert_eq!(key(&headers(&[bad])).expect_err("refused").code, "invalid_idempotency_key", "{bad:?}");
        }
        assert!(key(&headers(&[b"a", b"b"])).is_err());
    }

    #[test]
    fn a_key_is_bound_to_its_sender_and_route() {
        let h = headers(&[b"k1"]);
        let one = bind(&h, "user-a", &Method::POST, "/api/v1/rooms").expect("valid").expect("keyed");
        assert_eq!(one, bind(&h, "user-a", &Method::POST, "/api/v1/rooms").expect("valid").expect("keyed"));
        assert_ne!(one, bind(&h, "user-b", &Method::POST, "/api/v1/rooms").expect("valid").expect("keyed"));
        assert_ne!(one, bind(&h, "user-a", &Method::PUT, "/api/v1/rooms").expect("valid").expect("keyed"));
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Command {
        Claim { email: String },
        Confirm,
    }

    #[test]
    fn each_command_of_a_request_has_its_own_id() {
        let bound = Uuid::new_v4();
        let claim = command_id(bound, "claim", "x", &Command::Claim { email: "a@b.c".into() });
        assert_eq!(claim, command_id(bound, "claim", "x", &Command::Claim { email: "other".into() }));
        assert_ne!(claim, command_id(bound, "claim", "x", &Command::Confirm));
        assert_ne!(claim, command_id(bound, "claim", "y", &Command::Claim { email: "a@b.c".into() }));
        assert_eq!(claim, command_id_of(bound, "claim", "x", "Claim"));
    }
}
