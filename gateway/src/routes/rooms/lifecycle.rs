//! A room from creation to its end: create, list, history, read, change settings,
//! end.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rapat_domain::credentials::Password;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::{
    DurationMinutes, MaxUsers, MeetingStart, PasswordChange, RoomCommand, RoomDescription, RoomName,
};
use rapat_projections::queries;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use uuid::Uuid;

use super::views::{Paged, RoomView};
use super::{PageQuery, room_row, written_room_row};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency;
use crate::response::{self, Data, Failure};
use crate::routes::schema;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoomRequest {
    /// 1 to 100 characters, no control characters.
    #[schema(schema_with = schema::room_name)]
    name: String,
    /// Up to 1000 characters; tabs and line breaks, no other control characters.
    #[schema(schema_with = schema::room_description_or_null)]
    description: Option<String>,
    /// 4 to 128 characters; absent, null or empty for an open room.
    #[schema(max_length = 128, pattern = r"^(|[\s\S]{4,})$")]
    password: Option<String>,
    #[serde(deserialize_with = "schema::whole_number")]
    #[schema(schema_with = schema::max_users)]
    max_users: u32,
    /// When the meeting is planned: RFC 3339, from now to a year ahead.
    #[schema(schema_with = schema::timestamp_or_null)]
    scheduled_at: Option<DateTime<Utc>>,
    /// How long it is planned to last, 1 to 1440 minutes.
    #[serde(default, deserialize_with = "schema::optional_whole_number")]
    #[schema(schema_with = schema::duration_minutes_or_null)]
    duration_minutes: Option<u32>,
}

impl CreateRoomRequest {
    fn into_command(self, host: UserId) -> Result<RoomCommand, ApiError> {
        let now = Utc::now();
        let scheduled_at = self.scheduled_at.map(|at| MeetingStart::parse(at, now)).transpose()?.map(MeetingStart::get);
        Ok(RoomCommand::Create {
            host,
            name: RoomName::parse(self.name)?,
            description: RoomDescription::parse(self.description.unwrap_or_default())?,
            password: non_empty(self.password).map(Password::parse_for_room).transpose()?,
            max_users: MaxUsers::parse(self.max_users)?,
            scheduled_at,
            duration_minutes: parse_duration(self.duration_minutes)?,
        })
    }
}

/// Every field is optional; an absent one stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRoomRequest {
    #[schema(schema_with = schema::room_name_or_null)]
    name: Option<String>,
    #[schema(schema_with = schema::room_description_or_null)]
    description: Option<String>,
    /// A string sets a new password (4 to 128 characters); null or "" removes it;
    /// absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 128, pattern = r"^(|[\s\S]{4,})$")]
    password: Option<Option<String>>,
    #[serde(default, deserialize_with = "schema::optional_whole_number")]
    #[schema(schema_with = schema::max_users_or_null)]
    max_users: Option<u32>,
    /// Moves a meeting that has not started (a reschedule): RFC 3339, from now to a
    /// year ahead.
    #[schema(schema_with = schema::timestamp_or_null)]
    scheduled_at: Option<DateTime<Utc>>,
    /// Changes the planned length of a scheduled meeting that has not started.
    #[serde(default, deserialize_with = "schema::optional_whole_number")]
    #[schema(schema_with = schema::duration_minutes_or_null)]
    duration_minutes: Option<u32>,
}

/// An update's two commands: the settings, and the schedule (SPEC §6), each only
/// when the request changes something of it.
struct RoomUpdate {
    settings: Option<RoomCommand>,
    schedule: Option<RoomCommand>,
}

impl UpdateRoomRequest {
    fn into_commands(self, actor: UserId) -> Result<RoomUpdate, ApiError> {
        let now = Utc::now();
        let scheduled_at = self.scheduled_at.map(|at| MeetingStart::parse(at, now)).transpose()?.map(MeetingStart::get);
        let duration_minutes = parse_duration(self.duration_minutes)?;
        let schedule = (scheduled_at.is_some() || duration_minutes.is_some()).then_some(RoomCommand::Reschedule {
            actor,
            scheduled_at,
            duration_minutes,
        });
        let touches_settings =
            self.name.is_some() || self.description.is_some() || self.password.is_some() || self.max_users.is_some();
        // An empty body is still a settings update (which records nothing), so
        // that it answers as before: the room, or why the caller may not change it.
        let settings = (touches_settings || schedule.is_none()).then(|| self.into_settings(actor)).transpose()?;
        Ok(RoomUpdate { settings, schedule })
    }

