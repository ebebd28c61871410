//! The email channel (SPEC §7): a [`Sender`] for the outbox worker that writes
//! each delivery as a plain text and HTML message (`compose.rs`), attaches the
//! meeting's iCalendar file to invitations and schedule changes, and sends it
//! over SMTP with lettre (`smtp://` plain, `smtp://…?tls=required` STARTTLS,
//! `smtps://` TLS; rustls).
//!
//! Each message's `Message-ID` is `<{delivery id}@{host of RAPAT_PUBLIC_URL}>`,
//! the same on every attempt, so a message sent twice (the worker crashed after
//! the server took it, before the outbox recorded it) is recognisable. A 5xx
//! answer is permanent for that message (`failed` at once); a 4xx, a refused or
//! broken connection and a timeout are retried on the outbox's schedule.

mod compose;

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rapat_domain::account::{AccountTokenKey, TokenPurpose};
use rapat_domain::ids::{RoomId, UserId};
use rapat_projections::calendar::{self, Meeting};
use rapat_projections::queries;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub use compose::{ComposeError, Context, Letter, compose};

use crate::outbox::{Channel, Delivery, SendError, Sender};

/// How to reach the mail server and what to say in messages.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// `RAPAT_SMTP_URL`: `smtp://host:port`, `smtp://user:pass@host?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host` (TLS).
    pub smtp_url: String,
    /// `RAPAT_MAIL_FROM`: `rapat <noreply@example.com>` or a bare address.
    pub from: String,
    /// `RAPAT_PUBLIC_URL`: the base of every link.
    pub public_url: String,
    /// The key reset and verification tokens are derived with (the gateway's).
    pub token_key: AccountTokenKey,
    /// The longest an SMTP exchange may take.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("RAPAT_SMTP_URL is not a usable SMTP URL: {0}")]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    #[error("RAPAT_MAIL_FROM is not an address: {0}")]
    From(#[source] lettre::address::AddressError),
    #[error("RAPAT_PUBLIC_URL must start with http:// or https://, got {0:?}")]
    PublicUrl(String),
}

pub struct EmailSender {
    db: PgPool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    /// The domain part of every `Message-ID`.
    message_id_host: String,
    token_key: AccountTokenKey,
}

