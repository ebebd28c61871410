//! What an administrator can ask of a webhook endpoint. Who may ask (an
//! administrator) and whether a delivery exists and has failed are read-model
//! questions the gateway answers before it sends a command.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventTypePattern, WebhookSecret, WebhookUrl};

#[derive(Clone, Debug)]
pub enum WebhookCommand {
    Register {
        url: WebhookUrl,
        event_types: Vec<EventTypePattern>,
        description: String,
        secret: WebhookSecret,
    },
    /// Changes what is given; the rest stays.
    Update {
        url: Option<WebhookUrl>,
        event_types: Option<Vec<EventTypePattern>>,
        enabled: Option<bool>,
        description: Option<String>,
    },
    /// A new secret from `at`; the previous one keeps signing too until
    /// [`super::PREVIOUS_SECRET_OVERLAP`] after `at`.
    RotateSecret {
        secret: WebhookSecret,
        at: DateTime<Utc>,
    },
    Delete,
    /// Send a failed delivery again (recorded, so the audit trail shows who asked).
    RetryDelivery {
        delivery_id: Uuid,
    },
}
