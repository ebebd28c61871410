//! The web push channel (SPEC §7; RFC 8030 with RFC 8291 message encryption and
//! RFC 8292 VAPID): the outbox's [`Sender`] for [`Channel::Push`].
//!
//! For a delivery (one notification for one recipient whose push switch is on
//! for its kind), it reads the recipient's subscriptions from the read model
//! (`push_subscriptions`), encrypts the message (`message.rs`: title, body, url,
//! notification id, kind) for each with `aes128gcm`, signs the request with the
//! deployment's VAPID key (`vapid.rs`) and POSTs it. A push service answering
//! 404 or 410 has dropped the subscription: it is removed with the `push`
//! aggregate's `Unsubscribe { reason: gone }` and counts as done. 429, 5xx and
//! network failures make the delivery retried (later, by the outbox); other 4xx
//! fail it. Subscriptions already served are remembered in this process for a
//! while, so a retry sends only to those that failed; a repeat elsewhere carries
//! the same `Topic` and service-worker tag, so it replaces rather than adds.

mod message;
mod resolve;
mod vapid;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::ids::UserId;
use rapat_domain::push::{EndpointPolicy, PushCommand, PushDevices, PushEndpoint, UnsubscribeReason};
use rapat_projections::queries::push::{PushSubscriptionRow, subscriptions_of};
use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub use message::PushMessage;
pub use vapid::{VapidError, VapidKey};

use crate::outbox::{Channel, Delivery, SendError, Sender};

/// Fixed forever: the command ids of `Unsubscribe { gone }` derive from it.
const GONE_COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x0b1e_55ed_7a1d_4c2e_9f3a_51c0_6d2e_8a47);