impl EmailSender {
    pub fn new(db: PgPool, config: EmailConfig) -> Result<Self, EmailConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(EmailConfigError::SmtpUrl)?
            .timeout(Some(config.timeout))
            .build();
        let from = config.from.parse::<Mailbox>().map_err(EmailConfigError::From)?;
        let public_url = config.public_url.trim_end_matches('/').to_owned();
        let host = host_of(&public_url).ok_or_else(|| EmailConfigError::PublicUrl(config.public_url.clone()))?;
        Ok(Self { db, transport, from, public_url, message_id_host: host, token_key: config.token_key })
    }

    /// The `Message-ID` of a delivery: the same on every attempt.
    pub fn message_id(&self, delivery: Uuid) -> String {
        format!("<{delivery}@{}>", self.message_id_host)
    }

    /// The message of `delivery`, as it would be sent.
    pub async fn message(&self, delivery: &Delivery) -> Result<Message, SendError> {
        let recipient = self.recipient(delivery).await?;
        let token = self.token(delivery)?;
        let address = recipient.email.to_string();
        let context = Context {
            public_url: &self.public_url,
            token: token.as_deref(),
            invited_address: delivery.recipient_id.is_none().then_some(address.as_str()),
        };
        let letter = compose(&delivery.kind, &delivery.payload, &context)
            .map_err(|error| SendError::Permanent(error.to_string()))?;
        let body = MultiPart::alternative_plain_html(letter.text, letter.html);
        let body = match self.calendar(delivery).await? {
            Some(ics) => {
                let content_type = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                    .map_err(|error| SendError::Permanent(error.to_string()))?;
                let file = Attachment::new("meeting.ics".to_owned()).body(ics, content_type);
                MultiPart::mixed().multipart(body).singlepart(file)
            }
            None => body,
        };
        Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(letter.subject)
            .message_id(Some(self.message_id(delivery.id)))
            .date_now()
            .multipart(body)
            .map_err(|error| SendError::Permanent(format!("the message cannot be built: {error}")))
    }

    /// Whom to write to: the delivery's address, or its account's (read at send
    /// time, so a changed address is used).
    async fn recipient(&self, delivery: &Delivery) -> Result<Mailbox, SendError> {
        let (address, name) = match (&delivery.address, delivery.recipient_id) {
            (Some(address), _) => (address.clone(), None),
            (None, Some(account)) => {
                let user = queries::users::by_id(&self.db, UserId::from_uuid(account)).await.map_err(retry)?;
                // The accounts read model may be behind the projection that owed this.
                let user = user.ok_or_else(|| SendError::Retry(format!("account {account} is not readable yet")))?;
                let name = format!("{} {}", user.first_name, user.last_name).trim().to_owned();
                (user.email, Some(name))
            }
            (None, None) => return Err(SendError::Permanent("the delivery names no recipient".into())),
        };
        let address = address
            .parse()
            .map_err(|error| SendError::Permanent(format!("{address:?} is not an email address: {error}")))?;
        Ok(Mailbox::new(name, address))
    }

    /// The token of a verification or reset email, derived again from its request.
    fn token(&self, delivery: &Delivery) -> Result<Option<String>, SendError> {
        let purpose = match delivery.kind.as_str() {
            "email_verification" => TokenPurpose::EmailVerification,
            "password_reset" => TokenPurpose::PasswordReset,
            _ => return Ok(None),
        };
        let request = delivery.payload.get("requestId").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok());
        let (Some(request), Some(account)) = (request, delivery.recipient_id) else {
            return Err(SendError::Permanent(format!(
                "a {} delivery needs a request id and an account",
                delivery.kind
            )));
        };
        Ok(Some(self.token_key.token(purpose, UserId::from_uuid(account), request).expose()))
    }

    /// The meeting's calendar file, for an invitation or a change to a scheduled
    /// meeting, as the rooms read model has it now (the newest schedule is what a
    /// calendar wants, its `SEQUENCE` says which is newer).
    async fn calendar(&self, delivery: &Delivery) -> Result<Option<String>, SendError> {
        if !matches!(delivery.kind.as_str(), "room_invitation" | "meeting_rescheduled" | "meeting_cancelled") {
            return Ok(None);
        }
        let room = delivery.payload.pointer("/room/id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok());
        let Some(room) = room else { return Ok(None) };
        let Some(room) = queries::rooms::by_id(&self.db, RoomId::from_uuid(room)).await.map_err(retry)? else {
            return Ok(None);
        };
        // The rooms read model is another projection and may not have reached
        // the event that caused this notification yet: the file would then say
        // the old time, or not that it is cancelled. Try again a little later.
        let behind = match delivery.kind.as_str() {
            "meeting_cancelled" => room.cancelled_at.is_none(),
            "meeting_rescheduled" => delivery
                .payload
                .get("scheduleSequence")
                .and_then(Value::as_i64)
                .is_some_and(|sequence| sequence > room.schedule_sequence),
            _ => false,
        };
        if behind {
            return Err(SendError::Retry("the rooms read model has not reached this change yet".into()));
        }
        let Some(start) = room.scheduled_at else { return Ok(None) };
        let organizer = queries::users::by_id(&self.db, room.host_id).await.map_err(retry)?;
        let organizer = organizer.map(|host| (host.email, format!("{} {}", host.first_name, host.last_name)));
        let join_url = calendar::join_url(&self.public_url, room.id.as_uuid());
        Ok(Some(Meeting { room: &room, start, join_url, organizer }.to_ics()))
    }
}

#[async_trait::async_trait]
impl Sender for EmailSender {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let message = self.message(delivery).await?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // A 5xx: this message to this address will never be taken.
            Err(error) if error.is_permanent() => {
                Err(SendError::Permanent(format!("the mail server refused: {error}")))
            }
            Err(error) => Err(SendError::Retry(format!("the mail server did not take it: {error}"))),
        }
    }
}

fn retry(error: impl std::fmt::Display) -> SendError {
    SendError::Retry(format!("reading the read models: {error}"))
}

/// `meet.example.com` of `https://meet.example.com:8443/path`.
fn host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host.starts_with('[') { host.split_inclusive(']').next()? } else { host.split(':').next()? };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_message_id_host_is_the_public_urls() {
        assert_eq!(host_of("https://meet.example.com"), Some("meet.example.com".into()));
        assert_eq!(host_of("http://127.0.0.1:8080/base"), Some("127.0.0.1".into()));
        assert_eq!(host_of("https://[::1]:8443"), Some("[::1]".into()));
        assert_eq!(host_of("ftp://x"), None);
        assert_eq!(host_of("https://"), None);
    }
}
