//! Account recovery and verification (SPEC §7): `/auth/password-reset`,
//! `/auth/password-reset/confirm` and `/auth/verify-email`.
//!
//! Tokens are never stored or sent from here: a request is a command carrying
//! the token's hash (`rapat_domain::account::TokenRequest`), the email is built
//! by the email channel from the event, which derives the same token again from
//! the request id and the deployment's secret. A presented token names its
//! account, so confirming it is a command on that account, which checks the hash,
//! the expiry and that it was not used.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use rapat_commands::CommandMetadata;
use rapat_domain::account::{
    AccountCommand, AccountError, AccountToken, AccountTokenKey, Email, TokenPurpose, TokenRequest,
};
use rapat_domain::credentials::Password;
use rapat_domain::ids::UserId;
use rapat_domain::session::{RevokeReason, SessionCommand};
use rapat_projections::queries;
use serde::Deserialize;
use serde_json::json;
use tracing::instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{request_id, with_request_id};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::response::{self, Failure, Message};
use crate::routes::schema;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(verify_email))
}

/// The key account tokens are derived with, from the access tokens' secret.
pub fn token_key(state: &AppState) -> AccountTokenKey {
    AccountTokenKey::derive(&state.config.jwt_secret)
}

/// The email verification asked for when `account` registers. One per account:
/// its request id comes from the account's, so a retried registration asks for
/// the same token.
pub fn registration_verification(state: &AppState, account: UserId) -> TokenRequest {
    let request_id = Uuid::new_v5(&account.as_uuid(), b"email-verification");
    TokenRequest::new(&token_key(state), TokenPurpose::EmailVerification, account, request_id)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(schema_with = schema::email)]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordResetConfirmation {
    /// The token from the password reset email.
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
    /// The new password: 8 to 128 characters, with a letter and a digit or symbol.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the verification email sent at registration.
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

/// Emails a password reset token (single use, valid 30 minutes) to the address
/// if it has an account. The answer is the same 202, as fast, either way: it
/// does not tell which addresses have accounts.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "accepted; an email follows if the address has an account", body = Message),
        (status = 400, description = "a malformed body or email", body = Failure),
        (status = 429, description = "too many requests from this client or for this address; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn request_password_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(body.email)?;
    let now = Instant::now();
    let limit = &state.limits.password_resets_per_address;
    if let Err(wait) = limit.check(&email.as_str().to_owned(), now) {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    limit.record(email.as_str().to_owned(), now);

    // The same work on both paths: one lookup, one token derived. The command is
    // sent after the answer, so its time does not show either.
    let found = queries::users::by_email(&state.db, email.as_str()).await?;
    let account = found.as_ref().map_or_else(UserId::new_random, |user| user.id);
    let request = TokenRequest::new(&token_key(&state), TokenPurpose::PasswordReset, account, Uuid::new_v4());
    let ttl = TimeDelta::from_std(state.config.password_reset_ttl).unwrap_or(TimeDelta::minutes(30));
    let command = AccountCommand::RequestPasswordReset { request, expires_at: Utc::now() + ttl };
    let metadata = acting(account, request_id(&headers).as_deref());
    if found.is_some() {
        let state = state.clone();
        tokio::spawn(async move {
            match state.accounts.execute(&account.to_string(), command, metadata).await {
                Ok(_) => tracing::info!(user = %account, "password reset requested"),
                Err(error) => tracing::warn!(user = %account, %error, "a password reset request was not stored"),
            }
        });
    }
    let body = json!({ "success": true, "message": "If the address has an account, a reset email is on its way" });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Sets a new password with a reset token, and revokes every session of the
/// account: its refresh tokens, its access tokens and its open sockets.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 200, description = "the password is set; every session was revoked", body = Message),
        (status = 400, description = "an unknown, used or expired token, a weak password or a malformed body", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
        (status = 503, description = "password hashing is busy; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn confirm_password_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasswordResetConfirmation>,
) -> Result<Response, ApiError> {
    let token = AccountToken::parse(&body.token).map_err(|_| invalid_token())?;
    let password = Password::parse_for_account(body.password)?;
    let account = token.account();
    let request = request_id(&headers);
    let command = AccountCommand::ResetPassword { token: token.hash(), new: password, now: Utc::now() };
    let metadata = acting(account, request.as_deref());
    state.write(&state.accounts, &account.to_string(), command, metadata).await.map_err(token_refused)?;
    revoke_sessions(&state, account, request.as_deref()).await?;
    tracing::info!(user = %account, "password reset; every session revoked");
    Ok(response::message("Password reset; log in with the new password"))
}

/// Revokes every session of `account` the read model knows as active, each as
/// a command of its own (its own command id).
async fn revoke_sessions(state: &AppState, account: UserId, request_id: Option<&str>) -> Result<(), ApiError> {
    for session in queries::sessions::active_of_user(&state.db, account, Utc::now()).await? {
        let revoke = SessionCommand::Revoke { reason: RevokeReason::PasswordReset };
        state.write(&state.sessions, &session.to_string(), revoke, acting(account, request_id)).await?;
        state.session_cache.forget(session);
    }
    Ok(())
}

/// Marks the account's address as verified with the token emailed at registration.
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "the address is verified (also when it already was)", body = Message),
        (status = 400, description = "an unknown token or a malformed body", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<Response, ApiError> {
    let token = AccountToken::parse(&body.token).map_err(|_| invalid_token())?;
    let account = token.account();
    let command = AccountCommand::VerifyEmail { token: token.hash() };
    let metadata = acting(account, request_id(&headers).as_deref());
    state.write(&state.accounts, &account.to_string(), command, metadata).await.map_err(token_refused)?;
    Ok(response::message("Email verified"))
}

fn acting(account: UserId, request_id: Option<&str>) -> CommandMetadata {
    with_request_id(CommandMetadata::by(account.to_string()), request_id)
}

fn invalid_token() -> ApiError {
    ApiError::bad_request("invalid_token", AccountError::InvalidToken.to_string())
}

/// A token naming no account is as unknown as any other: 400, not 404.
fn token_refused(error: ApiError) -> ApiError {
    if error.code == "user_not_found" { invalid_token() } else { error }
}
