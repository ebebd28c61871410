//! What happened to a user's push subscriptions. Payload shapes are a stored
//! contract: see `schemas/events/push/`.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuthSecret, P256dhKey, PushEndpoint};
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeReason {
    /// The user turned notifications off in that browser.
    User,
    /// The push service answered 404 or 410: the browser dropped it.
    Gone,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum PushEvent {
    /// `authSecret` is a secret: the audit trail and exports redact it.
    PushSubscribed {
        user_id: UserId,
        endpoint: PushEndpoint,
        p256dh: P256dhKey,
        auth_secret: AuthSecret,
    },
    PushUnsubscribed {
        user_id: UserId,
        endpoint: PushEndpoint,
        reason: UnsubscribeReason,
    },
}

impl DomainEvent for PushEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::PushSubscribed { .. } => "PushSubscribed",
            Self::PushUnsubscribed { .. } => "PushUnsubscribed",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for PushEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
