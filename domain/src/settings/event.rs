//! What happened to a user's settings. Payload shapes are a stored contract: see
//! `schemas/events/settings/`.

use std::collections::BTreeMap;

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Channels, Locale, NotificationKind, ReminderMinutes, Timezone};
use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum SettingsEvent {
    /// Only what changed: absent fields and kinds keep their value.
    UserSettingsUpdated {
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<Timezone>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<Locale>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reminder_minutes: Option<ReminderMinutes>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        notifications: BTreeMap<NotificationKind, Channels>,
    },
}

impl DomainEvent for SettingsEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserSettingsUpdated { .. } => "UserSettingsUpdated".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for SettingsEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
