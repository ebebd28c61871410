//! `invitations`, from invitation events: one row per invitation, its invitee
//! and where it stands.

use rapat_domain::envelope::StoredEvent;
use rapat_domain::invitation::InvitationEvent;
use sqlx::PgConnection;

use super::{ApplyError, aggregate_uuid, check_found, decode};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<InvitationEvent>(event)? else { return Ok(()) };
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let (status, invitee): (Option<&str>, Option<uuid::Uuid>) = match decoded {
        InvitationEvent::InvitationIssued { room_id, host_id, invitee_id, email } => {
            // Issued anew after a decline or revocation: a new invitation to the
            // same invitee. An email invitation keeps the account bound to it, as
            // the aggregate does.
            sqlx::query(
                "INSERT INTO invitations (id, room_id, host_id, invitee_id, email, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
                 ON CONFLICT (id) DO UPDATE SET room_id = $2, host_id = $3, \
                 invitee_id = COALESCE($4, invitations.invitee_id), email = $5, status = 'pending', \
                 created_at = $6, updated_at = $6",
            )
            .bind(id)
            .bind(room_id.as_uuid())
            .bind(host_id.as_uuid())
            .bind(invitee_id.map(|user| user.as_uuid()))
            .bind(email.map(String::from))
            .bind(at)
            .execute(tx)
            .await?;
            return Ok(());
        }
        InvitationEvent::InvitationAccepted { .. } => (Some("accepted"), None),
        InvitationEvent::InvitationDeclined { .. } => (Some("declined"), None),
        InvitationEvent::InvitationRevoked { .. } => (Some("revoked"), None),
        InvitationEvent::InvitationBoundToAccount { invitee_id } => (None, Some(invitee_id.as_uuid())),
    };
    let done = sqlx::query(
        "UPDATE invitations SET status = COALESCE($2, status), invitee_id = COALESCE($3, invitee_id), \
         updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(invitee)
    .bind(at)
    .execute(tx)
    .await?;
    check_found(done.rows_affected(), event);
    Ok(())
}
