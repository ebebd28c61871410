//! The JSON a room endpoint answers with. Built from read-model rows only; a room's
//! password or its hash never reaches a view (`hasPassword` instead).

use chrono::{DateTime, Utc};
use rapat_projections::queries::{ParticipantRow, RoomRow, RoomStatus};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// `{"success": true, "data": [...], "pagination": {...}}` (`response::page`), for the
/// OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct Paged<T> {
    success: bool,
    data: Vec<T>,
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
pub struct Pagination {
    page: u32,
    limit: u32,
    total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomStatusView {
    Active,
    Ended,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub host_id: Uuid,
    pub has_password: bool,
    pub max_users: u32,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The meeting's planned length in minutes, when given.
    pub duration_minutes: Option<u32>,
    pub status: RoomStatusView,
    pub participant_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// When the first participant joined: from then on the schedule is history.
    pub started_at: Option<DateTime<Utc>>,
    /// Set when the room ended without its meeting ever starting.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The host is recording the room (SPEC §10).
    pub recording: bool,
}

impl From<RoomRow> for RoomView {
    fn from(row: RoomRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            name: row.name,
            description: row.description,
            host_id: row.host_id.as_uuid(),
            has_password: row.has_password,
            max_users: row.max_users,
            scheduled_at: row.scheduled_at,
            duration_minutes: row.duration_minutes.and_then(|minutes| u32::try_from(minutes).ok()),
            status: match row.status {
                RoomStatus::Active => RoomStatusView::Active,
                RoomStatus::Ended => RoomStatusView::Ended,
            },
            participant_count: row.participant_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            ended_at: row.ended_at,
            started_at: row.started_at,
            cancelled_at: row.cancelled_at,
            recording: row.recording,
        }
    }
}

/// A current participant and their media state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub user_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub joined_at: DateTime<Utc>,
    pub audio_muted: bool,
    pub video_on: bool,
    pub screen_sharing: bool,
    /// The host muted them and they have not unmuted since.
    pub muted_by_host: bool,
}

/// The answer to a join: the room and the caller's own place in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinedView {
    pub room: RoomView,
    pub participant: ParticipantView,
}

impl From<ParticipantRow> for ParticipantView {
    fn from(row: ParticipantRow) -> Self {
        Self {
            user_id: row.user_id.as_uuid(),
            // Empty only while the accounts read model catches up with a new user.
            first_name: row.first_name.unwrap_or_default(),
            last_name: row.last_name.unwrap_or_default(),
            joined_at: row.joined_at,
            audio_muted: row.audio_muted,
            video_on: row.video_on,
            screen_sharing: row.screen_sharing,
            muted_by_host: row.muted_by_host,
        }
    }
}
