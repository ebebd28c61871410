//! `contacts`, from contact-list events.

use rapat_domain::contacts::ContactListEvent;
use rapat_domain::envelope::StoredEvent;
use sqlx::PgConnection;

use super::{ApplyError, decode};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<ContactListEvent>(event)? else { return Ok(()) };
    match decoded {
        ContactListEvent::ContactAdded { owner_id, contact_id } => {
            // The aggregate never adds a contact twice; DO NOTHING keeps the first
            // `added_at` if a hand-made stream ever does.
            sqlx::query(
                "INSERT INTO contacts (owner_id, contact_id, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (owner_id, contact_id) DO NOTHING",
            )
            .bind(owner_id.as_uuid())
            .bind(contact_id.as_uuid())
            .bind(event.timestamp)
            .execute(tx)
            .await?;
        }
        ContactListEvent::ContactRemoved { owner_id, contact_id } => {
            sqlx::query("DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2")
                .bind(owner_id.as_uuid())
                .bind(contact_id.as_uuid())
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}
