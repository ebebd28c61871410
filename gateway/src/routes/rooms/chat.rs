//! A room's recent chat, for a late joiner: read from the chat stream (`chat.rs`),
//! where `/ws` stores each message before broadcasting it.

use axum::extract::State;
use axum::response::Response;
use rapat_domain::ids::RoomId;
use rapat_projections::queries;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::room_row;
use crate::auth::AuthUser;
use crate::chat::ChatPage;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Data, Failure};
use crate::state::AppState;

/// `?limit=&before=` of the chat history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatQuery {
    /// Messages per page, 1 to 100; defaults to 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Only messages with an id below this (the `nextBefore` of the previous page).
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    before: Option<u64>,
}

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

/// The room's latest chat messages, oldest first (its host, its participants and
/// its past participants, as SPEC §3 has it).
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/chat",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id"), ChatQuery),
    responses(
        (status = 200, description = "A page of chat, oldest first", body = Data<ChatPage>),
        (status = 400, description = "Malformed room id, limit or before", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller has never been in the room and is not its host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 503, description = "The chat store is unavailable", body = Failure),
    )
)]
pub async fn chat_history(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ChatQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if query.before.is_some_and(|before| before == 0 || i64::try_from(before).is_err()) {
        return Err(ApiError::bad_request("invalid_query", format!("before must be between 1 and {}", i64::MAX)));
    }
    let room = room_row(&state, room_id).await?;
    if room.host_id != auth.user_id
        && !queries::rooms::has_ever_joined(&state.db, RoomId::from_uuid(room_id), auth.user_id).await?
    {
        return Err(ApiError::forbidden(
            "not_a_participant",
            "only the host and the room's participants, present or past, can read its chat",
        ));
    }
    let page = state
        .signaling
        .chat
        .history(&state.config, room_id, limit as usize, query.before)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(response::ok(page))
}
