//! Contact lists.

use rapat_domain::ids::UserId;
use sqlx::PgPool;

use super::{QueryError, UserRow};

/// The owner's contacts, as users, ordered by first then last name.
pub async fn of(pool: &PgPool, owner: UserId) -> Result<Vec<UserRow>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at \
         FROM contacts c JOIN users u ON u.id = c.contact_id \
         WHERE c.owner_id = $1 ORDER BY u.first_name, u.last_name, u.id",
    )
    .bind(owner.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
