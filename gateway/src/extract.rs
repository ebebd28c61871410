//! Extractors whose rejections speak the API's envelope, so a malformed body, path
//! or query gets a 400 (or 413) like every other error, never axum's plain text.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `axum::Json` with the API's errors, and only a JSON object as the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes =
            Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(JsonRejection::from)?;
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        let axum::Json(value) = <axum::Json<T> as FromRequest<S>>::from_request(request, state).await?;
        // serde also reads a struct from a JSON array of its field values in
        // order; every body of this API is an object, and a positional array is a
        // client bug, not a request.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
        }
        Ok(ApiJson(value))
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Option<ApiJson<T>>`, for an endpoint whose body may be left out: `None` when
/// the body is empty (whatever the Content-Type, as many clients always send one)
/// or JSON `null` (what the OpenAPI document's optional body allows), otherwise
/// exactly what `ApiJson<T>` accepts or refuses.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes =
            Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(JsonRejection::from)?;
        if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(None);
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        <ApiJson<T> as FromRequest<S>>::from_request(request, state).await.map(Some)
    }
}

/// `axum::extract::Path` with the API's errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with the API's errors, and the rules every query
/// parameter of this API follows, checked here once for all of them: no control
/// characters (a NUL reaching Postgres would be a 500) and no empty values (a
/// parameter sent empty is a client bug; leave it out instead).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        for (name, value) in &pairs {
            check_query_parameter(name, value)?;
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

fn check_query_parameter(name: &str, value: &str) -> Result<(), ApiError> {
    // The name as the client sent it, but short and with control characters escaped.
    let shown: String = name.chars().take(40).flat_map(char::escape_debug).collect();
    if name.chars().chain(value.chars()).any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("the query parameter \"{shown}\" must not contain control characters"),
        ));
    }
    if value.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("the query parameter \"{shown}\" must not be empty; leave it out instead"),
        ));
    }
    Ok(())
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "invalid_content_type",
                "the body must be JSON, with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(bytes) if bytes.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::too_large("body_too_large", "the request body is too large")
            }
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}
