//! `/analytics`: meetings, participants, participant-minutes and peak concurrency
//! per UTC day, from the analytics read model. A room's figures are for its host;
//! the daily figures across rooms are for administrators. What each number means
//! is written at the top of `projections/src/models/analytics/mod.rs`.
//!
//! The analytics projection is not awaited by room writes (nobody reads it right
//! after joining a room), so these figures may trail the latest events briefly.

use axum::extract::State;
use axum::response::Response;
use chrono::{NaiveDate, TimeDelta, Utc};
use rapat_domain::ids::RoomId;
use rapat_projections::queries;
use rapat_projections::queries::analytics::{AnalyticsDay, RoomTotals};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, require_admin};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Failure};
use crate::routes::rooms::hosted_room_row;
use crate::state::AppState;

/// Paths are relative to `/api/v1`, which `routes::api_router` nests them under.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(room_analytics)).routes(routes!(daily_analytics))
}

/// Longest range `GET /analytics/daily` answers for.
const MAX_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
const DEFAULT_DAYS: i64 = 30;

/// One UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsDayView {
    /// `YYYY-MM-DD`, UTC.
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    /// Rooms with activity that day (1 in a room's own figures).
    pub rooms: u64,
    /// Meetings that started that day.
    pub meetings: u64,
    /// Of those, the ones that have ended.
    pub meetings_ended: u64,
    /// Average length of the ended meetings; absent when none has ended.
    pub average_meeting_minutes: Option<f64>,
    /// Users in the room (any room, across rooms) at some moment of the day.
    pub unique_participants: u64,
    /// Time of every closed stay inside the day, in minutes.
    pub participant_minutes: f64,
    /// Most participants at once (across rooms: the highest of any one room).
    pub peak_concurrency: u32,
}

impl From<AnalyticsDay> for AnalyticsDayView {
    fn from(row: AnalyticsDay) -> Self {
        Self {
            day: row.day,
            rooms: row.rooms,
            meetings: row.meetings,
            meetings_ended: row.meetings_ended,
            average_meeting_minutes: row.average_meeting_minutes(),
            unique_participants: row.unique_participants,
            participant_minutes: row.participant_minutes(),
            peak_concurrency: row.peak_concurrency,
        }
    }
}

/// A room's figures over its whole history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomTotalsView {
    pub meetings: u64,
    pub meetings_ended: u64,
    pub average_meeting_minutes: Option<f64>,
    /// Distinct users over the whole history.
    pub unique_participants: u64,
    pub participant_minutes: f64,
    pub peak_concurrency: u32,
}

impl From<RoomTotals> for RoomTotalsView {
    fn from(totals: RoomTotals) -> Self {
        Self {
            meetings: totals.meetings,
            meetings_ended: totals.meetings_ended,
            average_meeting_minutes: totals.average_meeting_minutes(),
            unique_participants: totals.unique_participants,
            participant_minutes: totals.participant_minutes(),
            peak_concurrency: totals.peak_concurrency,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomAnalyticsView {
    pub room_id: Uuid,
    pub totals: RoomTotalsView,
    /// Oldest first.
    pub days: Vec<AnalyticsDayView>,
}

/// `{"success": true, "data": ...}`, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct RoomAnalyticsAnswer {
    success: bool,
    data: RoomAnalyticsView,
}

#[derive(Serialize, ToSchema)]
pub struct DailyAnalyticsAnswer {
    success: bool,
    data: Vec<AnalyticsDayView>,
}

/// A room's meetings, participants, participant-minutes and peak, in total and per
/// UTC day (host only).
#[utoipa::path(
    get,
    path = "/analytics/rooms/{roomId}",
    tag = "analytics",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room's analytics", body = RoomAnalyticsAnswer),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
    )
)]
pub async fn room_analytics(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    hosted_room_row(&state, &auth, room_id).await?;
    let room = RoomId::from_uuid(room_id);
    let totals = queries::analytics::room_totals(&state.db, room).await?;
    let days = queries::analytics::room_days(&state.db, room).await?;
    Ok(response::ok(RoomAnalyticsView {
        room_id,
        totals: totals.into(),
        days: days.into_iter().map(AnalyticsDayView::from).collect(),
    }))
}

/// `?from=&to=` of the daily figures.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// First UTC day, `YYYY-MM-DD`; defaults to 29 days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD`, included; defaults to today.
    #[param(format = Date)]
    to: Option<String>,
}

/// Every room together, per UTC day with any activity (administrators only).
#[utoipa::path(
    get,
    path = "/analytics/daily",
    tag = "analytics",
    security(("bearer" = [])),
    params(DailyQuery),
    responses(
        (status = 200, description = "One row per day with activity, oldest first", body = DailyAnalyticsAnswer),
        (status = 400, description = "A malformed day, or a range backwards or over 366 days", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not an administrator", body = Failure),
    )
)]
pub async fn daily_analytics(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<DailyQuery>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    let to = match &query.to {
        Some(text) => parse_day("to", text)?,
        None => Utc::now().date_naive(),
    };
    let from = match &query.from {
        Some(text) => parse_day("from", text)?,
        None => to - TimeDelta::days(DEFAULT_DAYS - 1),
    };
    if from > to {
        return Err(ApiError::bad_request("invalid_query", "from must not be after to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request("invalid_query", format!("a range spans at most {MAX_DAYS} days")));
    }
    let days = queries::analytics::daily(&state.db, from, to).await?;
    Ok(response::ok(days.into_iter().map(AnalyticsDayView::from).collect::<Vec<_>>()))
}

/// A full date as RFC 3339 (and the document's `format: date`) has it: exactly
/// `YYYY-MM-DD`, which chrono alone would also read from `2025-1-5` or `+12025-01-05`.
fn parse_day(field: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|day| text.len() == 10 && day.format("%Y-%m-%d").to_string() == text)
        .ok_or_else(|| ApiError::bad_request("invalid_query", format!("{field} must be a day as YYYY-MM-DD")))
}
