//! `contacts`, from contact-list events.

use rapat_domain::envelope::StoredEvent;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ApplyError, check_version, payload, unknown};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Change {
    owner_id: Uuid,
    contact_id: Uuid,
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match event.event_type.as_str() {
        "ContactAdded" => {
            check_version(event, 1)?;
            let e: Change = payload(event)?;
            // The aggregate never adds a contact twice; DO NOTHING keeps the first
            // `added_at` if a hand-made stream ever does.
            sqlx::query(
                "INSERT INTO contacts (owner_id, contact_id, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (owner_id, contact_id) DO NOTHING",
            )
            .bind(e.owner_id)
            .bind(e.contact_id)
            .bind(event.timestamp)
            .execute(tx)
            .await?;
        }
        "ContactRemoved" => {
            check_version(event, 1)?;
            let e: Change = payload(event)?;
            sqlx::query("DELETE FROM contacts WHERE owner_id = $1 AND contact_id = $2")
                .bind(e.owner_id)
                .bind(e.contact_id)
                .execute(tx)
                .await?;
        }
        _ => return unknown(event),
    }
    Ok(())
}
