//! A user's notification inbox: what they have read. One aggregate per user, its
//! id the user's id.
//!
//! Notifications themselves are a read model (the `notifications` projection),
//! derived from other aggregates' events; whether one was read is the user's own
//! doing and is not derivable, so it is recorded here, as events, and a rebuild of
//! the read model keeps it. The aggregate does not know which notifications exist:
//! the caller checks that against the read model before asking.

#[cfg(test)]
mod tests;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

#[derive(Clone, Debug)]
pub enum InboxCommand {
    /// Marks these notifications of `user` read. Never empty: the caller asks only
    /// for notifications it found unread.
    MarkRead { user: UserId, ids: Vec<Uuid> },
    /// Marks every notification of `user` that exists at this point of the stream read.
    MarkAllRead { user: UserId },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum InboxEvent {
    NotificationsRead {
        user_id: UserId,
        ids: Vec<Uuid>,
    },
    /// Every notification the read model holds for `user_id` when it applies this
    /// event: those of earlier events in the stream.
    AllNotificationsRead {
        user_id: UserId,
    },
}

impl DomainEvent for InboxEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::NotificationsRead { .. } => "NotificationsRead",
            Self::AllNotificationsRead { .. } => "AllNotificationsRead",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Upcast for InboxEvent {
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InboxError {
    #[error("name at least one notification")]
    NothingToMark,
    /// A command sent to another user's inbox: a routing bug, not a user mistake.
    #[error("this inbox belongs to another user")]
    OwnerMismatch,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inbox {
    owner: Option<UserId>,
}

impl Inbox {
    /// Most ids one `MarkRead` carries, so one event stays small.
    pub const MAX_IDS: usize = 100;

    fn decide(&self, command: InboxCommand) -> Result<InboxEvent, InboxError> {
        let (InboxCommand::MarkRead { user, .. } | InboxCommand::MarkAllRead { user }) = &command;
        if self.owner.is_some_and(|owner| owner != *user) {
            return Err(InboxError::OwnerMismatch);
        }
        match command {
            InboxCommand::MarkRead { ids, .. } if ids.is_empty() => Err(InboxError::NothingToMark),
            InboxCommand::MarkRead { user, mut ids } => {
                ids.sort_unstable();
                ids.dedup();
                ids.truncate(Self::MAX_IDS);
                Ok(InboxEvent::NotificationsRead { user_id: user, ids })
            }
            InboxCommand::MarkAllRead { user } => Ok(InboxEvent::AllNotificationsRead { user_id: user }),
        }
    }
}

impl Aggregate for Inbox {
    const TYPE: &'static str = "inbox";
    type Command = InboxCommand;
    type Event = InboxEvent;
    type Error = InboxError;
    type Services = ();

    async fn handle(&mut self, command: InboxCommand, _: &(), sink: &EventSink<Self>) -> Result<(), InboxError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: InboxEvent) {
        let (InboxEvent::NotificationsRead { user_id, .. } | InboxEvent::AllNotificationsRead { user_id }) = event;
        self.owner = Some(user_id);
    }
}
