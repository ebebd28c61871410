//! `AuthUser`: the caller, from `Authorization: Bearer <access token>`, checked
//! against its session so a logged-out token stops working at once.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use rapat_commands::CommandMetadata;
use rapat_domain::ids::UserId;
use rapat_projections::queries;
use uuid::Uuid;

use crate::error::ApiError;
use crate::idempotency;
use crate::state::AppState;
use crate::tokens::TokenError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest a request waits to record its user as seen.
const PRESENCE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    /// The login session the token belongs to (its `sid`): a socket closes when
    /// it is revoked.
    pub session_id: Uuid,
    /// The request id, carried into events as their correlation id.
    pub request_id: Option<String>,
    /// The caller's W3C trace context (`traceparent`, `tracestate`), carried into
    /// the NATS headers of the events this request causes.
    pub trace_context: Vec<(String, String)>,
    /// The request's `Idempotency-Key` bound to this user and route
    /// (`idempotency.rs`), when it sent one.
    pub client_key: Option<Uuid>,
}

impl AuthUser {
    /// Metadata for a command this caller issues.
    pub fn command(&self) -> CommandMetadata {
        let metadata = with_client_key(CommandMetadata::by(self.user_id.to_string()), self.client_key);
        let metadata = with_request_id(metadata, self.request_id.as_deref());
        self.trace_context
            .iter()
            .fold(metadata, |metadata, (name, value)| metadata.with_trace_header(name, value.as_str()))
    }
}

/// Refuses callers who are not administrators. The role is read from the users
/// read model on every request, not from the token: an administrator whose role
/// is taken away is refused at once.
pub async fn require_admin(state: &AppState, auth: &AuthUser) -> Result<(), ApiError> {
    match queries::users::by_id(&state.db, auth.user_id).await? {
        Some(user) if user.role == "admin" => Ok(()),
        _ => Err(ApiError::forbidden("not_admin", "only an administrator can do that")),
    }
}

/// The id tower-http's request-id layer gave this request.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get(REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()).map(str::to_string)
}

/// The W3C trace context headers of a request, when it has well-formed ones.
pub fn trace_context(headers: &HeaderMap) -> Vec<(String, String)> {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            // Bounded and printable: it is copied into every event message's headers.
            (value.len() <= 512 && value.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                .then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

pub fn with_request_id(metadata: CommandMetadata, request_id: Option<&str>) -> CommandMetadata {
    match request_id {
        Some(id) => metadata.with_correlation_id(id),
        None => metadata,
    }
}

/// Marks a command as the client's keyed request: `AppState::write` turns the
/// bound key carried in `command_id` into the command's own id.
pub fn with_client_key(metadata: CommandMetadata, client_key: Option<Uuid>) -> CommandMetadata {
    match client_key {
        Some(key) => metadata.with_client_key(key),
        None => metadata,
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|token| !token.is_empty())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing_token", "this endpoint needs Authorization: Bearer <token>")
        })?;
        let user = authenticate(state, token).await?;
        let client_key = idempotency::bind(&parts.headers, &user.user_id.to_string(), &parts.method, parts.uri.path())?;
        // Presence is advisory: it must not hold a request up while NATS is down.
        if state.nats.connection_state() == async_nats::connection::State::Connected {
            let _ = tokio::time::timeout(PRESENCE_WAIT, state.presence.touch(user.user_id)).await;
        }
        Ok(AuthUser {
            request_id: request_id(&parts.headers),
            trace_context: trace_context(&parts.headers),
            client_key,
            ..user
        })
    }
}

/// Verifies an access token, that its session is still active and that the
/// session is the token's user's: a token signed for one user with another's
/// session id is refused like a revoked one.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.tokens.verify_access(token).map_err(|error| match error {
        TokenError::Expired => ApiError::unauthorized("token_expired", error.to_string()),
        TokenError::Invalid => ApiError::unauthorized("invalid_token", error.to_string()),
    })?;
    let user_id = UserId::from_uuid(claims.sub);
    let user =
        AuthUser { user_id, session_id: claims.sid, request_id: None, trace_context: Vec::new(), client_key: None };
    if state.session_cache.is_fresh(claims.sid, user_id) {
        return Ok(user);
    }
    check_session(state, claims.sid, user_id).await?;
    state.session_cache.remember(claims.sid, user_id);
    Ok(user)
}

/// Asks the sessions read model (never the cache) whether `session` is active and
/// `user`'s.
pub async fn check_session(state: &AppState, session: Uuid, user: UserId) -> Result<(), ApiError> {
    match queries::sessions::by_id(&state.db, session).await? {
        Some(row) if row.user_id != user => {
            tracing::warn!(%session, token_user = %user, "a token names a session of another user");
            Err(ApiError::unauthorized("invalid_token", "this token does not belong to its session's user"))
        }
        Some(row) if row.is_active(Utc::now()) => Ok(()),
        _ => Err(ApiError::unauthorized("token_revoked", "this token's session has ended; log in again")),
    }
}
