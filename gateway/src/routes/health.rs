//! Liveness and readiness, outside `/api/v1` and the OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rapat_projections::queries;
use serde_json::json;

use crate::state::AppState;

/// How long `/readyz` waits for each backend.
const CHECK_TIMEOUT: Duration = Duration::from_millis(700);
/// JetStream's account info: answered only when JetStream itself is up, not just
/// the NATS connection.
const JETSTREAM_INFO: &str = "$JS.API.INFO";

/// The process runs.
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// The process can serve: NATS is connected and JetStream answers, and Postgres
/// answers; each is checked at once, within 700 ms, and named `"down"` when not. The body also
/// names, per projection, how many events were parked (stored events a read model
/// could not apply, so the read model is missing them).
///
/// Parked events do not make the process unready: readiness decides whether this
/// process gets traffic, and no restart or other instance would apply a parked
/// event (every instance shares the same read models), so failing here would only
/// take every gateway out of service at once. They are an operator's alarm instead:
/// the `rapat_projection_parked_total` metric, an error log line when parking, and
/// this detail.
///
/// A projection whose read model has applied events the stream lost (see
/// `projections/src/projector/stream_check.rs`) makes the process unready until its
/// rebuild is in place: its reads would contradict the stream. Named in
/// `streamMismatch`.
///
/// A draining process (shutting down, see `shutdown.rs`) is unready whatever its
/// backends say: `{"state": "draining"}`, so that load balancers stop sending.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "state": "draining" }))).into_response();
    }
    // Asked at once, each bounded, so that the answer comes within a second
    // whatever is down.
    let nats = async {
        state.nats.connection_state() == async_nats::connection::State::Connected
            && matches!(
                tokio::time::timeout(CHECK_TIMEOUT, state.nats.request(JETSTREAM_INFO, "".into())).await,
                Ok(Ok(_))
            )
    };
    let parked = async {
        tokio::time::timeout(CHECK_TIMEOUT, queries::parked::counts(&state.db))
            .await
            .map_err(|_| ())
            .and_then(|r| r.map_err(|_| ()))
    };
    let mismatched = async {
        tokio::time::timeout(CHECK_TIMEOUT, queries::checkpoints::stream_mismatches(&state.db))
            .await
            .map_err(|_| ())
            .and_then(|r| r.map_err(|_| ()))
    };
    let (nats, parked, mismatched) = tokio::join!(nats, parked, mismatched);
    let postgres = parked.is_ok();
    let consistent = mismatched.as_ref().is_ok_and(Vec::is_empty);
    let status = if nats && postgres && consistent { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |up: bool| if up { "up" } else { "down" };
    let parked_events = parked.map(|counts| json!(counts)).unwrap_or(serde_json::Value::Null);
    let readiness = if status == StatusCode::OK { "ready" } else { "unready" };
    let stream_mismatch = mismatched.map(|names| json!(names)).unwrap_or(serde_json::Value::Null);
    (status, axum::Json(json!({ "state": readiness, "nats": word(nats), "postgres": word(postgres), "parkedEvents": parked_events, "streamMismatch": stream_mismatch }))).into_response()
}
