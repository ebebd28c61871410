//! Placeholder of the outbox API (see the email/push outbox on main); replaced by
//! the real module when merged.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Push,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: Uuid,
    pub channel: Channel,
    pub kind: String,
    pub recipient_id: Option<Uuid>,
    pub address: Option<String>,
    pub notification_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub event_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("retry: {0}")]
    Retry(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

#[async_trait::async_trait]
pub trait Sender: Send + Sync + 'static {
    fn channel(&self) -> Channel;
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError>;
}
