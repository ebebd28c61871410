//! A user's web push subscriptions (SPEC §7): the browsers that asked to be sent
//! notifications. One aggregate per user, its id the user's id.
//!
//! A subscription is what a browser's `PushManager.subscribe` gives: the push
//! service's endpoint and the keys a message is encrypted for (RFC 8291). It
//! ends when the user turns notifications off in that browser, or when the push
//! service answers that it is gone (404 or 410); the delivery channel then runs
//! [`PushCommand::Unsubscribe`] with [`UnsubscribeReason::Gone`].

mod event;
#[cfg(test)]
mod tests;
mod types;

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use event::{PushEvent, UnsubscribeReason};
pub use types::{AuthSecret, EndpointPolicy, P256dhKey, PushEndpoint};

use crate::ids::UserId;

#[derive(Clone, Debug)]
pub enum PushCommand {
    /// Adds (or, with new keys, replaces) the subscription at `endpoint`.
    Subscribe { user: UserId, endpoint: PushEndpoint, p256dh: P256dhKey, auth: AuthSecret },
    /// Removes the subscription at `endpoint`.
    Unsubscribe { user: UserId, endpoint: PushEndpoint, reason: UnsubscribeReason },
}

/// Input that does not parse into a subscription.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushInputError {
    #[error("endpoint must be an absolute https URL of at most {} bytes", PushEndpoint::MAX_LEN)]
    BadEndpoint,
    #[error("endpoint must use https")]
    InsecureEndpoint,
    #[error("endpoint must not be a private, loopback or link-local address")]
    PrivateEndpoint,
    #[error("keys.p256dh must be an uncompressed P-256 public key (65 bytes) in base64url")]
    BadP256dh,
    #[error("keys.auth must be 16 bytes in base64url")]
    BadAuth,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("at most {max} push subscriptions per user; remove one first")]
    TooManySubscriptions { max: usize },
    #[error("no push subscription with this endpoint")]
    UnknownSubscription,
    /// A command sent to another user's subscriptions: a routing bug.
    #[error("these push subscriptions belong to another user")]
    OwnerMismatch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Keys {
    p256dh: P256dhKey,
    auth: AuthSecret,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushDevices {
    owner: Option<UserId>,
    /// A `BTreeMap` so that snapshots serialise the same way every time.
    subscriptions: BTreeMap<PushEndpoint, Keys>,
}

impl PushDevices {
    /// Most subscriptions one user keeps (browsers and profiles).
    pub const MAX_SUBSCRIPTIONS: usize = 20;

    pub fn count(&self) -> usize {
        self.subscriptions.len()
    }

    fn decide(&self, command: PushCommand) -> Result<Option<PushEvent>, PushError> {
        let (PushCommand::Subscribe { user, .. } | PushCommand::Unsubscribe { user, .. }) = &command;
        if self.owner.is_some_and(|owner| owner != *user) {
            return Err(PushError::OwnerMismatch);
        }
        match command {
            PushCommand::Subscribe { user, endpoint, p256dh, auth } => {
                match self.subscriptions.get(&endpoint) {
                    Some(keys) if keys.p256dh == p256dh && keys.auth == auth => return Ok(None),
                    Some(_) => {}
                    None if self.subscriptions.len() >= Self::MAX_SUBSCRIPTIONS => {
                        return Err(PushError::TooManySubscriptions { max: Self::MAX_SUBSCRIPTIONS });
                    }
                    None => {}
                }
                Ok(Some(PushEvent::PushSubscribed { user_id: user, endpoint, p256dh, auth_secret: auth }))
            }
            PushCommand::Unsubscribe { user, endpoint, reason } => {
                if self.subscriptions.contains_key(&endpoint) {
                    Ok(Some(PushEvent::PushUnsubscribed { user_id: user, endpoint, reason }))
                } else if reason == UnsubscribeReason::Gone {
                    // The channel may report a gone subscription more than once.
                    Ok(None)
                } else {
                    Err(PushError::UnknownSubscription)
                }
            }
        }
    }
}

impl Aggregate for PushDevices {
    const TYPE: &'static str = "push";
    type Command = PushCommand;
    type Event = PushEvent;
    type Error = PushError;
    type Services = ();

    async fn handle(&mut self, command: PushCommand, _: &(), sink: &EventSink<Self>) -> Result<(), PushError> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: PushEvent) {
        match event {
            PushEvent::PushSubscribed { user_id, endpoint, p256dh, auth_secret } => {
                self.owner = Some(user_id);
                self.subscriptions.insert(endpoint, Keys { p256dh, auth: auth_secret });
            }
            PushEvent::PushUnsubscribed { user_id, endpoint, .. } => {
                self.owner = Some(user_id);
                self.subscriptions.remove(&endpoint);
            }
        }
    }
}
