//! Meetings on a calendar (SPEC §6): the caller's upcoming rooms, and a room as an
//! iCalendar (RFC 5545) file for calendar applications.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rapat_domain::ids::RoomId;
use rapat_projections::calendar::Meeting;
use rapat_projections::queries;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Data, Failure};
use crate::routes::invitations::caller_row;
use crate::routes::rooms::views::RoomView;
use crate::state::AppState;

/// Most rooms `GET /rooms/upcoming` answers with.
pub const MAX_UPCOMING: u32 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upcoming_rooms)).routes(routes!(room_calendar))
}

/// `?from=&to=` of the upcoming rooms.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpcomingQuery {
    /// Only rooms scheduled at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only rooms scheduled at or before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time such as 2026-05-01T09:00:00Z"))
    })
}

/// The rooms not ended that the caller hosts or has accepted an invitation to,
/// by `scheduledAt`, unscheduled ones last. With `from` or `to`, only scheduled
/// rooms within them (a `from` after `to` finds none). At most 500.
#[utoipa::path(
    get,
    path = "/rooms/upcoming",
    tag = "rooms",
    security(("bearer" = [])),
    params(UpcomingQuery),
    responses(
        (status = 200, description = "`data` is the rooms, soonest first", body = Data<Vec<RoomView>>),
        (status = 400, description = "`from` or `to` is not an RFC 3339 time", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn upcoming_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<UpcomingQuery>,
) -> Result<Response, ApiError> {
    let from = query.from.as_deref().map(|text| parse_time("from", text)).transpose()?;
    let to = query.to.as_deref().map(|text| parse_time("to", text)).transpose()?;
    let rows = queries::rooms::upcoming_for(&state.db, auth.user_id, from, to, MAX_UPCOMING).await?;
    Ok(response::ok(rows.into_iter().map(RoomView::from).collect::<Vec<_>>()))
}

/// The room as an iCalendar file with one `VEVENT`: its time (UTC), duration,
/// name, join link, organizer (the host) and a `UID` that stays the same, its
/// `SEQUENCE` growing with each reschedule, so a calendar that imported it before
/// updates the event in place. For the host and anyone holding an invitation to
/// the room that was not revoked.
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/calendar.ics",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "An iCalendar (RFC 5545) file", body = String, content_type = "text/calendar"),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller neither hosts the room nor holds an invitation to it", body = Failure),
        (status = 404, description = "no such room", body = Failure),
        (status = 409, description = "the room has no `scheduledAt`: it is not on any calendar", body = Failure),
    )
)]
async fn room_calendar(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let room = queries::rooms::by_id(&state.db, RoomId::from_uuid(room_id))
        .await?
        .ok_or_else(|| ApiError::not_found("room_not_found", "the room does not exist"))?;
    if room.host_id != auth.user_id {
        let caller = caller_row(&state, &auth).await?;
        if !queries::invitations::holds_unrevoked(&state.db, room.id, auth.user_id, &caller.email).await? {
            return Err(ApiError::forbidden("not_invited", "only the host and the invitees see the room's calendar"));
        }
    }
    let Some(start) = room.scheduled_at else {
        return Err(ApiError::conflict("not_scheduled", "the room has no scheduled time"));
    };
    let organizer = queries::users::by_id(&state.db, room.host_id).await?;
    let organizer = organizer.map(|host| (host.email, format!("{} {}", host.first_name, host.last_name)));
    let join_url = join_url(state.config.public_url.as_deref(), &headers, room_id);
    let meeting = Meeting { room: &room, start, join_url, organizer };
    let mut answer = meeting.to_ics().into_response();
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8"));
    let disposition = format!("attachment; filename=\"{room_id}.ics\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        answer.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(answer)
}

/// Where the browser client opens the room: `RAPAT_PUBLIC_URL` when set, else the
/// origin the caller reached this server at (the client is served by the
/// gateway), then the client's room route.
fn join_url(public_url: Option<&str>, headers: &HeaderMap, room_id: Uuid) -> String {
    if let Some(base) = public_url {
        return rapat_projections::calendar::join_url(base, room_id);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'#'))
        .unwrap_or("localhost");
    let scheme = match headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()) {
        Some("https") => "https",
        Some("http") => "http",
        _ if host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]") => "http",
        _ => "https",
    };
    format!("{scheme}://{host}/#/rooms/{room_id}")
}
