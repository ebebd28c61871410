//! Secrets in stored event payloads, and the one function that hides them. The
//! event stream keeps them (the aggregates need the hashes to check passwords);
//! every copy made for people to read does not: the audit read model stores
//! payloads redacted, `rapat events export` redacts unless an operator asks for
//! secrets, and the HTTP audit views redact what they read.

use serde_json::Value;

/// What a secret's value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Payload fields that hold a secret, or what checks one: an argon2id password hash
/// (account and room), which a leak would let anyone attack offline, and a
/// refresh token's SHA-256, which is what a refresh is checked against; a password
/// reset or email verification token's SHA-256, likewise; a webhook endpoint's
/// signing secret (`WebhookRegistered`, `WebhookSecretRotated`), which would let
/// anyone forge deliveries; a web push subscription's authentication secret, with
/// which anyone could encrypt messages for that browser.
pub const SECRET_FIELDS: [&str; 5] = ["passwordHash", "refreshHash", "tokenHash", "secret", "authSecret"];

/// Replaces every secret field's value in `payload` (at any depth) with
/// [`REDACTED`]. A `null` stays `null`, so "no password" still reads as such.
pub fn redact_secrets(payload: &mut Value) {
    match payload {
        Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) && !value.is_null() {
                    *value = Value::String(REDACTED.to_owned());
                } else {
                    redact_secrets(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// [`redact_secrets`] on a copy.
pub fn redacted(payload: &Value) -> Value {
    let mut copy = payload.clone();
    redact_secrets(&mut copy);
    copy
}

/// A stored message's bytes with their secrets redacted, for copies kept beside
/// the stream (parked messages). Bytes that are not JSON cannot be searched for
/// secret fields and are kept as they are.
pub fn redacted_message(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut message) => {
            redact_secrets(&mut message);
            serde_json::to_vec(&message).unwrap_or_else(|_| bytes.to_vec())
        }
        Err(_) => bytes.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{redacted, redacted_message};

    #[test]
    fn a_parked_message_keeps_no_secret_but_undecodable_bytes_stay_as_they_are() {
        let message = json!({ "events": [{ "payload": { "RoomCreated": { "passwordHash": "$argon2id$v=19$x" } } }] });
        let kept: serde_json::Value =
            serde_json::from_slice(&redacted_message(message.to_string().as_bytes())).expect("json");
        assert_eq!(kept["events"][0]["payload"]["RoomCreated"]["passwordHash"], json!("[redacted]"));
        assert_eq!(redacted_message(b"\xff not json"), b"\xff not json".to_vec());
    }

    #[test]
    fn secrets_are_replaced_and_everything_else_kept() {
        let created = json!({ "name": "Standup", "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$abc$def" });
        assert_eq!(redacted(&created), json!({ "name": "Standup", "passwordHash": "[redacted]" }));
        let open = json!({ "name": "Standup", "passwordHash": null });
        assert_eq!(redacted(&open), open);
        let started = json!({ "userId": "u", "refreshHash": "ab12", "expiresAt": "2026-01-01T00:00:00Z" });
        assert_eq!(redacted(&started)["refreshHash"], "[redacted]");
        let nested = json!({ "changes": [{ "passwordHash": "x" }] });
        assert_eq!(redacted(&nested), json!({ "changes": [{ "passwordHash": "[redacted]" }] }));
        let webhook = json!({ "url": "https://example.com/", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" });
        assert_eq!(redacted(&webhook), json!({ "url": "https://example.com/", "secret": "[redacted]" }));
        let subscribed = json!({ "endpoint": "https://push.example.net/x", "authSecret": "AAECAwQFBgcICQoLDA0ODw" });
        assert_eq!(redacted(&subscribed)["authSecret"], "[redacted]");
        assert_eq!(redacted(&subscribed)["endpoint"], "https://push.example.net/x");
        let joined = json!({ "userId": "7c9e6679-7425-40de-944b-e07fc1f90ae7" });
        assert_eq!(redacted(&joined), joined);
    }
}
