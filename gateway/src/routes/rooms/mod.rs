//! `/rooms`: creating and running meetings. Commands go to the `Room` aggregate
//! through `AppState::write` (which answers only once the rooms and audit read
//! models show the change); every answer is read back from those read models, so a
//! room looks the same whether it was just written or fetched later.
//!
//! - `lifecycle.rs`: create, list, history, get, update settings, end.
//! - `participants.rs`: join, leave, participant list, host mute (and allowing to
//!   unmute) and remove.
//! - `audit.rs`: the room's event history, for its host.
//! - `chat.rs`: the room's recent chat, from the chat stream (not a read model).
//! - `recording.rs`: start and stop recording, the recorded tracks and their files.
//! - `views.rs`: the JSON shapes these answer with.

mod audit;
mod chat;
mod lifecycle;
mod participants;
mod recording;
pub(crate) mod views;

use rapat_domain::ids::RoomId;
use rapat_projections::queries;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Paths are relative to `/api/v1`, which `routes::api_router` nests them under.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lifecycle::create_room, lifecycle::list_rooms))
        .routes(routes!(lifecycle::room_history))
        .routes(routes!(lifecycle::get_room, lifecycle::update_room))
        .routes(routes!(lifecycle::end_room))
        .routes(routes!(participants::join_room))
        .routes(routes!(participants::leave_room))
        .routes(routes!(participants::list_participants))
        .routes(routes!(participants::mute_participant))
        .routes(routes!(participants::allow_unmute))
        .routes(routes!(participants::remove_participant))
        .routes(routes!(audit::room_events))
        .routes(routes!(chat::chat_history))
        .routes(routes!(recording::start_recording))
        .routes(routes!(recording::stop_recording))
        .routes(routes!(recording::list_recordings))
        .routes(routes!(recording::download_recording))
}

/// `?page=&limit=` of the paginated lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number, up to 1,000,000; defaults to 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Items per page, 1 to 100; defaults to 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u32,
    pub limit: u32,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
    /// Deep enough for any real history, and far from where offsets overflow.
    pub const MAX_PAGE: u32 = 1_000_000;

    pub fn parse(&self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_PAGE).contains(&page) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("page must be between 1 and {}", Self::MAX_PAGE),
            ));
        }
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        Ok(Page { page, limit })
    }
}

/// The room's read-model row, or 404.
async fn room_row(state: &AppState, room_id: Uuid) -> Result<queries::rooms::RoomRow, ApiError> {
    queries::rooms::by_id(&state.db, RoomId::from_uuid(room_id))
        .await?
        .ok_or_else(|| ApiError::not_found("room_not_found", "the room does not exist"))
}

/// The room's row after a stored write on it. It is missing only while the rooms
/// read model is ahead of a stream that lost its tail: then the write's answer is
/// 202 (`ApiError::stored_but_missing`), not 404.
async fn written_room_row(state: &AppState, room_id: Uuid) -> Result<queries::rooms::RoomRow, ApiError> {
    queries::rooms::by_id(&state.db, RoomId::from_uuid(room_id))
        .await?
        .ok_or_else(|| ApiError::stored_but_missing(format!("room {room_id}")))
}

/// The room's row, or 404 / 403 unless the caller hosts it. Only for reads: a
/// command's host check is the aggregate's.
pub(crate) async fn hosted_room_row(
    state: &AppState,
    auth: &AuthUser,
    room_id: Uuid,
) -> Result<queries::rooms::RoomRow, ApiError> {
    let row = room_row(state, room_id).await?;
    if row.host_id != auth.user_id {
        return Err(ApiError::forbidden("not_host", "only the host of the room can do that"));
    }
    Ok(row)
}
