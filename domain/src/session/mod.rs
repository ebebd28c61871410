//! Login sessions: one refresh-token family per login. Refreshing rotates the
//! token; presenting a token that was already spent means it leaked, so the whole
//! family is revoked (OAuth 2.0 refresh token rotation with reuse detection).
//! Logging out revokes the session, and with it every access token naming it.

mod token;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

pub use token::{MalformedRefreshToken, RefreshHash, RefreshToken};

use crate::envelope::{Upcast, UpcastError, refuse_newer};
use crate::ids::UserId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A spent refresh token was presented again.
    RefreshReuse,
    /// The account's password was reset: every session of it ends.
    PasswordReset,
}

#[derive(Clone, Debug)]
pub enum SessionCommand {
    Start {
        user: UserId,
        refresh: RefreshHash,
        expires_at: DateTime<Utc>,
    },
    /// `now` comes from the caller: the domain has no clock.
    Refresh {
        presented: RefreshHash,
        next: RefreshHash,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Revoke {
        reason: RevokeReason,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum SessionEvent {
    SessionStarted { user_id: UserId, refresh_hash: RefreshHash, expires_at: DateTime<Utc> },
    SessionRefreshed { refresh_hash: RefreshHash, expires_at: DateTime<Utc>, generation: u32 },
    SessionRevoked { reason: RevokeReason },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionRefreshed { .. } => "SessionRefreshed",
            Self::SessionRevoked { .. } => "SessionRevoked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

impl Upcast for SessionEvent {
    fn upcast(
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, UpcastError> {
        refuse_newer(event_type, schema_version, 1)?;
        Ok(payload)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session already exists")]
    AlreadyStarted,
    #[error("no such session")]
    NotFound,
    #[error("the session has been revoked")]
    Revoked,
    #[error("the refresh token has expired")]
    Expired,
    #[error("the refresh token is not valid for this session")]
    UnknownRefreshToken,
}

/// A session as its events made it. `Default` is the session before it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    user: Option<UserId>,
    current: Option<RefreshHash>,
    /// Every refresh hash this session has rotated away from.
    spent: BTreeSet<RefreshHash>,
    generation: u32,
    expires_at: Option<DateTime<Utc>>,
    revoked: Option<RevokeReason>,
}

impl Session {
    pub fn user(&self) -> Option<UserId> {
        self.user
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn revoked(&self) -> Option<RevokeReason> {
        self.revoked
    }

    fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        if let SessionCommand::Start { user, refresh, expires_at } = command {
            if self.user.is_some() {
                return Err(SessionError::AlreadyStarted);
            }
            return Ok(vec![SessionEvent::SessionStarted { user_id: user, refresh_hash: refresh, expires_at }]);
        }
        if self.user.is_none() {
            return Err(SessionError::NotFound);
        }
        match command {
            SessionCommand::Start { .. } => Err(SessionError::AlreadyStarted),
            SessionCommand::Revoke { reason } => {
                Ok(if self.revoked.is_some() { vec![] } else { vec![SessionEvent::SessionRevoked { reason }] })
            }
            SessionCommand::Refresh { presented, next, now, expires_at } => {
                if self.revoked.is_some() {
                    return Err(SessionError::Revoked);
                }
                // Reuse is checked before expiry: a leaked token must burn the
                // family even if it is old.
                if self.spent.contains(&presented) {
                    return Ok(vec![SessionEvent::SessionRevoked { reason: RevokeReason::RefreshReuse }]);
                }
                if self.current.as_ref() != Some(&presented) {
                    return Err(SessionError::UnknownRefreshToken);
                }
                if self.expires_at.is_some_and(|expiry| now >= expiry) {
                    return Err(SessionError::Expired);
                }
                Ok(vec![SessionEvent::SessionRefreshed {
                    refresh_hash: next,
                    expires_at,
                    generation: self.generation + 1,
                }])
            }
        }
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SessionEvent::SessionStarted { user_id, refresh_hash, expires_at } => {
                self.user = Some(user_id);
                self.current = Some(refresh_hash);
                self.expires_at = Some(expires_at);
            }
            SessionEvent::SessionRefreshed { refresh_hash, expires_at, generation } => {
                if let Some(previous) = self.current.replace(refresh_hash) {
                    self.spent.insert(previous);
                }
                self.expires_at = Some(expires_at);
                self.generation = generation;
            }
            SessionEvent::SessionRevoked { reason } => self.revoked = Some(reason),
        }
    }
}

#[cfg(test)]
mod tests;
