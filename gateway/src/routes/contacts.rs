//! `/users/contacts`: the caller's contact list, a `ContactList` aggregate whose id
//! is the owner's user id.

use axum::extract::State;
use axum::response::Response;
use rapat_domain::contacts::ContactListCommand;
use rapat_domain::ids::UserId;
use rapat_projections::queries;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::response::{self, Data, Failure, Message};
use crate::routes::users::{UserSummary, existing_user};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_contacts, add_contact)).routes(routes!(remove_contact))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddContactRequest {
    pub contact_id: Uuid,
}

/// Own contacts, as user summaries. A contact's email is shown only when the
/// contact is mutual: they have added the caller too.
#[utoipa::path(
    get,
    path = "/users/contacts",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is the caller's contacts; `email` only for those who have added the caller too", body = Data<Vec<UserSummary>>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn list_contacts(State(state): State<AppState>, caller: AuthUser) -> Result<Response, ApiError> {
    let rows = queries::contacts::of(&state.db, caller.user_id).await?;
    let ids: Vec<UserId> = rows.iter().map(|row| row.id).collect();
    let mutual = queries::contacts::who_added(&state.db, caller.user_id, &ids).await?;
    let contacts: Vec<UserSummary> = rows
        .into_iter()
        .map(|row| {
            let shared = mutual.contains(&row.id);
            UserSummary::seen_by_other(row, shared)
        })
        .collect();
    Ok(response::ok(contacts))
}

/// Adds a user to own contacts. Their email is in the answer only if they had
/// already added the caller (adding someone offers them one's own email).
#[utoipa::path(
    post,
    path = "/users/contacts",
    tag = "users",
    security(("bearer" = [])),
    request_body = AddContactRequest,
    responses(
        (status = 201, description = "`data` is the new contact; `email` only if they have added the caller too", body = Data<UserSummary>),
        (status = 400, description = "the id is not a UUID, or it is the caller's own", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 404, description = "no such user", body = Failure),
        (status = 409, description = "already a contact", body = Failure),
    )
)]
async fn add_contact(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<AddContactRequest>,
) -> Result<Response, ApiError> {
    let contact = existing_user(&state, UserId::from_uuid(body.contact_id)).await?;
    let command = ContactListCommand::Add { owner: caller.user_id, contact: contact.id };
    state.write(&state.contacts, &caller.user_id.to_string(), command, caller.command()).await?;
    let shared = queries::contacts::who_added(&state.db, caller.user_id, &[contact.id]).await?.contains(&contact.id);
    Ok(response::created(UserSummary::seen_by_other(contact, shared)))
}

/// Removes a user from own contacts.
#[utoipa::path(
    delete,
    path = "/users/contacts/{contactId}",
    tag = "users",
    security(("bearer" = [])),
    params(("contactId" = Uuid, Path, description = "the contact's user id")),
    responses(
        (status = 200, description = "removed; `message` says so", body = Message),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 404, description = "that user is not a contact", body = Failure),
    )
)]
async fn remove_contact(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(contact_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = ContactListCommand::Remove { owner: caller.user_id, contact: UserId::from_uuid(contact_id) };
    state.write(&state.contacts, &caller.user_id.to_string(), command, caller.command()).await?;
    Ok(response::message("Contact removed"))
}
