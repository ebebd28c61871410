//! `/auth`: registration, login, token refresh and logout.
//!
//! A login starts a `Session` aggregate (one refresh-token family); refreshing
//! rotates its refresh token and logging out revokes it. Access tokens name their
//! session, and every authenticated request checks it (see `crate::auth`), so a
//! revoked session stops its access tokens at once.

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use chrono::Utc;
use cqrs_es::Aggregate as _;
use rapat_commands::CommandMetadata;
use rapat_commands::registration::{self, Registration, RegistrationCommands, RegistrationError};
use rapat_domain::account::{Account, Email, EmailClaim, PersonName};
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::ids::UserId;
use rapat_domain::session::{RefreshToken, RevokeReason, SessionCommand, SessionEvent};
use rapat_projections::queries::{self, UserRow};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{bearer_token, request_id, with_client_key, with_request_id};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotency;
use crate::response::{self, Data, Failure, Message};
use crate::routes::schema;
use crate::routes::users::{UserView, written_user};
use crate::state::AppState;

/// An argon2id hash (of a password no account has) with the hasher's parameters.
/// A login for an unknown email is checked against it, so that it costs as much as
/// a wrong password and the answer time does not tell which emails have accounts.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$g1OMWDhWmefsYsbEdvN3Zw$JDBNyVL9/q521LT0XIcyuD+EjdO14xPyA1/jdGXoIOA";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(refresh))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = schema::email)]
    pub email: String,
    /// 8 to 128 characters, with a letter and a digit or symbol.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(schema_with = schema::person_name)]
    pub first_name: String,
    #[schema(schema_with = schema::person_name)]
    pub last_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(schema_with = schema::email)]
    pub email: String,
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub password: String,
}

