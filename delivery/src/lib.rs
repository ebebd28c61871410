//! Delivery channels (SPEC §7). Each channel is a durable, at-least-once worker
//! over a Postgres outbox that a projection fills in the same transaction as the
//! read model it derives from, so a channel that is down only delays its rows and
//! a restart resumes from the table. Workers in several rapat processes share the
//! work by leasing rows; receivers recognise a repeat by its stable id
//! (`webhook-id`, `Message-ID`, the push message's topic).
//!
//! - `retry`: the backoff schedule every channel uses.
//! - `email`: the email channel's `Sender` (SMTP with lettre) and its messages.
//! - `metrics`: the gauges every channel exports.
//! - `outbox`: the worker that drains the email and push outbox (`deliveries`,
//!   filled by `rapat_projections::outbox`) through a channel's `Sender`.
//! - `webhooks`: the webhook worker, over `webhook_deliveries` (filled by the
//!   webhooks projection), one delivery in flight per endpoint, in stream order.

pub mod email;
pub mod metrics;
pub mod outbox;
pub mod push;
pub mod retry;
pub mod webhooks;

pub use metrics::ChannelCounts;
pub use outbox::{Channel, Delivery, OutboxWorker, SendError, Sender, WorkerConfig};
pub use retry::{NextStep, RetryPolicy};

/// Delivered messages are deleted this long after delivery (failed and pending
/// ones are kept until they are delivered or resent).
pub(crate) const KEEP_DELIVERED: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
