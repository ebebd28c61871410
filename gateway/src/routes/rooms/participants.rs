//! Being in a room: join, leave, who is there, and the host's mute and remove.

use axum::extract::State;
use axum::response::Response;
use rapat_domain::credentials::Password;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::room_row;
use super::views::{JoinedView, ParticipantView, RoomView};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::response::{self, Data, Failure, Message};
use crate::state::AppState;

/// The whole body may be left out for a room without a password.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRoomRequest {
    /// The room's password, when it has one (the host never needs it).
    #[schema(max_length = 1024)]
    password: Option<String>,
}

/// Join a room. Joining a room one is already in changes nothing and answers the
/// same.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/join",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    request_body(content = Option<JoinRoomRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The room and the caller's participant state", body = Data<JoinedView>),
        (status = 400, description = "Malformed room id or body", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "Missing or wrong room password", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "The room is full or has ended", body = Failure),
    )
)]
pub async fn join_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    body: Option<ApiJson<JoinRoomRequest>>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body.unwrap_or_default();
    // An empty password field is no password: the room then answers 403 if it
    // needs one, which tells the client to ask for it.
    let password = body.password.filter(|text| !text.is_empty()).map(Password::parse_candidate).transpose()?;
    let command = RoomCommand::Join { user: auth.user_id, password };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    let room = RoomView::from(room_row(&state, room_id).await?);
    let participant = participant(&state, room_id, auth.user_id).await?;
    Ok(response::ok(JoinedView { room, participant }))
}

/// Leave a room. Leaving a room one is not in changes nothing.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/leave",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "Left (or was not in) the room", body = Message),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "The room has ended", body = Failure),
    )
)]
pub async fn leave_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = RoomCommand::Leave { user: auth.user_id };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::message("left the room"))
}

/// Who is in the room now, with their media state. An ended room has nobody.
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/participants",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "Current participants", body = Data<Vec<ParticipantView>>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 404, description = "No such room", body = Failure),
    )
)]
pub async fn list_participants(
    State(state): State<AppState>,
    _auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    room_row(&state, room_id).await?;
    let rows = queries::rooms::current_participants(&state.db, RoomId::from_uuid(room_id)).await?;
    Ok(response::ok(rows.into_iter().map(ParticipantView::from).collect::<Vec<_>>()))
}

/// Force a participant's microphone off (host only). They may unmute themselves.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/participants/{userId}/mute",
    tag = "rooms",
    security(("bearer" = [])),
    params(
        ("roomId" = Uuid, Path, description = "The room's id"),
        ("userId" = Uuid, Path, description = "The participant's user id"),
    ),
    responses(
        (status = 200, description = "The participant's new state", body = Data<ParticipantView>),
        (status = 400, description = "Malformed id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room, or that user is not in it", body = Failure),
        (status = 409, description = "The room has ended", body = Failure),
    )
)]
pub async fn mute_participant(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((room_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let target = UserId::from_uuid(user_id);
    let command = RoomCommand::MuteParticipant { actor: auth.user_id, target };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(participant(&state, room_id, target).await?))
}

/// Disconnect a participant (host only). They are out until they join again.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/participants/{userId}/remove",
    tag = "rooms",
    security(("bearer" = [])),
    params(
        ("roomId" = Uuid, Path, description = "The room's id"),
        ("userId" = Uuid, Path, description = "The participant's user id"),
    ),
    responses(
        (status = 200, description = "Removed", body = Message),
        (status = 400, description = "Malformed id, or the host tried to remove themselves", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room, or that user is not in it", body = Failure),
        (status = 409, description = "The room has ended", body = Failure),
    )
)]
pub async fn remove_participant(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((room_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let command = RoomCommand::RemoveParticipant { actor: auth.user_id, target: UserId::from_uuid(user_id) };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::message("participant removed"))
}

/// One current participant, after a write that put them there. Missing only if a
/// concurrent command (a leave, a removal) overtook that write.
async fn participant(state: &AppState, room_id: Uuid, user: UserId) -> Result<ParticipantView, ApiError> {
    let rows = queries::rooms::current_participants(&state.db, RoomId::from_uuid(room_id)).await?;
    rows.into_iter()
        .find(|row| row.user_id == user)
        .map(ParticipantView::from)
        .ok_or_else(|| ApiError::conflict("concurrent_change", "the participant changed concurrently; try again"))
}
