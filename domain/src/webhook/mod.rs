//! A webhook endpoint (SPEC §7): one aggregate per endpoint, registered,
//! changed, its secret rotated and deleted by administrators. Which events go to
//! it and their delivery state are the read side's (`rapat_projections`' webhooks
//! model and `rapat_delivery::webhooks`); the one delivery decision recorded here
//! is an administrator's manual retry, so the audit trail shows it.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;
mod types;

use chrono::Duration;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::WebhookCommand;
pub use error::WebhookError;
pub use event::WebhookEvent;
pub use types::{
    DESCRIPTION_RULES, EventTypePattern, Host, MAX_EVENT_TYPES, MAX_URL_CHARS, WebhookSecret, WebhookUrl,
    is_public_address, parse_description, parse_event_types,
};

/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_OVERLAP: Duration = Duration::hours(24);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookStatus {
    #[default]
    NotRegistered,
    Active,
    Deleted,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    status: WebhookStatus,
    url: Option<WebhookUrl>,
    event_types: Vec<EventTypePattern>,
    description: String,
    enabled: bool,
    secret: Option<WebhookSecret>,
}

impl Webhook {
    pub fn status(&self) -> WebhookStatus {
        self.status
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn decide(&self, command: WebhookCommand) -> Result<Vec<WebhookEvent>, WebhookError> {
        match command {
            WebhookCommand::Register { url, event_types, description, secret } => {
                if self.status == WebhookStatus::NotRegistered {
                    return Ok(vec![WebhookEvent::WebhookRegistered { url, event_types, description, secret }]);
                }
                // A retried registration (same id, same request) changes nothing.
                let same = self.url.as_ref() == Some(&url)
                    && self.event_types == event_types
                    && self.description == description
                    && self.secret.as_ref() == Some(&secret);
                if same && self.status == WebhookStatus::Active {
                    Ok(vec![])
                } else {
                    Err(WebhookError::AlreadyRegistered)
                }
            }
            _ if self.status != WebhookStatus::Active => Err(WebhookError::NotFound),
            WebhookCommand::Update { url, event_types, enabled, description } => {
                let url = url.filter(|url| self.url.as_ref() != Some(url));
                let event_types = event_types.filter(|types| *types != self.event_types);
                let enabled = enabled.filter(|enabled| *enabled != self.enabled);
                let description = description.filter(|description| *description != self.description);
                if url.is_none() && event_types.is_none() && enabled.is_none() && description.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::WebhookUpdated { url, event_types, enabled, description }])
            }
            WebhookCommand::RotateSecret { secret, at } => Ok(vec![WebhookEvent::WebhookSecretRotated {
                secret,
                previous_secret_expires_at: at + PREVIOUS_SECRET_OVERLAP,
            }]),
            WebhookCommand::Delete => Ok(vec![WebhookEvent::WebhookDeleted {}]),
            WebhookCommand::RetryDelivery { delivery_id } => {
                Ok(vec![WebhookEvent::WebhookDeliveryRetried { delivery_id }])
            }
        }
    }
}

impl Aggregate for Webhook {
    const TYPE: &'static str = "webhook";
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;
    type Services = ();

    async fn handle(&mut self, command: WebhookCommand, _: &(), sink: &EventSink<Self>) -> Result<(), WebhookError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: WebhookEvent) {
        match event {
            WebhookEvent::WebhookRegistered { url, event_types, description, secret } => {
                self.status = WebhookStatus::Active;
                self.url = Some(url);
                self.event_types = event_types;
                self.description = description;
                self.enabled = true;
                self.secret = Some(secret);
            }
            WebhookEvent::WebhookUpdated { url, event_types, enabled, description } => {
                self.url = url.or(self.url.take());
                if let Some(event_types) = event_types {
                    self.event_types = event_types;
                }
                if let Some(enabled) = enabled {
                    self.enabled = enabled;
                }
                if let Some(description) = description {
                    self.description = description;
                }
            }
            WebhookEvent::WebhookSecretRotated { secret, .. } => self.secret = Some(secret),
            WebhookEvent::WebhookDeleted {} => self.status = WebhookStatus::Deleted,
            WebhookEvent::WebhookDeliveryRetried { .. } => {}
        }
    }
}
