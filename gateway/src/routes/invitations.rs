//! Invitations to rooms (SPEC §6): the host invites accounts and email addresses,
//! lists and revokes; the invitee lists, accepts and declines. Each invitation is
//! an `Invitation` aggregate whose id derives from its room and invitee, so
//! inviting twice addresses the same one. Who may ask (the host of a room not
//! ended, the invitee) is checked here, on the read models, before anything is
//! stored; the aggregate keeps its own rules (an answer only from its invitee, a
//! revocation only from its host).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use rapat_commands::CommandMetadata;
use rapat_domain::account::Email;
use rapat_domain::ids::{InvitationId, RoomId, UserId};
use rapat_domain::invitation::{Invitation, InvitationCommand, Invitee};
use rapat_projections::queries;
use rapat_projections::queries::invitations::{InvitationRow, InvitationState, ReceivedInvitationRow};
use rapat_projections::queries::{RoomStatus, UserRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::response::{self, Data, Failure};
use crate::routes::rooms::hosted_room_row;
use crate::state::AppState;

/// Most invitees in one request, accounts and addresses together (SPEC §6).
pub const MAX_INVITEES: usize = 100;

/// How many invitations of one request are stored at a time.
const CONCURRENT_WRITES: usize = 8;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite, list_room_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(accept_invitation))
        .routes(routes!(decline_invitation))
}

/// Whom to invite: accounts by id, people by email address, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    /// Accounts to invite. Every id must be an existing user's (404 otherwise).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub user_ids: Vec<Uuid>,
    /// Addresses to invite. An address that belongs to an account invites that
    /// account; any other gets an invitation that the account later registered
    /// with it takes over.
    #[serde(default)]
    #[schema(schema_with = crate::routes::schema::invitee_emails)]
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatusView {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl From<InvitationState> for InvitationStatusView {
    fn from(state: InvitationState) -> Self {
        match state {
            InvitationState::Pending => Self::Pending,
            InvitationState::Accepted => Self::Accepted,
            InvitationState::Declined => Self::Declined,
            InvitationState::Revoked => Self::Revoked,
        }
    }
}

/// An invitation as its host sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub id: Uuid,
    pub room_id: Uuid,
    /// The invited account, or the account that took over an email invitation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitee_id: Option<Uuid>,
    /// The invited address, for an invitation sent to an email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub status: InvitationStatusView,
    /// When it was (last) issued.
    pub created_at: DateTime<Utc>,
}

impl From<InvitationRow> for InvitationView {
    fn from(row: InvitationRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            room_id: row.room_id.as_uuid(),
            invitee_id: row.invitee_id,
            email: row.email,
            status: row.status.into(),
            created_at: row.created_at,
        }
    }
}

/// Who sent an invitation.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    /// First and last name together, for display.
    pub name: String,
}

/// An invitation as its invitee sees it: with the room and its host.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedInvitationView {
    #[serde(flatten)]
    pub invitation: InvitationView,
    pub room_name: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub host: HostView,
}

impl From<ReceivedInvitationRow> for ReceivedInvitationView {
    fn from(row: ReceivedInvitationRow) -> Self {
        // Empty only while the accounts read model catches up with the host.
        let first_name = row.host_first_name.unwrap_or_default();
        let last_name = row.host_last_name.unwrap_or_default();
        let name = format!("{first_name} {last_name}").trim().to_owned();
        let host = HostView { id: row.invitation.host_id.as_uuid(), first_name, last_name, name };
        Self { invitation: row.invitation.into(), room_name: row.room_name, scheduled_at: row.scheduled_at, host }
    }
}

