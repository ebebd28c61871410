//! Being in a room: join, leave, who is there, and the host's mute and remove.

use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use rapat_domain::credentials::Password;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use rapat_projections::queries::rooms::ParticipantRow;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::room_row;
use super::views::{JoinedView, ParticipantView, RoomView};
use crate::auth::AuthUser;
use crate::error::{ApiError, WRONG_PASSWORD};
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
        (status = 429, description = "Too many wrong passwords for this room, from the caller or from everyone; see Retry-After", body = Failure),
        (status = 503, description = "Password checks are busy; see Retry-After", body = Failure),
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
    let guessing = password.is_some();
    let room = RoomId::from_uuid(room_id);
    if guessing {
        refuse_guessing(&state, auth.user_id, room)?;
    }
    // An accepted invitation stands in for the room's password (SPEC §6). Most
    // joins offer no password and need none, so the invitation is looked up only
    // when a password is offered (an invitee's is then not checked) or when the
    // room refused the join for want of one.
    let invited = guessing && queries::invitations::accepted(&state.db, room, auth.user_id).await?;
    let command = RoomCommand::Join { user: auth.user_id, password, invited };
    let mut joined = state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await;
    if !guessing
        && joined.as_ref().is_err_and(|error| error.code == WRONG_PASSWORD)
        && queries::invitations::accepted(&state.db, room, auth.user_id).await?
    {
        let command = RoomCommand::Join { user: auth.user_id, password: None, invited: true };
        joined = state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await;
    }
    if let Err(error) = &joined
        && guessing
        && error.code == WRONG_PASSWORD
    {
        let now = Instant::now();
        state.limits.join_failures_per_user_and_room.record((auth.user_id, room), now);
        state.limits.join_failures_per_room.record(room, now);
    }
    joined?;
    // The room and the caller's stay, as the write left them, in one read.
    let (row, stay) = queries::rooms::with_latest_stay(&state.db, room, auth.user_id)
        .await?
        .ok_or_else(|| ApiError::stored_but_missing(format!("room {room} of a join")))?;
    let participant = stay.map(ParticipantView::from).ok_or_else(|| missing_stay(room, auth.user_id))?;
    Ok(response::ok(JoinedView { room: RoomView::from(row), participant }))
}

/// 429 while this user, or everyone together, offered this room too many wrong
/// passwords lately. Only offered passwords count: a join without one costs no
/// hash and guesses nothing (clients try that first to learn a password is
/// needed). The per-room limit also stops guessing spread over many accounts.
fn refuse_guessing(state: &AppState, user: UserId, room: RoomId) -> Result<(), ApiError> {
    let now = Instant::now();
    let limits = &state.limits;
    limits
        .join_failures_per_user_and_room
        .check(&(user, room), now)
        .and_then(|()| limits.join_failures_per_room.check(&room, now))
        .map_err(|wait| ApiError::too_many_requests(wait.as_secs_f64().ceil() as u64))
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
/// Only the host and the room's current participants may ask.
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
        (status = 403, description = "The caller is neither the host nor in the room", body = Failure),
        (status = 404, description = "No such room", body = Failure),
    )
)]
pub async fn list_participants(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let room = room_row(&state, room_id).await?;
    let rows = queries::rooms::current_participants(&state.db, RoomId::from_uuid(room_id)).await?;
    if !may_see_participants(&room, &rows, auth.user_id) {
        return Err(ApiError::forbidden(
            "not_a_participant",
            "only the host and the room's participants can see who is in it",
        ));
    }
    Ok(response::ok(rows.into_iter().map(ParticipantView::from).collect::<Vec<_>>()))
}

/// Who may see a room's participants (names, ids, media state): its host and
/// those in it now. Invitations do not exist yet; when they do, an invitee of
/// the room belongs here too.
fn may_see_participants(room: &queries::rooms::RoomRow, participants: &[ParticipantRow], user: UserId) -> bool {
    room.host_id == user || participants.iter().any(|row| row.user_id == user)
}

/// Force a participant's microphone off (host only). They cannot unmute
/// themselves until the host allows it (`allow-unmute`), even if they leave and
/// join again.
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
    host_acts_on(&state, &auth, room_id, user_id, |actor, target| RoomCommand::MuteParticipant { actor, target }).await
}

/// Allow a participant the host muted to unmute again (host only). Their
/// microphone stays off until they turn it on themselves; allowing someone who
/// is not muted by the host changes nothing.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/participants/{userId}/allow-unmute",
    tag = "rooms",
    security(("bearer" = [])),
    params(
        ("roomId" = Uuid, Path, description = "The room's id"),
        ("userId" = Uuid, Path, description = "The participant's user id"),
    ),
    responses(
        (status = 200, description = "The participant's new state (`mutedByHost` false)", body = Data<ParticipantView>),
        (status = 400, description = "Malformed id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room, or that user is not in it", body = Failure),
        (status = 409, description = "The room has ended", body = Failure),
    )
)]
pub async fn allow_unmute(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((room_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    host_acts_on(&state, &auth, room_id, user_id, |actor, target| RoomCommand::AllowUnmute { actor, target }).await
}

/// Runs a host's command on one participant and answers that participant's new state.
async fn host_acts_on(
    state: &AppState,
    auth: &AuthUser,
    room_id: Uuid,
    user_id: Uuid,
    command: impl FnOnce(UserId, UserId) -> RoomCommand,
) -> Result<Response, ApiError> {
    let target = UserId::from_uuid(user_id);
    state.write(&state.rooms, &room_id.to_string(), command(auth.user_id, target), auth.command()).await?;
    Ok(response::ok(participant(state, room_id, target).await?))
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

/// A participant's state after a write on them: their latest stay, which a
/// concurrent leave or removal may have ended since. The write is stored, so the
/// answer is a success either way.
async fn participant(state: &AppState, room_id: Uuid, user: UserId) -> Result<ParticipantView, ApiError> {
    let room = RoomId::from_uuid(room_id);
    queries::rooms::latest_stay(&state.db, room, user)
        .await?
        .map(ParticipantView::from)
        .ok_or_else(|| missing_stay(room, user))
}

/// A stored write on a participant, yet no stay of theirs in the read model.
fn missing_stay(room: RoomId, user: UserId) -> ApiError {
    ApiError::stored_but_missing(format!("the stay of {user} in room {room}"))
}
