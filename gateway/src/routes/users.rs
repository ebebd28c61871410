//! `/users`: the caller's profile and anyone's presence. The user wire shapes
//! (`UserView`, `UserSummary`) live here and are shared with auth and contacts.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rapat_domain::account::{AccountCommand, AccountStatus, AvatarChange, PersonName};
use rapat_domain::ids::UserId;
use rapat_projections::queries::{self, UserRow};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::presence::PresenceState;
use crate::response::{self, Data, Failure};
use crate::routes::schema;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_profile, update_profile)).routes(routes!(presence))
}

/// A user as they see themselves: everything but the password hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// An image data URL, or null.
    pub avatar: Option<String>,
    /// `active`, `away`, `busy` or `offline`.
    pub status: String,
    /// `member` or `admin`.
    pub role: String,
    /// The address was verified with the token emailed at registration
    /// (`POST /auth/verify-email`).
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        // Spelled out field by field so that a new column (like the password hash)
        // never reaches the wire by accident.
        Self {
            id: row.id.as_uuid(),
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            avatar: row.avatar,
            status: row.status,
            role: row.role,
            email_verified: row.email_verified,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A user as others see them (contact lists). The email is there only when the
/// user shares it with the viewer: when each has the other in their contacts (a
/// user who adds someone offers their address; adding them back accepts).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub id: Uuid,
    /// Present only when the contact is mutual (each has added the other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub avatar: Option<String>,
    pub status: String,
}

impl UserSummary {
    /// `row` as a viewer sees them; `email_shared` says whether `row` shares their
    /// email with that viewer.
    pub fn seen_by_other(row: UserRow, email_shared: bool) -> Self {
        // Spelled out field by field, as in `UserView`.
        Self {
            id: row.id.as_uuid(),
            email: email_shared.then_some(row.email),
            first_name: row.first_name,
            last_name: row.last_name,
            avatar: row.avatar,
            status: row.status,
        }
    }
}

/// The user `id` from the read model, or 404.
pub async fn existing_user(state: &AppState, id: UserId) -> Result<UserRow, ApiError> {
    queries::users::by_id(&state.db, id).await?.ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))
}

/// The account's row after a stored write on it. It is missing only while the
/// users read model is ahead of a stream that lost its tail: then the write's
/// answer is 202 (`ApiError::stored_but_missing`), not 404.
pub async fn written_user(state: &AppState, id: UserId) -> Result<UserRow, ApiError> {
    queries::users::by_id(&state.db, id).await?.ok_or_else(|| ApiError::stored_but_missing(format!("account {id}")))
}

/// What a user tells others about their availability.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusInput {
    Active,
    Away,
    Busy,
    Offline,
}

impl From<StatusInput> for AccountStatus {
    fn from(status: StatusInput) -> Self {
        match status {
            StatusInput::Active => AccountStatus::Active,
            StatusInput::Away => AccountStatus::Away,
            StatusInput::Busy => AccountStatus::Busy,
            StatusInput::Offline => AccountStatus::Offline,
        }
    }
}

/// Absent (or null) fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[schema(schema_with = schema::person_name_or_null)]
    pub first_name: Option<String>,
    #[schema(schema_with = schema::person_name_or_null)]
    pub last_name: Option<String>,
    /// A PNG, JPEG, GIF or WebP image as a base64 data URL (at most 256 KiB); an
    /// empty string removes the avatar.
    #[schema(schema_with = schema::avatar_or_null)]
    pub avatar: Option<String>,
    pub status: Option<StatusInput>,
}

/// Own profile.
#[utoipa::path(
    get,
    path = "/users/profile",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is the caller's profile", body = Data<UserView>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn get_profile(State(state): State<AppState>, caller: AuthUser) -> Result<Response, ApiError> {
    let user = existing_user(&state, caller.user_id).await?;
    Ok(response::ok(UserView::from(user)))
}

/// Changes own name, avatar or status; answers the updated profile.
#[utoipa::path(
    put,
    path = "/users/profile",
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "`data` is the updated profile", body = Data<UserView>),
        (status = 400, description = "a name, the avatar or the status is not valid", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 413, description = "the avatar or the body is too large", body = Failure),
    )
)]
#[instrument(skip_all, fields(user = %caller.user_id))]
async fn update_profile(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<UpdateProfileRequest>,
) -> Result<Response, ApiError> {
    let command = AccountCommand::UpdateProfile {
        first_name: body.first_name.map(PersonName::parse).transpose()?,
        last_name: body.last_name.map(PersonName::parse).transpose()?,
        avatar: body.avatar.map(AvatarChange::parse).transpose()?,
        status: body.status.map(AccountStatus::from),
    };
    state.write(&state.accounts, &caller.user_id.to_string(), command, caller.command()).await?;
    let user = written_user(&state, caller.user_id).await?;
    Ok(response::ok(UserView::from(user)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Offline,
    InMeeting,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    pub user_id: Uuid,
    pub status: PresenceStatus,
    /// The last sign of that user (a request, or a WebSocket opening, closing or
    /// staying open), if any was recorded.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Whether a user is online, offline or in a meeting.
#[utoipa::path(
    get,
    path = "/users/{userId}/presence",
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "the user's id")),
    responses(
        (status = 200, description = "`data` is the user's presence", body = Data<PresenceView>),
        (status = 400, description = "the user id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 404, description = "no such user", body = Failure),
    )
)]
async fn presence(
    State(state): State<AppState>,
    _caller: AuthUser,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let user = existing_user(&state, UserId::from_uuid(user_id)).await?.id;
    // In a meeting while a WebSocket is open, online while seen lately (see presence.rs).
    let sighting = state.presence.sighting(user, state.config.presence_window).await;
    let status = match sighting.state {
        PresenceState::Offline => PresenceStatus::Offline,
        PresenceState::Online => PresenceStatus::Online,
        PresenceState::InMeeting => PresenceStatus::InMeeting,
    };
    let last_seen_at = sighting.last_seen_at;
    Ok(response::ok(PresenceView { user_id, status, last_seen_at }))
}
