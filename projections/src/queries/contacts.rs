//! Contact lists.

use std::collections::HashSet;

use rapat_domain::ids::UserId;
use sqlx::PgPool;
use uuid::Uuid;

use super::{QueryError, UserRow};

/// The owner's contacts, as users, ordered by first then last name.
pub async fn of(pool: &PgPool, owner: UserId) -> Result<Vec<UserRow>, QueryError> {
    let rows = sqlx::query_as(
        "SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.avatar, u.status, u.role, \
         u.created_at, u.updated_at, u.email_verified \
         FROM contacts c JOIN users u ON u.id = c.contact_id \
         WHERE c.owner_id = $1 ORDER BY u.first_name, u.last_name, u.id",
    )
    .bind(owner.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Those of `among` who have `user` in their own contacts.
pub async fn who_added(pool: &PgPool, user: UserId, among: &[UserId]) -> Result<HashSet<UserId>, QueryError> {
    let among: Vec<Uuid> = among.iter().map(|id| id.as_uuid()).collect();
    let owners: Vec<Uuid> =
        sqlx::query_scalar("SELECT owner_id FROM contacts WHERE contact_id = $1 AND owner_id = ANY($2)")
            .bind(user.as_uuid())
            .bind(&among)
            .fetch_all(pool)
            .await?;
    Ok(owners.into_iter().map(UserId::from_uuid).collect())
}
