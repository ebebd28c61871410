//! Webhooks (SPEC §7): the worker that sends the deliveries the webhooks
//! projection queues (`webhook_deliveries`), signed as Standard Webhooks says.
//!
//! - `queue.rs`: the queue's SQL (due endpoints, leases, an endpoint's head,
//!   recording an attempt, the gauges' figures).
//! - `sign.rs`: the `webhook-signature` header.
//! - `guard.rs`: the SSRF guard (public addresses only, unless allowed), enforced
//!   by the HTTP client's resolver at every connection.
//! - `worker.rs`: the loop.
//!
//! Per endpoint, deliveries go out one at a time in stream order: a worker sends
//! only while it holds the endpoint's lease (`webhook_leases`, at most one live
//! holder across every rapat process; a crashed holder's lease expires), and
//! always the endpoint's oldest pending delivery, so a later event waits while an
//! earlier one is retried, and a `failed` one no longer holds the rest back.

mod guard;
mod queue;
mod sign;
mod worker;

use std::time::Duration;

pub use guard::{PrivateAddress, PublicOnly, ResolveError, check_literal, check_url};
pub use sign::signature_header;
pub use worker::WebhookWorker;

use crate::RetryPolicy;

/// The `channel` label of the webhook channel's metrics.
pub const CHANNEL: &str = "webhook";

#[derive(Clone, Copy, Debug)]
pub struct WebhookConfig {
    /// When a failed attempt is tried again, and when a delivery is `failed`.
    pub retry: RetryPolicy,
    /// Send to loopback, private and link-local addresses too (tests, private
    /// deployments): `RAPAT_WEBHOOK_ALLOW_PRIVATE`.
    pub allow_private: bool,
    /// A 2xx within this is delivered (SPEC §7: 10 s).
    pub request_timeout: Duration,
    /// How long an endpoint's lease lasts; renewed before every attempt. Longer
    /// than `request_timeout`: it is how long a crashed process's endpoints wait.
    pub lease: Duration,
    /// Most endpoints one process sends to at once.
    pub concurrency: usize,
    /// The longest sleep between looks at the queue (NOTIFY and due times wake it
    /// sooner): how late, at most, a worker sees a lease another process left.
    pub poll_every: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            allow_private: false,
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            concurrency: 128,
            poll_every: Duration::from_secs(5),
        }
    }
}
