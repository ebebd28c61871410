//! `/audit/events`: the whole audit trail (every stored event of every aggregate),
//! for administrators, filtered and paged by a cursor.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rapat_projections::queries;
use rapat_projections::queries::AuditRow;
use rapat_projections::queries::audit::{AuditFilter, AuditPosition};
use rapat_projections::redaction::redact_secrets;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, require_admin};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::response::Failure;
use crate::state::AppState;

/// Paths are relative to `/api/v1`, which `routes::api_router` nests them under.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_events))
}

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// The query string of `GET /audit/events`. Times are kept as text so that a bad
/// one gets this API's 400 with the field named, not a serde message.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    /// e.g. `room`, `account`, `contacts`, `email`, `session`.
    #[param(min_length = 1, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    aggregate_type: Option<String>,
    #[param(min_length = 1, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    aggregate_id: Option<String>,
    /// The acting user's id.
    #[param(min_length = 1, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    actor: Option<String>,
    /// e.g. `ParticipantJoined`.
    #[param(min_length = 1, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    event_type: Option<String>,
    /// RFC 3339; events that occurred at or after it.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; events that occurred before it.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Events per page, 1 to 500; defaults to 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page; leave out for the first page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

/// One stored event, envelope and payload, as the audit read model holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub stream_sequence: u64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// The acting user's id; absent when the system acted (e.g. `rapat admin grant`).
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub command_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's payload; secrets in it (password and refresh-token hashes) are redacted.
    pub payload: Value,
}

impl From<AuditRow> for AuditEventView {
    fn from(row: AuditRow) -> Self {
        Self {
            stream_sequence: row.stream_sequence,
            event_id: row.event_id,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            aggregate_version: row.aggregate_version,
            event_type: row.event_type,
            schema_version: row.schema_version,
            actor: row.actor,
            correlation_id: row.correlation_id,
            command_id: row.command_id,
            occurred_at: row.occurred_at,
            payload: redacted_payload(row.payload),
        }
    }
}

/// `{"success": true, "data": [...], "nextCursor": "..." | null}`, for the OpenAPI
/// document.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    success: bool,
    data: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Every stored event, in stream order (admin role only). Password hashes are
/// redacted.
#[utoipa::path(
    get,
    path = "/audit/events",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of the audit trail", body = AuditPage),
        (status = 400, description = "A malformed filter, limit or cursor", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not an administrator", body = Failure),
        (status = 503, description = "The audit trail lags behind the writes answered; see Retry-After", body = Failure),
    )
)]
pub async fn audit_events(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let filter = AuditFilter {
        aggregate_type: query.aggregate_type,
        aggregate_id: query.aggregate_id,
        actor: query.actor,
        event_type: query.event_type,
        from: query.from.as_deref().map(|text| parse_time("from", text)).transpose()?,
        to: query.to.as_deref().map(|text| parse_time("to", text)).transpose()?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(ApiError::bad_request("invalid_query", "from must not be after to"));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // No write waits for the audit trail; its reader does (`write.rs`).
    state.wait_audit_current().await?;

    // One row more than asked tells whether another page follows.
    let mut rows = queries::audit::search(&state.db, &filter, after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| encode_cursor(row.position())) } else { None };
    let data: Vec<AuditEventView> = rows.into_iter().map(AuditEventView::from).collect();
    let body = json!({ "success": true, "data": data, "nextCursor": next_cursor });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Rows are stored redacted; redacting again on the way out also covers a database
/// restored from before that.
fn redacted_payload(mut payload: Value) -> Value {
    redact_secrets(&mut payload);
    payload
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{field} must be an RFC 3339 time, e.g. 2025-01-31T09:00:00Z"))
    })
}

/// The cursor is opaque to clients; inside it is `v1:<stream sequence>:<version>`
/// of the last event they got. The prefix lets the format change later.
fn encode_cursor(position: AuditPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", position.stream_sequence, position.aggregate_version))
}

fn decode_cursor(cursor: &str) -> Result<AuditPosition, ApiError> {
    let invalid = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    let (Some("v1"), Some(sequence), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let stream_sequence = sequence.parse().map_err(|_| invalid())?;
    let aggregate_version = version.parse().map_err(|_| invalid())?;
    Ok(AuditPosition { stream_sequence, aggregate_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let position = AuditPosition { stream_sequence: 42, aggregate_version: 3 };
        assert_eq!(decode_cursor(&encode_cursor(position)).ok(), Some(position));
        for bad in ["", "not base64!", "djE6eA", &URL_SAFE_NO_PAD.encode("v1:1:2:3"), &URL_SAFE_NO_PAD.encode("v2:1:2")]
        {
            assert_eq!(decode_cursor(bad).map_err(|e| e.code), Err("invalid_cursor"), "{bad:?}");
        }
    }
}
