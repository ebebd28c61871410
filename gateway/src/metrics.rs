//! Prometheus metrics: request counts and latencies here, command and projection
//! figures from `rapat-commands` and `rapat-projections` (all through the
//! `metrics` facade), rendered at `/metrics` by the recorder the binary installed.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

/// Counts and times every request by method, route template and status. The
/// route is the template (`/api/v1/rooms/{room_id}`), never the concrete path, so
/// the number of series stays bounded.
pub async fn record_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("rapat_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("rapat_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The text exposition format, or 404 when this process exports no metrics.
pub fn render(handle: Option<&PrometheusHandle>) -> Response {
    match handle {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled in this process").into_response(),
    }
}
