//! The success half of the envelope: `{"success": true, "data": ...}` or
//! `{"success": true, "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

pub fn ok<T: Serialize>(data: T) -> Response {
    with_status(StatusCode::OK, data)
}

pub fn created<T: Serialize>(data: T) -> Response {
    with_status(StatusCode::CREATED, data)
}

pub fn message(text: &str) -> Response {
    (StatusCode::OK, axum::Json(json!({ "success": true, "message": text }))).into_response()
}

fn with_status<T: Serialize>(status: StatusCode, data: T) -> Response {
    (status, axum::Json(json!({ "success": true, "data": data }))).into_response()
}

/// `{"success": true, "data": [...], "pagination": {page, limit, total}}`.
pub fn page<T: Serialize>(items: T, page: u32, limit: u32, total: u64) -> Response {
    let body = json!({
        "success": true,
        "data": items,
        "pagination": { "page": page, "limit": limit, "total": total },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `{"success": true, "data": ...}`, for the OpenAPI document of handlers that
/// answer with [`ok`] or [`created`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct Data<T> {
    success: bool,
    data: T,
}

/// `{"success": true, "message": "..."}`, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Message {
    success: bool,
    message: String,
}

/// `{"success": false, "error": {code, message}}`, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Failure {
    success: bool,
    error: FailureDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FailureDetail {
    /// Machine-readable, e.g. `room_not_found`.
    code: String,
    message: String,
}