    fn into_settings(self, actor: UserId) -> Result<RoomCommand, ApiError> {
        let password = match self.password {
            None => None,
            Some(value) => Some(match non_empty(value) {
                Some(raw) => PasswordChange::Set(Password::parse_for_room(raw)?),
                None => PasswordChange::Clear,
            }),
        };
        Ok(RoomCommand::UpdateSettings {
            actor,
            name: self.name.map(RoomName::parse).transpose()?,
            description: self.description.map(RoomDescription::parse).transpose()?,
            password,
            max_users: self.max_users.map(MaxUsers::parse).transpose()?,
        })
    }
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`, through
/// `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_duration(minutes: Option<u32>) -> Result<Option<DurationMinutes>, ApiError> {
    let out_of_range = || rapat_domain::room::RoomInputError::DurationOutOfRange { max: DurationMinutes::MAX };
    let parse = |n: u32| u16::try_from(n).map_err(|_| out_of_range()).and_then(DurationMinutes::parse);
    Ok(minutes.map(parse).transpose()?)
}

/// Forms send an empty field for "no password".
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

/// Create a room; the caller is its host (not yet a participant: they join like
/// anyone else).
#[utoipa::path(
    post,
    path = "/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "The new room", body = Data<RoomView>),
        (status = 400, description = "Invalid name, description, password or maxUsers", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 429, description = "The caller created as many rooms as one may in an hour; see Retry-After", body = Failure),
        (status = 503, description = "Password hashing is busy; see Retry-After", body = Failure),
    )
)]
pub async fn create_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateRoomRequest>,
) -> Result<Response, ApiError> {
    let command = body.into_command(auth.user_id)?;
    // A retry of a keyed creation names the room the first attempt created.
    let room_id =
        auth.client_key.map_or_else(RoomId::new_random, |key| RoomId::from_uuid(idempotency::derive(key, "room")));
    // Held until the new room is in the read model, so this user's next creation
    // counts it.
    let _one_at_a_time = state.limits.room_creation.lock(auth.user_id).await;
    refuse_over_hourly_cap(&state, auth.user_id).await?;
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::created(RoomView::from(written_room_row(&state, room_id.as_uuid()).await?)))
}

/// 429 when `host` created `rooms_per_user_per_hour` rooms within the last hour,
/// counted in the rooms read model (so across every gateway); Retry-After is when
/// the oldest of them leaves the hour.
async fn refuse_over_hourly_cap(state: &AppState, host: UserId) -> Result<(), ApiError> {
    let cap = state.config.rooms_per_user_per_hour;
    if cap == 0 {
        return Ok(());
    }
    let hour = chrono::Duration::hours(1);
    let now = Utc::now();
    let (created, oldest) = queries::rooms::created_by_since(&state.db, host, now - hour).await?;
    if created < u64::from(cap) {
        return Ok(());
    }
    let wait = oldest.map_or(hour, |oldest| oldest + hour - now).num_seconds().max(1);
    Err(ApiError {
        message: format!("a user may create {cap} rooms per hour; try again later"),
        ..ApiError::too_many_requests(u64::try_from(wait).unwrap_or(1))
    })
}

/// Rooms the caller hosts or is in, that have not ended, a page at a time.
#[utoipa::path(
    get,
    path = "/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of the caller's active rooms, newest first", body = Paged<RoomView>),
        (status = 400, description = "Invalid page or limit", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
    )
)]
pub async fn list_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.parse()?;
    let (rows, total) = queries::rooms::active_page_for(&state.db, auth.user_id, page.page, page.limit).await?;
    let items: Vec<RoomView> = rows.into_iter().map(RoomView::from).collect();
    Ok(response::page(items, page.page, page.limit, total))
}

/// Ended rooms the caller hosted or joined, newest first.
#[utoipa::path(
    get,
    path = "/rooms/history",
    tag = "rooms",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of ended rooms", body = Paged<RoomView>),
        (status = 400, description = "Invalid page or limit", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
    )
)]
pub async fn room_history(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.parse()?;
    let (rows, total) = queries::rooms::history_for(&state.db, auth.user_id, page.page, page.limit).await?;
    let items: Vec<RoomView> = rows.into_iter().map(RoomView::from).collect();
    Ok(response::page(items, page.page, page.limit, total))
}

/// One room. Any signed-in user may look a room up (to join it by its link).
#[utoipa::path(
    get,
    path = "/rooms/{roomId}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room", body = Data<RoomView>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 404, description = "No such room", body = Failure),
    )
)]
pub async fn get_room(
    State(state): State<AppState>,
    _auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    Ok(response::ok(RoomView::from(room_row(&state, room_id).await?)))
}

/// Change a room's settings (host only).
#[utoipa::path(
    put,
    path = "/rooms/{roomId}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    request_body = UpdateRoomRequest,
    responses(
        (status = 200, description = "The updated room", body = Data<RoomView>),
        (status = 400, description = "Invalid input", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "The room has ended, has more participants than the new maxUsers, or (for a new schedule) its meeting has started", body = Failure),
        (status = 503, description = "Password hashing is busy; see Retry-After", body = Failure),
    )
)]
pub async fn update_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateRoomRequest>,
) -> Result<Response, ApiError> {
    let RoomUpdate { settings, schedule } = body.into_commands(auth.user_id)?;
    // The schedule first: it is what a started meeting refuses, and then the
    // settings stay as they were too.
    for command in schedule.into_iter().chain(settings) {
        state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    }
    Ok(response::ok(RoomView::from(written_room_row(&state, room_id).await?)))
}

/// End the meeting (host only): everyone is disconnected and the room moves to
/// history. A room whose meeting never started is cancelled (SPEC §6).
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/end",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The ended room", body = Data<RoomView>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "The room has already ended", body = Failure),
    )
)]
pub async fn end_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = RoomCommand::End { actor: auth.user_id };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(RoomView::from(written_room_row(&state, room_id).await?)))
}