/// How the push channel runs (settings of the binary: `RAPAT_VAPID_PRIVATE_KEY`,
/// `RAPAT_VAPID_SUBJECT`, `RAPAT_PUSH_ALLOW_INSECURE`).
#[derive(Clone)]
pub struct PushConfig {
    /// The VAPID private key; `None`: the deployment's kept one (see `vapid.rs`).
    pub vapid_private_key: Option<String>,
    /// The VAPID `sub` claim: a `mailto:` or `https:` URL push services may use
    /// to reach the operator.
    pub vapid_subject: String,
    /// Accept `http` endpoints on loopback hosts, and endpoints that resolve to
    /// private addresses (tests and local push-service stand-ins only).
    pub allow_insecure: bool,
    /// How long a push service keeps a message for a browser that is offline
    /// (the `TTL` header).
    pub ttl: Duration,
    /// The longest a push service may take to answer one request.
    pub request_timeout: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            vapid_private_key: None,
            vapid_subject: "mailto:admin@localhost".to_owned(),
            allow_insecure: false,
            ttl: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("vapid_private_key", &self.vapid_private_key.as_ref().map(|_| "[redacted]"))
            .field("vapid_subject", &self.vapid_subject)
            .field("allow_insecure", &self.allow_insecure)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl PushConfig {
    /// Which subscription endpoints REST accepts.
    pub fn endpoint_policy(&self) -> EndpointPolicy {
        if self.allow_insecure { EndpointPolicy::AllowLoopbackHttp } else { EndpointPolicy::HttpsOnly }
    }

    /// The subject for a deployment at `public_url` (`RAPAT_PUBLIC_URL`), when
    /// `RAPAT_VAPID_SUBJECT` is not set: that URL if it is https, else
    /// `mailto:admin@localhost`.
    pub fn default_subject(public_url: Option<&str>) -> String {
        match public_url {
            Some(url) if url.starts_with("https://") => url.trim_end_matches('/').to_owned(),
            _ => "mailto:admin@localhost".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the push HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// One subscription's outcome.
enum Outcome {
    Delivered,
    Gone,
    Retry(String),
    Permanent(String),
}

/// Sends push deliveries; see the module's documentation.
pub struct PushSender {
    db: PgPool,
    devices: CommandBus<PushDevices>,
    http: reqwest::Client,
    config: PushConfig,
    key: OnceCell<VapidKey>,
    /// (delivery, endpoint) pairs served in this process, so a retried
    /// delivery goes only to the subscriptions that failed.
    served: Mutex<HashSet<(Uuid, String)>>,
}

impl PushSender {
    pub async fn open(
        nats: async_nats::Client,
        event_store: EventStoreConfig,
        db: PgPool,
        config: PushConfig,
    ) -> Result<Self, OpenError> {
        let devices = CommandBus::new(JetStreamEventStore::open(nats, event_store).await?, ());
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolve::PublicOnly { allow_private: config.allow_insecure }))
            .build()?;
        Ok(Self { db, devices, http, config, key: OnceCell::new(), served: Mutex::new(HashSet::new()) })
    }

    /// The deployment's VAPID key, read (or made and kept) once.
    pub async fn key(&self) -> Result<&VapidKey, VapidError> {
        self.key.get_or_try_init(|| VapidKey::resolve(self.config.vapid_private_key.as_deref(), &self.db)).await
    }

    async fn send_one(&self, key: &VapidKey, subscription: &PushSubscriptionRow, message: &PushMessage) -> Outcome {
        let Ok(endpoint) = url::Url::parse(&subscription.endpoint) else {
            return Outcome::Permanent("the endpoint is not a URL".to_owned());
        };
        let decoded = (URL_SAFE_NO_PAD.decode(&subscription.p256dh), URL_SAFE_NO_PAD.decode(&subscription.auth_secret));
        let (Ok(p256dh), Ok(auth)) = decoded else {
            return Outcome::Permanent("the subscription's keys are not base64url".to_owned());
        };
        let Ok(public) = web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh) else {
            return Outcome::Permanent("the subscription's key is not a P-256 point".to_owned());
        };
        if auth.len() != 16 {
            return Outcome::Permanent("the subscription's auth secret is not 16 bytes".to_owned());
        }
        let auth = web_push_native::Auth::clone_from_slice(&auth);
        let body = match web_push_native::encrypt(message.to_bytes(), &public, &auth) {
            Ok(body) => body,
            Err(error) => return Outcome::Permanent(format!("encrypting: {error}")),
        };
        let audience = endpoint.origin().ascii_serialization();
        let authorization = key.authorization(&audience, &self.config.vapid_subject, Duration::from_secs(12 * 3600));
        let mut request = self
            .http
            .post(endpoint)
            .header("TTL", self.config.ttl.as_secs().to_string())
            .header("Urgency", message.urgency())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body);
        if let Some(topic) = message.topic() {
            request = request.header("Topic", topic);
        }
        match request.send().await {
            Ok(answer) => classify(answer.status().as_u16()),
            Err(error) => Outcome::Retry(format!("push service unreachable: {error}")),
        }
    }

    /// Removes a subscription the push service says is gone.
    async fn remove_gone(&self, user: UserId, delivery: Uuid, endpoint: &str) -> Result<(), String> {
        // Already in the read model, so it parsed once; read back without the
        // policy check (the policy may have changed since).
        let endpoint: PushEndpoint =
            serde_json::from_value(serde_json::Value::String(endpoint.to_owned())).map_err(|e| e.to_string())?;
        let key = format!("{user}/{delivery}/{endpoint}");
        let metadata = CommandMetadata::system().with_command_id(Uuid::new_v5(&GONE_COMMAND_NAMESPACE, key.as_bytes()));
        let command = PushCommand::Unsubscribe { user, endpoint, reason: UnsubscribeReason::Gone };
        self.devices.execute(&user.to_string(), command, metadata).await.map(|_| ()).map_err(|error| error.to_string())
    }

    fn served(&self, delivery: Uuid, endpoint: &str) -> bool {
        self.served.lock().map(|served| served.contains(&(delivery, endpoint.to_owned()))).unwrap_or(false)
    }

