//! Invitations to rooms.

use chrono::{DateTime, Utc};
use rapat_domain::ids::{InvitationId, RoomId, UserId};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::QueryError;

/// Where an invitation stands, as the read model stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl TryFrom<String> for InvitationState {
    type Error = String;

    fn try_from(status: String) -> Result<Self, Self::Error> {
        match status.as_str() {
            "pending" => Ok(Self::Pending),
            "accepted" => Ok(Self::Accepted),
            "declined" => Ok(Self::Declined),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown invitation status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct InvitationRow {
    #[sqlx(try_from = "Uuid")]
    pub id: InvitationId,
    #[sqlx(try_from = "Uuid")]
    pub room_id: RoomId,
    #[sqlx(try_from = "Uuid")]
    pub host_id: UserId,
    /// The invited account, or the account bound to an email invitation.
    pub invitee_id: Option<Uuid>,
    /// The invited address, for an email invitation.
    pub email: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: InvitationState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl InvitationRow {
    pub fn invitee(&self) -> Option<UserId> {
        self.invitee_id.map(UserId::from_uuid)
    }
}

/// An invitation with what its invitee needs to decide: the room and its host.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct ReceivedInvitationRow {
    #[sqlx(flatten)]
    pub invitation: InvitationRow,
    pub room_name: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// `None` while the accounts read model has not caught up with the host.
    pub host_first_name: Option<String>,
    pub host_last_name: Option<String>,
}

const COLUMNS: &str = "i.id, i.room_id, i.host_id, i.invitee_id, i.email, i.status, i.created_at, i.updated_at";

pub async fn by_id(pool: &PgPool, id: InvitationId) -> Result<Option<InvitationRow>, QueryError> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM invitations i WHERE i.id = $1")))
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// The invitations among `ids`, oldest first.
pub async fn by_ids(pool: &PgPool, ids: &[InvitationId]) -> Result<Vec<InvitationRow>, QueryError> {
    let ids: Vec<Uuid> = ids.iter().map(InvitationId::as_uuid).collect();
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations i WHERE i.id = ANY($1) ORDER BY i.created_at, i.id"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Every invitation to the room, whatever its status, oldest first.
pub async fn of_room(pool: &PgPool, room: RoomId) -> Result<Vec<InvitationRow>, QueryError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations i WHERE i.room_id = $1 ORDER BY i.created_at, i.id"
    )))
    .bind(room.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The pending invitations of `user` to rooms not ended, soonest first
/// (unscheduled last): those to the account, and those to `email` (the account's
/// address, normalised) that no account has taken over yet, which the account
/// takes over when it answers.
pub async fn pending_for(pool: &PgPool, user: UserId, email: &str) -> Result<Vec<ReceivedInvitationRow>, QueryError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, r.name AS room_name, r.scheduled_at, u.first_name AS host_first_name, \
         u.last_name AS host_last_name \
         FROM invitations i JOIN rooms r ON r.id = i.room_id LEFT JOIN users u ON u.id = i.host_id \
         WHERE i.status = 'pending' AND r.status = 'active' \
         AND (i.invitee_id = $1 OR (i.invitee_id IS NULL AND i.email = $2)) \
         ORDER BY r.scheduled_at ASC NULLS LAST, i.created_at, i.id"
    )))
    .bind(user.as_uuid())
    .bind(email)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The pending invitations to `email` (normalised) that no account has taken over.
pub async fn unbound_to_email(pool: &PgPool, email: &str) -> Result<Vec<InvitationRow>, QueryError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations i \
         WHERE i.email = $1 AND i.invitee_id IS NULL AND i.status = 'pending' ORDER BY i.created_at, i.id"
    )))
    .bind(email)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Whether `user` holds an accepted invitation to the room (which lets them in
/// without the room's password).
pub async fn accepted(pool: &PgPool, room: RoomId, user: UserId) -> Result<bool, QueryError> {
    let accepted = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invitations WHERE room_id = $1 AND invitee_id = $2 AND status = 'accepted')",
    )
    .bind(room.as_uuid())
    .bind(user.as_uuid())
    .fetch_one(pool)
    .await?;
    Ok(accepted)
}

/// Whether `user` (whose normalised address is `email`) holds an invitation to the
/// room that was not revoked: to the account, or to the address while no account
/// has taken it over.
pub async fn holds_unrevoked(pool: &PgPool, room: RoomId, user: UserId, email: &str) -> Result<bool, QueryError> {
    let holds = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invitations WHERE room_id = $1 AND status <> 'revoked' \
         AND (invitee_id = $2 OR (invitee_id IS NULL AND email = $3)))",
    )
    .bind(room.as_uuid())
    .bind(user.as_uuid())
    .bind(email)
    .fetch_one(pool)
    .await?;
    Ok(holds)
}
