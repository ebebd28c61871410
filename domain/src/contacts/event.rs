//! What happened to a contact list. Payload shapes are a stored contract: see
//! `schemas/events/contacts/`.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ContactListEvent {
    ContactAdded { owner_id: UserId, contact_id: UserId },
    ContactRemoved { owner_id: UserId, contact_id: UserId },
}

impl DomainEvent for ContactListEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::ContactAdded { .. } => "ContactAdded",
            Self::ContactRemoved { .. } => "ContactRemoved",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for ContactListEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}
