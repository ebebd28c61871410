//! What happened to a webhook endpoint. Payload shapes are a stored contract: see
//! `schemas/events/webhook/`. The secret is in the events (a rebuilt read model
//! must still sign); every copy for people to read redacts the `secret` field
//! (`rapat_projections::redaction`).

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{EventTypePattern, WebhookSecret, WebhookUrl};
use crate::envelope::{Upcast, UpcastError, refuse_newer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum WebhookEvent {
    WebhookRegistered {
        url: WebhookUrl,
        event_types: Vec<EventTypePattern>,
        description: String,
        secret: WebhookSecret,
    },
    /// Only the fields that changed are present.
    WebhookUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<WebhookUrl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_types: Option<Vec<EventTypePattern>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    WebhookSecretRotated {
        secret: WebhookSecret,
        /// Until when the secret it replaces still signs too.
        previous_secret_expires_at: DateTime<Utc>,
    },
    WebhookDeleted {},
    WebhookDeliveryRetried {
        delivery_id: Uuid,
    },
}

impl DomainEvent for WebhookEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::WebhookRegistered { .. } => "WebhookRegistered",
            Self::WebhookUpdated { .. } => "WebhookUpdated",
            Self::WebhookSecretRotated { .. } => "WebhookSecretRotated",
            Self::WebhookDeleted {} => "WebhookDeleted",
            Self::WebhookDeliveryRetried { .. } => "WebhookDeliveryRetried",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for WebhookEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
