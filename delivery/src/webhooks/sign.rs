//! Standard Webhooks signatures: `v1,` and the base64 of HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the bytes of the
//! secret's base64 part; several signatures separated by spaces (during a secret
//! rotation's overlap, one per valid secret).
//!
//! Signed here with RustCrypto's `hmac` (already in the tree through
//! jsonwebtoken) rather than the `standardwebhooks` crate, a single 2024 release
//! that signs with one secret per call and brings a second base64 and HMAC
//! implementation; the tests verify every signature with that crate, so the two
//! implementations are held to agree.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rapat_domain::webhook::WebhookSecret;
use sha2::Sha256;

/// The `webhook-signature` header: one `v1,<signature>` per secret, space-separated.
pub fn signature_header(secrets: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1,{}", sign(&secret.key(), id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC takes a key of any length") };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn the_specifications_example_signs_as_published() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret");
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[&secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_and_the_receivers_library_accepts_each() {
        let current = WebhookSecret::from_key(&[1; 32]);
        let previous = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("24 bytes");
        let body = br#"{"id":"x"}"#;
        let timestamp = chrono::Utc::now().timestamp();
        let header = signature_header(&[&current, &previous], "evt_1", timestamp, body);
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&current, &previous] {
            let mut headers = http::HeaderMap::new();
            headers.insert("webhook-id", "evt_1".parse().expect("header"));
            headers.insert("webhook-timestamp", timestamp.to_string().parse().expect("header"));
            headers.insert("webhook-signature", header.parse().expect("header"));
            let verifier = standardwebhooks::Webhook::new(secret.expose()).expect("a secret it reads");
            verifier.verify(body, &headers).expect("verified");
        }
        let stranger = standardwebhooks::Webhook::new(WebhookSecret::from_key(&[3; 32]).expose()).expect("secret");
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().expect("header"));
        headers.insert("webhook-timestamp", timestamp.to_string().parse().expect("header"));
        headers.insert("webhook-signature", header.parse().expect("header"));
        assert!(stranger.verify(body, &headers).is_err());
    }
}
