//! Liveness and readiness, outside `/api/v1` and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// The process runs.
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// The process can serve: NATS is connected and Postgres answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let postgres = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let status = if nats && postgres { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |up: bool| if up { "up" } else { "down" };
    (status, axum::Json(json!({ "nats": word(nats), "postgres": word(postgres) }))).into_response()
}
