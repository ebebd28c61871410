//! A room's event history, for its host: every stored event of the room aggregate,
//! from the audit read model.

use axum::extract::State;
use axum::response::Response;
use rapat_domain::room::Room;
use rapat_projections::queries;
use uuid::Uuid;

use super::views::Paged;
use super::{PageQuery, hosted_room_row};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Failure};
use crate::routes::audit::AuditEventView;
use crate::state::AppState;

/// The room's events, oldest first (host only). Password hashes are redacted.
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/events",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id"), PageQuery),
    responses(
        (status = 200, description = "One page of the room's events", body = Paged<AuditEventView>),
        (status = 400, description = "Malformed room id, page or limit", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 503, description = "The audit trail lags behind the writes answered; see Retry-After", body = Failure),
    )
)]
pub async fn room_events(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = query.parse()?;
    hosted_room_row(&state, &auth, room_id).await?;
    // No write waits for the audit trail; its reader does (`write.rs`).
    state.wait_audit_current().await?;
    let aggregate_type = <Room as cqrs_es::Aggregate>::TYPE;
    let (rows, total) =
        queries::audit::for_aggregate(&state.db, aggregate_type, &room_id.to_string(), page.page, page.limit).await?;
    let items: Vec<AuditEventView> = rows.into_iter().map(AuditEventView::from).collect();
    Ok(response::page(items, page.page, page.limit, total))
}