/// Invites accounts and email addresses to a room. Inviting someone already
/// invited (pending or accepted) changes nothing and answers their invitation as
/// it is; someone who declined or whose invitation was revoked is invited anew.
/// Nothing is stored unless every invitee is valid.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/invitations",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "`data` is the invitations, one per distinct invitee", body = Data<Vec<InvitationView>>),
        (status = 400, description = "no invitee, more than 100 in all, a malformed email address or id, or the caller themself (by id or by their own address)", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not the room's host", body = Failure),
        (status = 404, description = "no such room, or a `userIds` entry is no user's (`user_not_found`)", body = Failure),
        (status = 409, description = "the room has ended", body = Failure),
    )
)]
async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> Result<Response, ApiError> {
    let room = hosted_room_row(&state, &auth, room_id).await?;
    if room.status == RoomStatus::Ended {
        return Err(ApiError::conflict("room_ended", "the room has ended"));
    }
    let total = body.user_ids.len() + body.emails.len();
    if total == 0 {
        return Err(ApiError::bad_request("no_invitees", "give at least one entry in userIds or emails"));
    }
    if total > MAX_INVITEES {
        return Err(ApiError::bad_request(
            "too_many_invitees",
            format!("at most {MAX_INVITEES} invitees in all (userIds and emails together)"),
        ));
    }
    let caller = caller_row(&state, &auth).await?;
    let invitees = invitees(&state, &caller, body).await?;
    let room = RoomId::from_uuid(room_id);
    let ids: Vec<InvitationId> = invitees.iter().map(|invitee| Invitation::id_for(room, invitee)).collect();
    futures::stream::iter(invitees)
        .map(|invitee| {
            let (state, metadata) = (&state, auth.command());
            async move {
                let id = Invitation::id_for(room, &invitee).to_string();
                let command = InvitationCommand::Issue { room, host: auth.user_id, invitee };
                state.write(&state.invitations, &id, command, metadata).await
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_collect::<Vec<_>>()
        .await?;
    let rows = queries::invitations::by_ids(&state.db, &ids).await?;
    Ok(response::created(rows.into_iter().map(InvitationView::from).collect::<Vec<_>>()))
}

/// The distinct invitees of a request, parsed and checked: every id an existing
/// user's, every address well formed, an address of an account read as that
/// account, and never the caller.
async fn invitees(state: &AppState, caller: &UserRow, body: InviteRequest) -> Result<Vec<Invitee>, ApiError> {
    let self_invite = || ApiError::bad_request("cannot_invite_self", "you cannot invite yourself");
    // Keyed by id and by address, so an invitee named twice is invited once.
    let mut accounts: BTreeMap<Uuid, ()> = BTreeMap::new();
    let mut addresses: BTreeMap<String, Email> = BTreeMap::new();
    for (index, raw) in body.emails.into_iter().enumerate() {
        let email = Email::parse(raw)
            .map_err(|error| ApiError::bad_request("invalid_email", format!("emails[{index}]: {error}")))?;
        addresses.insert(email.as_str().to_owned(), email);
    }
    for id in body.user_ids {
        accounts.insert(id, ());
    }
    if accounts.contains_key(&caller.id.as_uuid()) || addresses.contains_key(&caller.email) {
        return Err(self_invite());
    }
    let wanted: Vec<UserId> = accounts.keys().copied().map(UserId::from_uuid).collect();
    let found = queries::users::by_ids(&state.db, &wanted).await?;
    if found.len() < wanted.len() {
        let missing: Vec<String> =
            wanted.iter().filter(|id| !found.iter().any(|row| row.id == **id)).map(ToString::to_string).collect();
        return Err(ApiError::not_found("user_not_found", format!("no such user: {}", missing.join(", "))));
    }
    let mut invitees = Vec::with_capacity(accounts.len() + addresses.len());
    for (address, email) in addresses {
        match queries::users::by_email(&state.db, &address).await? {
            Some(account) => {
                accounts.insert(account.id.as_uuid(), ());
            }
            None => invitees.push(Invitee::Email(email)),
        }
    }
    invitees.extend(accounts.into_keys().map(|id| Invitee::User(UserId::from_uuid(id))));
    Ok(invitees)
}

/// Every invitation to the room, whatever its status, oldest first.
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/invitations",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "`data` is the room's invitations", body = Data<Vec<InvitationView>>),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not the room's host", body = Failure),
        (status = 404, description = "no such room", body = Failure),
    )
)]
async fn list_room_invitations(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    hosted_room_row(&state, &auth, room_id).await?;
    let rows = queries::invitations::of_room(&state.db, RoomId::from_uuid(room_id)).await?;
    Ok(response::ok(rows.into_iter().map(InvitationView::from).collect::<Vec<_>>()))
}

