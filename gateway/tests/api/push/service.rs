//! A push service stand-in on loopback (RFC 8030), as a browser vendor runs
//! one: it takes a message for a subscription at `POST /push/<name>`, checks its
//! VAPID authorization (RFC 8292: an ES256 JWT signed with the deployment's
//! public key, `aud` the endpoint's origin, `exp` within 24 h, a `sub`) and
//! decrypts the `aes128gcm` body (RFC 8291) with the subscription's private
//! keys, which the test made and so owns. It answers as it is told per
//! subscription: 201, 410 (gone) or another status, and can be stopped and
//! started again on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rand::RngCore as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A subscription the test made: its private key and auth secret stay here.
pub struct Subscription {
    pub name: String,
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Subscription {
    pub fn new(name: &str) -> Self {
        let secret = loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        rand::rng().fill_bytes(&mut auth);
        Self { name: name.to_owned(), secret, auth }
    }

    /// The browser's `PushSubscription.toJSON()` for this subscription at `service`.
    pub fn json(&self, service: &PushService) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": service.endpoint(&self.name),
            "expirationTime": null,
            "keys": { "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(self.auth) },
        })
    }
}

/// One message the stand-in accepted, decrypted.
#[derive(Clone, Debug)]
pub struct Received {
    pub message: Value,
    pub ttl: Option<String>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// The deployment's VAPID public key, as GET /push/vapid-public-key gave it.
    vapid_key: Option<String>,
    keys: HashMap<String, (p256::SecretKey, [u8; 16])>,
    /// What to answer per subscription; 201 when not set.
    answers: HashMap<String, u16>,
    received: HashMap<String, Vec<Received>>,
    /// Requests refused for a broken authorization or body: must stay empty.
    refused: Vec<String>,
    /// Requests answered with a status set by the test, per subscription.
    answered: HashMap<String, u32>,
}

#[derive(Clone)]
pub struct PushService {
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<Mutex<CancellationToken>>,
}

impl PushService {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("bound");
        let service = Self {
            address,
            inner: Arc::new(Mutex::new(Inner::default())),
            stop: Arc::new(Mutex::new(CancellationToken::new())),
        };
        service.serve(listener);
        service
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let router = Router::new().route("/push/{name}", post(receive)).with_state(self.clone());
        let stop = self.stop.lock().expect("lock").clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
    }

    /// Stops answering: the port refuses connections until [`PushService::restart`].
    pub async fn stop(&self) {
        self.stop.lock().expect("lock").cancel();
        // The listener closes as the server task ends.
        rapat_testkit::eventually_async("the push service to stop", std::time::Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(self.address).await.is_err()
        })
        .await;
    }

    pub async fn restart(&self) {
        *self.stop.lock().expect("lock") = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind(self.address).await.expect("the same port again");
        self.serve(listener);
    }

    pub fn endpoint(&self, name: &str) -> String {
        format!("http://{}/push/{name}", self.address)
    }

    pub fn expect_vapid_key(&self, public_key: &str) {
        self.inner.lock().expect("lock").vapid_key = Some(public_key.to_owned());
    }

    pub fn add(&self, subscription: &Subscription) {
        let keys = (subscription.secret.clone(), subscription.auth);
        self.inner.lock().expect("lock").keys.insert(subscription.name.clone(), keys);
    }

    pub fn answer(&self, name: &str, status: u16) {
        self.inner.lock().expect("lock").answers.insert(name.to_owned(), status);
    }

    /// Back to accepting messages for `name`.
    pub fn unanswer(&self, name: &str) {
        self.inner.lock().expect("lock").answers.remove(name);
    }

    pub fn received(&self, name: &str) -> Vec<Received> {
        self.inner.lock().expect("lock").received.get(name).cloned().unwrap_or_default()
    }

    pub fn answered(&self, name: &str) -> u32 {
        self.inner.lock().expect("lock").answered.get(name).copied().unwrap_or(0)
    }

    pub fn refused(&self) -> Vec<String> {
        self.inner.lock().expect("lock").refused.clone()
    }
}

async fn receive(
    State(service): State<PushService>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match check(&service, &name, &headers, &body) {
        Ok(received) => {
            let mut inner = service.inner.lock().expect("lock");
            if let Some(status) = inner.answers.get(&name).copied() {
                *inner.answered.entry(name).or_default() += 1;
                return StatusCode::from_u16(status).expect("a status");
            }
            inner.received.entry(name).or_default().push(received);
            StatusCode::CREATED
        }
        Err(problem) => {
            service.inner.lock().expect("lock").refused.push(format!("{name}: {problem}"));
            StatusCode::BAD_REQUEST
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// Everything a real push service and browser would check, or why it fails.
fn check(service: &PushService, name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Received, String> {
    let (vapid_key, keys) = {
        let inner = service.inner.lock().expect("lock");
        (inner.vapid_key.clone(), inner.keys.get(name).cloned())
    };
    let vapid_key = vapid_key.ok_or("the test set no VAPID key")?;
    let (secret, auth) = keys.ok_or("no such subscription")?;

    // RFC 8292: Authorization: vapid t=<jwt>, k=<public key>.
    let authorization = header(headers, "authorization").ok_or("no Authorization")?;
    let (token, key) =
        authorization.strip_prefix("vapid t=").and_then(|rest| rest.split_once(", k=")).ok_or("not a vapid scheme")?;
    if key != vapid_key {
        return Err(format!("signed with another key: {key}"));
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let (jwt_header, claims) = signing_input.split_once('.').ok_or("not a JWT")?;
    let decode_json = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    if decode_json(jwt_header)?["alg"] != "ES256" {
        return Err("alg is not ES256".into());
    }
    let public = URL_SAFE_NO_PAD.decode(key).map_err(|e| e.to_string())?;
    let verifying = VerifyingKey::from_sec1_bytes(&public).map_err(|e| e.to_string())?;
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    verifying.verify(signing_input.as_bytes(), &signature).map_err(|_| "the JWT signature does not verify")?;
    let claims = decode_json(claims)?;
    // The origin the sender addressed this service by (an IP or a name).
    let origin = format!("http://{}", header(headers, "host").ok_or("no Host")?);
    if claims["aud"] != origin {
        return Err(format!("aud {} is not the endpoint's origin {origin}", claims["aud"]));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is not within 24 h of {now}"));
    }
    if !claims["sub"].as_str().is_some_and(|sub| sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err("no mailto: or https: sub".into());
    }

    // RFC 8291: the body is one aes128gcm record for this subscription's keys.
    if header(headers, "content-encoding").as_deref() != Some("aes128gcm") {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    if body.len() > 4096 {
        return Err(format!("a {}-byte body is over 4096", body.len()));
    }
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    let plain = web_push_native::decrypt(body.to_vec(), &secret, &auth).map_err(|e| format!("decrypting: {e}"))?;
    let message = serde_json::from_slice(&plain).map_err(|e| format!("the message is not JSON: {e}"))?;
    let ttl = header(headers, "ttl");
    if ttl.as_deref().and_then(|ttl| ttl.parse::<u64>().ok()).is_none() {
        return Err("no TTL".into());
    }
    Ok(Received { message, ttl, urgency: header(headers, "urgency"), topic: header(headers, "topic") })
}