    fn remember(&self, delivery: Uuid, endpoint: &str) {
        if let Ok(mut served) = self.served.lock() {
            if served.len() >= 100_000 {
                served.clear();
            }
            served.insert((delivery, endpoint.to_owned()));
        }
    }
}

fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Gone,
        429 | 500..=599 => Outcome::Retry(format!("push service answered {status}")),
        _ => Outcome::Permanent(format!("push service answered {status}")),
    }
}

#[async_trait]
impl Sender for PushSender {
    fn channel(&self) -> Channel {
        Channel::Push
    }

    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let Some(recipient) = delivery.recipient_id.map(UserId::from_uuid) else {
            return Err(SendError::Permanent("a push delivery without a recipient".to_owned()));
        };
        let subscriptions = subscriptions_of(&self.db, recipient)
            .await
            .map_err(|error| SendError::Retry(format!("reading push subscriptions: {error}")))?;
        let pending: Vec<_> = subscriptions.iter().filter(|s| !self.served(delivery.id, &s.endpoint)).collect();
        if pending.is_empty() {
            // No browser subscribed (or every one served): nothing to send.
            return Ok(());
        }
        let key = self.key().await.map_err(|error| SendError::Retry(format!("VAPID key: {error}")))?;
        let message = PushMessage::new(&delivery.kind, delivery.notification_id, &delivery.payload);
        // Side by side: a user's browsers must not wait for each other's push
        // services, and the whole send stays within the worker's time for it.
        let message = &message;
        let sends = pending.iter().map(|subscription| async move {
            let outcome = match self.send_one(key, subscription, message).await {
                Outcome::Gone => match self.remove_gone(recipient, delivery.id, &subscription.endpoint).await {
                    Ok(()) => {
                        tracing::info!(user = %recipient, endpoint = %subscription.endpoint, "push subscription gone; removed");
                        metrics::counter!("rapat_push_subscriptions_gone_total").increment(1);
                        Outcome::Gone
                    }
                    Err(error) => Outcome::Retry(format!("removing a gone subscription: {error}")),
                },
                other => other,
            };
            (subscription, outcome)
        });
        let (mut delivered, mut retry, mut permanent) = (0usize, Vec::new(), Vec::new());
        for (subscription, outcome) in futures::future::join_all(sends).await {
            match outcome {
                Outcome::Delivered => {
                    delivered += 1;
                    self.remember(delivery.id, &subscription.endpoint);
                }
                Outcome::Gone => self.remember(delivery.id, &subscription.endpoint),
                Outcome::Retry(error) => retry.push(error),
                Outcome::Permanent(error) => {
                    tracing::warn!(user = %recipient, endpoint = %subscription.endpoint, %error, "push refused");
                    permanent.push(error);
                    self.remember(delivery.id, &subscription.endpoint);
                }
            }
        }
        if !retry.is_empty() {
            return Err(SendError::Retry(retry.join("; ")));
        }
        if delivered == 0 && !permanent.is_empty() {
            return Err(SendError::Permanent(permanent.join("; ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_delivered_gone_retried_or_failed() {
        let name = |outcome: Outcome| match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Gone => "gone",
            Outcome::Retry(_) => "retry",
            Outcome::Permanent(_) => "permanent",
        };
        for (status, expected) in [
            (201, "delivered"),
            (202, "delivered"),
            (404, "gone"),
            (410, "gone"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
            (400, "permanent"),
            (403, "permanent"),
            (413, "permanent"),
        ] {
            assert_eq!(name(classify(status)), expected, "{status}");
        }
    }

    #[test]
    fn the_subject_follows_the_public_url() {
        assert_eq!(PushConfig::default_subject(Some("https://meet.example.org/")), "https://meet.example.org");
        assert_eq!(PushConfig::default_subject(Some("http://localhost:8080")), "mailto:admin@localhost");
        assert_eq!(PushConfig::default_subject(None), "mailto:admin@localhost");
    }
}