/// Revokes an invitation: its invitee can no longer accept it, and an accepted
/// one no longer lets them into a room with a password. Revoking twice changes
/// nothing.
#[utoipa::path(
    delete,
    path = "/rooms/{roomId}/invitations/{invitationId}",
    tag = "rooms",
    security(("bearer" = [])),
    params(
        ("roomId" = Uuid, Path, description = "The room's id"),
        ("invitationId" = Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 200, description = "`data` is the revoked invitation", body = Data<InvitationView>),
        (status = 400, description = "an id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not the room's host", body = Failure),
        (status = 404, description = "no such room, or no such invitation to it", body = Failure),
    )
)]
async fn revoke_invitation(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((room_id, invitation_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    hosted_room_row(&state, &auth, room_id).await?;
    let invitation = invitation_row(&state, invitation_id).await?;
    if invitation.room_id.as_uuid() != room_id {
        return Err(not_found());
    }
    let command = InvitationCommand::Revoke { by: auth.user_id };
    state.write(&state.invitations, &invitation_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(InvitationView::from(invitation_row(&state, invitation_id).await?)))
}

/// The caller's pending invitations to rooms not ended, soonest first
/// (unscheduled last): those to their account, and those sent to their address
/// before they had an account.
#[utoipa::path(
    get,
    path = "/users/invitations",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is the caller's pending invitations with their room and host", body = Data<Vec<ReceivedInvitationView>>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn my_invitations(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    let caller = caller_row(&state, &auth).await?;
    let rows = queries::invitations::pending_for(&state.db, auth.user_id, &caller.email).await?;
    Ok(response::ok(rows.into_iter().map(ReceivedInvitationView::from).collect::<Vec<_>>()))
}

/// Accepts an invitation: the room shows in the caller's upcoming meetings, and
/// a room with a password lets them join without it. Accepting twice changes
/// nothing; accepting after declining changes one's mind.
#[utoipa::path(
    post,
    path = "/invitations/{invitationId}/accept",
    tag = "invitations",
    security(("bearer" = [])),
    params(("invitationId" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "`data` is the accepted invitation", body = Data<InvitationView>),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not the invitee", body = Failure),
        (status = 404, description = "no such invitation", body = Failure),
        (status = 409, description = "the invitation was revoked, or its room has ended", body = Failure),
    )
)]
async fn accept_invitation(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(invitation_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    answer(&state, &auth, invitation_id, InvitationCommand::Accept { by: auth.user_id }).await
}

/// Declines an invitation. Declining twice changes nothing; declining after
/// accepting changes one's mind.
#[utoipa::path(
    post,
    path = "/invitations/{invitationId}/decline",
    tag = "invitations",
    security(("bearer" = [])),
    params(("invitationId" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "`data` is the declined invitation", body = Data<InvitationView>),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not the invitee", body = Failure),
        (status = 404, description = "no such invitation", body = Failure),
        (status = 409, description = "the invitation was revoked, or its room has ended", body = Failure),
    )
)]
async fn decline_invitation(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(invitation_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    answer(&state, &auth, invitation_id, InvitationCommand::Decline { by: auth.user_id }).await
}

/// The invitee's answer. An invitation sent to the caller's address that no
/// account has taken over yet is first bound to the caller: registering binds
/// them too, but only as a best effort, so this is what makes it certain.
async fn answer(
    state: &AppState,
    auth: &AuthUser,
    invitation_id: Uuid,
    command: InvitationCommand,
) -> Result<Response, ApiError> {
    let invitation = invitation_row(state, invitation_id).await?;
    let id = invitation_id.to_string();
    let room = queries::rooms::by_id(&state.db, invitation.room_id).await?;
    if room.is_some_and(|room| room.status == RoomStatus::Ended) {
        return Err(ApiError::conflict("room_ended", "the room has ended"));
    }
    if invitation.invitee() != Some(auth.user_id) {
        let caller = caller_row(state, auth).await?;
        let unbound_to_caller = invitation.invitee_id.is_none() && invitation.email.as_deref() == Some(&caller.email);
        if !unbound_to_caller {
            return Err(ApiError::forbidden("not_the_invitee", "only the invited user can answer this invitation"));
        }
        let bind = InvitationCommand::BindAccount { account: auth.user_id };
        state.write(&state.invitations, &id, bind, bind_metadata(invitation.id, auth.user_id)).await?;
    }
    if let Err(error) = state.write(&state.invitations, &id, command, auth.command()).await {
        // A bind stored on the way is bookkeeping, not the answer: a failed answer
        // must not read as "stored, not visible yet".
        if ![crate::error::OUTCOME_UNKNOWN, crate::error::STORED_NOT_VISIBLE].contains(&error.code) {
            rapat_commands::deadline::not_applied();
        }
        return Err(error);
    }
    Ok(response::ok(InvitationView::from(invitation_row(state, invitation_id).await?)))
}

/// Binds the pending invitations sent to `email` before its account existed to
/// that account, `account`: a best effort after a registration (a failure is
/// logged; answering such an invitation binds it anyway).
pub async fn bind_email_invitations(state: &AppState, account: UserId, email: &Email) {
    let pending = match queries::invitations::unbound_to_email(&state.db, email.as_str()).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::warn!(%error, "could not look up the invitations sent to a new account's address");
            return;
        }
    };
    for invitation in pending {
        let command = InvitationCommand::BindAccount { account };
        let id = invitation.id.to_string();
        if let Err(error) = state.write(&state.invitations, &id, command, bind_metadata(invitation.id, account)).await {
            tracing::warn!(invitation = %id, code = error.code, "could not bind an invitation to a new account");
        }
    }
}

/// The metadata of binding `invitation` to `account`: its command id derives from
/// both, so a retry (or the bind of a registration and of an answer racing) is
/// stored once.
fn bind_metadata(invitation: InvitationId, account: UserId) -> CommandMetadata {
    let command_id = Uuid::new_v5(&invitation.as_uuid(), format!("bind/{account}").as_bytes());
    CommandMetadata::by(account.to_string()).with_command_id(command_id)
}

async fn invitation_row(state: &AppState, invitation_id: Uuid) -> Result<InvitationRow, ApiError> {
    queries::invitations::by_id(&state.db, InvitationId::from_uuid(invitation_id)).await?.ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::not_found("invitation_not_found", "no such invitation")
}

/// The caller's own row, for their email address.
pub(crate) async fn caller_row(state: &AppState, auth: &AuthUser) -> Result<UserRow, ApiError> {
    queries::users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "the account of this token does not exist"))
}
