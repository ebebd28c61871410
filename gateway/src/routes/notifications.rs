//! `/notifications`: the caller's in-app notifications (SPEC §6), newest first and
//! paged by a cursor, their unread count, and marking them read.
//!
//! Notifications are a read model (the `notifications` projection); what a user has
//! read is their `Inbox` aggregate's events, so marking read is a command like any
//! other write and a rebuild of the read model keeps it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rapat_domain::inbox::InboxCommand;
use rapat_projections::queries;
use rapat_projections::queries::notifications::{NotificationPosition, NotificationRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Data, Failure};
use crate::state::AppState;

/// Paths are relative to `/api/v1`, which `routes::api_router` nests them under.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsQuery {
    /// Only unread notifications when true.
    unread: Option<bool>,
    /// `nextCursor` of the previous page; leave out for the first page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
    /// Notifications per page, 1 to 100; defaults to 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: Uuid,
    /// `room_invitation`, `invitation_accepted`, `invitation_declined`, `meeting_reminder`,
    /// `meeting_started`, `meeting_rescheduled`, `meeting_cancelled`, `contact_added` or
    /// `removed_from_room`.
    #[schema(example = "room_invitation")]
    pub kind: String,
    /// When the event that caused it happened.
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    /// Names the room (`room: {id, name}`), the actor (`actor: {id, name}`) and what changed
    /// (e.g. `scheduledAt`, `late`).
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<NotificationRow> for NotificationView {
    fn from(row: NotificationRow) -> Self {
        Self { id: row.id, kind: row.kind, created_at: row.created_at, read_at: row.read_at, payload: row.payload }
    }
}

/// `{"success": true, "data": [...], "nextCursor": "..." | null}`, for the OpenAPI
/// document.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    success: bool,
    data: Vec<NotificationView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UnreadCount {
    count: u64,
}

/// The caller's notifications, newest first.
#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    params(NotificationsQuery),
    responses(
        (status = 200, description = "One page of the caller's notifications, newest first", body = NotificationPage),
        (status = 400, description = "A malformed `unread`, limit or cursor", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn list_notifications(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let unread = query.unread.unwrap_or(false);
    // One row more than asked tells whether another page follows.
    let mut rows = queries::notifications::list(&state.db, caller.user_id, unread, after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| encode_cursor(row.position())) } else { None };
    let data: Vec<NotificationView> = rows.into_iter().map(NotificationView::from).collect();
    let body = json!({ "success": true, "data": data, "nextCursor": next_cursor });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// How many of the caller's notifications are unread.
#[utoipa::path(
    get,
    path = "/notifications/unread-count",
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data.count` is the number of unread notifications", body = Data<UnreadCount>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn unread_count(State(state): State<AppState>, caller: AuthUser) -> Result<Response, ApiError> {
    let count = queries::notifications::unread_count(&state.db, caller.user_id).await?;
    Ok(response::ok(UnreadCount { count }))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(
    post,
    path = "/notifications/{id}/read",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the notification's id")),
    responses(
        (status = 200, description = "`data` is the notification, read", body = Data<NotificationView>),
        (status = 202, description = "stored, not yet visible: `stored_not_visible`", body = Failure),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 404, description = "the caller has no such notification", body = Failure),
    )
)]
async fn mark_read(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("notification_not_found", "no such notification");
    let found = queries::notifications::find(&state.db, caller.user_id, id).await?.ok_or_else(not_found)?;
    if found.read_at.is_some() {
        return Ok(response::ok(NotificationView::from(found)));
    }
    let command = InboxCommand::MarkRead { user: caller.user_id, ids: vec![id] };
    state.write(&state.inboxes, &caller.user_id.to_string(), command, caller.command()).await?;
    let read = queries::notifications::find(&state.db, caller.user_id, id).await?.ok_or_else(not_found)?;
    Ok(response::ok(NotificationView::from(read)))
}

/// Marks every notification the caller has read.
#[utoipa::path(
    post,
    path = "/notifications/read-all",
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "all read; `data.count` is what is unread now (0, unless new ones arrived)", body = Data<UnreadCount>),
        (status = 202, description = "stored, not yet visible: `stored_not_visible`", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn mark_all_read(State(state): State<AppState>, caller: AuthUser) -> Result<Response, ApiError> {
    // Nothing unread: no event to store.
    if queries::notifications::unread_count(&state.db, caller.user_id).await? > 0 {
        let command = InboxCommand::MarkAllRead { user: caller.user_id };
        state.write(&state.inboxes, &caller.user_id.to_string(), command, caller.command()).await?;
    }
    let count = queries::notifications::unread_count(&state.db, caller.user_id).await?;
    Ok(response::ok(UnreadCount { count }))
}

/// The cursor is opaque to clients; inside it is `v1:<created_at µs>:<id>` of the
/// last notification they got. The prefix lets the format change later.
fn encode_cursor(position: NotificationPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", position.created_at.timestamp_micros(), position.id))
}

fn decode_cursor(cursor: &str) -> Result<NotificationPosition, ApiError> {
    let invalid = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    let (Some("v1"), Some(micros), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = id.parse().map_err(|_| invalid())?;
    Ok(NotificationPosition { created_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let position = NotificationPosition {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("a time"),
            id: Uuid::from_u128(7),
        };
        assert_eq!(decode_cursor(&encode_cursor(position)).ok(), Some(position));
        for bad in ["", "!!", "djE6", &URL_SAFE_NO_PAD.encode("v1:x:y"), &URL_SAFE_NO_PAD.encode("v2:1:2")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?} accepted");
        }
    }
}
