//! Emails owed that are no notification's (SPEC §7), added to the outbox
//! (`crate::outbox`) in the notifications projection's batch transaction, once
//! per causing event: the verification email asked for at registration, a
//! password reset email, and the invitation of an address that has no account
//! (such an invitee has no notification row to deliver from).
//!
//! The rows carry no token: the email worker derives it again from the request
//! id in the payload (`rapat_domain::account::AccountTokenKey`), so the outbox
//! holds nothing that would let a reader of the database reset a password.

use rapat_domain::account::AccountEvent;
use rapat_domain::envelope::StoredEvent;
use rapat_domain::invitation::InvitationEvent;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::notification_state as state;
use super::{ApplyError, aggregate_uuid, decode};
use crate::outbox::{self, NewDelivery};

/// The email channel's name in the outbox.
const EMAIL: &str = "email";

/// Kinds of the emails that are no notification's.
pub const EMAIL_VERIFICATION: &str = "email_verification";
pub const PASSWORD_RESET: &str = "password_reset";
/// The invitation of an address without an account has the notification's kind.
pub const ROOM_INVITATION: &str = "room_invitation";

pub(super) async fn apply(tx: &mut PgConnection, stream_sequence: u64, event: &StoredEvent) -> Result<(), ApplyError> {
    let owed = match event.aggregate_type.as_str() {
        "account" => account_email(event)?,
        "invitation" => invitation_email(tx, event).await?,
        _ => None,
    };
    let Some(Owed { kind, recipient_id, address, payload }) = owed else { return Ok(()) };
    let row = NewDelivery {
        id: outbox::delivery_id(event.event_id, EMAIL),
        channel: EMAIL,
        kind,
        recipient_id,
        address: address.as_deref(),
        notification_id: None,
        payload: &payload,
        event_id: event.event_id,
        stream_sequence,
        created_at: event.timestamp,
    };
    outbox::enqueue(tx, &row).await?;
    Ok(())
}

struct Owed {
    kind: &'static str,
    recipient_id: Option<Uuid>,
    address: Option<String>,
    payload: Value,
}

fn account_email(event: &StoredEvent) -> Result<Option<Owed>, ApplyError> {
    let Some(decoded) = decode::<AccountEvent>(event)? else { return Ok(None) };
    let account = aggregate_uuid(event)?;
    let (kind, payload) = match decoded {
        AccountEvent::EmailVerificationRequested { request_id, .. } => {
            (EMAIL_VERIFICATION, json!({ "requestId": request_id }))
        }
        AccountEvent::PasswordResetRequested { request_id, expires_at, .. } => {
            (PASSWORD_RESET, json!({ "requestId": request_id, "expiresAt": expires_at }))
        }
        _ => return Ok(None),
    };
    // The address is the account's at send time (the worker reads it).
    Ok(Some(Owed { kind, recipient_id: Some(account), address: None, payload }))
}

async fn invitation_email(tx: &mut PgConnection, event: &StoredEvent) -> Result<Option<Owed>, ApplyError> {
    // An invitation to an account is that account's notification (and its email).
    let Some(InvitationEvent::InvitationIssued { room_id, host_id, invitee_id: None, email: Some(email) }) =
        decode::<InvitationEvent>(event)?
    else {
        return Ok(None);
    };
    let Some(room) = state::room(tx, room_id.as_uuid()).await? else { return Ok(None) };
    let host: Option<String> =
        sqlx::query_scalar("SELECT btrim(first_name || ' ' || last_name) FROM notification_users WHERE user_id = $1")
            .bind(host_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let payload = json!({
        "room": { "id": room.room_id, "name": room.name },
        "actor": { "id": host_id.as_uuid(), "name": host },
        "invitationId": event.aggregate_id,
        "scheduledAt": room.scheduled_at,
    });
    Ok(Some(Owed { kind: ROOM_INVITATION, recipient_id: None, address: Some(String::from(email)), payload }))
}