/// The access token to end; `Authorization: Bearer` is used when absent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogoutRequest {
    pub token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// Also accepted as `token`.
    #[serde(alias = "token")]
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserData {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginData {
    pub user: UserView,
    /// Access token (JWT) for `Authorization: Bearer`.
    pub token: String,
    pub refresh_token: String,
    /// Lifetime of `token` in seconds.
    pub expires_in: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenData {
    pub token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "`data.user` is the new account", body = Data<UserData>),
        (status = 400, description = "bad email, weak password, bad names or a malformed body", body = Failure),
        (status = 409, description = "an account with this email exists (`email_taken`), or this registration took so long that it was undone (`registration_abandoned`: register again, with a new Idempotency-Key)", body = Failure),
        (status = 413, description = "the body is too large", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
        (status = 503, description = "password hashing is busy; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(body.email)?;
    let password = Password::parse_for_account(body.password)?;
    let first_name = PersonName::parse(body.first_name)?;
    let last_name = PersonName::parse(body.last_name)?;
    // Before an account exists, a key is bound to the address it registers; a
    // retry names the account the first attempt created.
    let key = idempotency::bind(&headers, &format!("register:{}", email.as_str()), &Method::POST, "/auth/register")?;
    let user = key.map_or_else(UserId::new_random, |key| UserId::from_uuid(idempotency::derive(key, "user")));
    let request_id = request_id(&headers);

    // An account with this address is already visible: no claim needed to say so.
    if let Some(existing) = queries::users::by_email(&state.db, email.as_str()).await? {
        if key.is_some() && existing.id == user {
            return Ok(response::created(UserData { user: UserView::from(existing) }));
        }
        return Err(ApiError::conflict("email_taken", "an account with this email already exists"));
    }
    // Each command's id comes from the request's key, as `AppState::write` would
    // derive it, so a retry stores nothing twice.
    let claim_id = email.claim_id().to_string();
    let account_id = user.to_string();
    let metadata = |aggregate_type: &str, aggregate_id: &str, variant: &str| {
        let command_id = key.map(|key| idempotency::command_id_of(key, aggregate_type, aggregate_id, variant));
        acting(user, request_id.as_deref(), command_id)
    };
    let commands = RegistrationCommands {
        claim: metadata(EmailClaim::TYPE, &claim_id, "Claim"),
        register: metadata(Account::TYPE, &account_id, "Register"),
        confirm: metadata(EmailClaim::TYPE, &claim_id, "Confirm"),
    };
    let registration_email = email.clone();
    let verification = Some(crate::routes::recovery::registration_verification(&state, user));
    let registration = Registration { account: user, email, password, first_name, last_name, verification };
    let registered =
        registration::register(&state.accounts, &state.emails, registration, commands).await.map_err(|error| {
            match error {
                RegistrationError::Claim(error) => ApiError::from(error),
                RegistrationError::Account(error) => ApiError::from(error),
            }
        })?;
    state.wait_visible(Account::TYPE, registered.account_sequence).await?;
    // Invitations sent to this address before the account existed become the
    // account's. A best effort: answering one binds it too.
    crate::routes::invitations::bind_email_invitations(&state, user, &registration_email).await;

    let row = written_user(&state, user).await?;
    Ok(response::created(UserData { user: UserView::from(row) }))
}

/// Logs in: a new session with an access token and a refresh token. Sent again
/// with the same `Idempotency-Key`, it answers with the same session and
/// refresh token (and a new access token) instead of starting another.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "`data` holds the user and the session's tokens", body = Data<LoginData>),
        (status = 400, description = "a malformed body or email, or a malformed Idempotency-Key", body = Failure),
        (status = 401, description = "wrong email or password (one answer for both)", body = Failure),
        (status = 409, description = "`login_already_answered`: this Idempotency-Key's session was refreshed or ended since; log in with a new key", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
        (status = 503, description = "password checks are busy; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(body.email)?;
    let password = Password::parse_candidate(body.password)?;
    let found = queries::users::by_email(&state.db, email.as_str()).await?;
    let user = check_password(&state, found, &password).await?;

    // With an Idempotency-Key (bound to the user), a retry names the session the
    // first attempt started and gives back its refresh token (derived from the
    // key with the server's secret), instead of starting a second session.
    let key = idempotency::bind(&headers, &user.id.to_string(), &Method::POST, "/auth/login")?;
    let session_id = key.map_or_else(Uuid::new_v4, |key| idempotency::derive(key, "session"));
    let refresh = match key {
        Some(key) => state.tokens.keyed_refresh(session_id, key),
        None => state.tokens.new_refresh(session_id),
    };
    let now = Utc::now();
    let start =
        SessionCommand::Start { user: user.id, refresh: refresh.hash(), expires_at: state.tokens.refresh_expiry(now) };
    let metadata = acting(user.id, request_id(&headers).as_deref(), key);
    state.write(&state.sessions, &session_id.to_string(), start, metadata).await?;

    let (token, expires_in) = state.tokens.issue_access(user.id, session_id, &user.role, now);
    tracing::info!(user = %user.id, session = %session_id, "logged in");
    Ok(response::ok(LoginData { user: UserView::from(user), token, refresh_token: refresh.expose(), expires_in }))
}

/// Logs out: revokes the session, so its access and refresh tokens stop working.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "optional when `Authorization: Bearer` is sent"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "logged out; `message` says so", body = Message),
        (status = 400, description = "a malformed body", body = Failure),
        (status = 401, description = "no token, or one this server did not sign", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<ApiJson<LogoutRequest>>,
) -> Result<Response, ApiError> {
    let from_body = body.and_then(|ApiJson(body)| body.token);
    let token = from_body.as_deref().or_else(|| bearer_token(&headers)).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send the access token in the body or as Authorization: Bearer")
    })?;
    // An expired token still names its session, and a client must always be able
    // to end a session: only the signature is checked.
    let claims = state
        .tokens
        .verify_ignoring_expiry(token)
        .map_err(|error| ApiError::unauthorized("invalid_token", error.to_string()))?;
    let actor = UserId::from_uuid(claims.sub);
    // As for every other request, a token counts only for its own session's user.
    if queries::sessions::by_id(&state.db, claims.sid).await?.is_some_and(|session| session.user_id != actor) {
        tracing::warn!(session = %claims.sid, token_user = %actor, "a logout token names a session of another user");
        return Err(ApiError::unauthorized("invalid_token", "this token does not belong to its session's user"));
    }
    let revoke = SessionCommand::Revoke { reason: RevokeReason::Logout };
    state
        .write(&state.sessions, &claims.sid.to_string(), revoke, acting(actor, request_id(&headers).as_deref(), None))
        .await?;
    state.session_cache.forget(claims.sid);
    tracing::info!(user = %actor, session = %claims.sid, "logged out");
    Ok(response::message("Logged out successfully"))
}

/// Trades a refresh token for a new access token and a new refresh token.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "`data` holds the new tokens; the old refresh token is spent", body = Data<TokenData>),
        (status = 400, description = "a malformed body", body = Failure),
        (status = 401, description = "unknown, expired, revoked or reused refresh token (reuse revokes the session)", body = Failure),
        (status = 429, description = "too many requests from this address; see Retry-After", body = Failure),
    )
)]
#[instrument(skip_all)]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let presented = RefreshToken::parse(&body.refresh_token).map_err(|_| invalid_refresh_token())?;
    let session_id = presented.session_id();
    // The read model names the session's user: the command's actor, and whose
    // role the new access token carries.
    let session = queries::sessions::by_id(&state.db, session_id).await?.ok_or_else(invalid_refresh_token)?;
    let next = state.tokens.new_refresh(session_id);
    let now = Utc::now();
    let command = SessionCommand::Refresh {
        presented: presented.hash(),
        next: next.hash(),
        now,
        expires_at: state.tokens.refresh_expiry(now),
    };
    let metadata = acting(session.user_id, request_id(&headers).as_deref(), None);
    let outcome = state.write(&state.sessions, &session_id.to_string(), command, metadata).await?;

    // Reuse is not a refusal of the command: it succeeds by revoking the family.
    let reused = outcome
        .events
        .iter()
        .any(|event| matches!(event, SessionEvent::SessionRevoked { reason: RevokeReason::RefreshReuse }));
    if reused {
        state.session_cache.forget(session_id);
        tracing::warn!(session = %session_id, user = %session.user_id, "spent refresh token presented; session revoked");
        return Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the session is revoked, log in again",
        ));
    }
    let user = queries::users::by_id(&state.db, session.user_id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("session {session_id} names unknown user {}", session.user_id)))?;
    let (token, expires_in) = state.tokens.issue_access(user.id, session_id, &user.role, now);
    Ok(response::ok(TokenData { token, refresh_token: next.expose(), expires_in }))
}

/// Metadata of a command `user` issues, correlated with the request, with the
/// request's bound `Idempotency-Key` when it is keyed. Login and refresh are not:
/// each answer carries a new secret that a retry could not give back.
fn acting(user: UserId, request_id: Option<&str>, client_key: Option<Uuid>) -> CommandMetadata {
    with_client_key(with_request_id(CommandMetadata::by(user.to_string()), request_id), client_key)
}

/// The user if `password` is theirs. An unknown user costs one argon2id check too.
async fn check_password(state: &AppState, user: Option<UserRow>, password: &Password) -> Result<UserRow, ApiError> {
    let hash = user.as_ref().map_or(DUMMY_HASH, |user| user.password_hash.as_str());
    let matches = state.passwords.verify(password, &PasswordHash::from_phc(hash.to_owned())).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(ApiError::unauthorized("invalid_credentials", "the email or password is wrong")),
    }
}

fn invalid_refresh_token() -> ApiError {
    ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid")
}
