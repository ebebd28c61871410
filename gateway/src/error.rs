//! One error type for every handler, rendered as the SPEC's envelope:
//! `{"success": false, "error": {"code": "...", "message": "..."}}`.
//!
//! Domain errors map to statuses here and nowhere else. 5xx answers stay vague to
//! the client; their cause goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapat_commands::{CommandError, StoreError};
use rapat_domain::account::{AccountError, AccountInputError, EmailClaimError};
use rapat_domain::contacts::ContactListError;
use rapat_domain::credentials::PasswordError;
use rapat_domain::inbox::InboxError;
use rapat_domain::invitation::InvitationError;
use rapat_domain::push::{PushError, PushInputError};
use rapat_domain::room::{RoomError, RoomInputError};
use rapat_domain::services::HashingError;
use rapat_domain::session::SessionError;
use rapat_domain::settings::{SettingsError, SettingsInputError};
use rapat_projections::queries::QueryError;
use serde_json::json;

/// The code of a wrong password (account or room), which the room-join throttle counts.
pub const WRONG_PASSWORD: &str = "wrong_password";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; try again later")
        }
    }

    /// A backing service (NATS, Postgres) is down or too slow.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "answering 503");
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "a backing service is unavailable; try again shortly",
            )
        }
    }

    /// A write was handed to NATS and whether it is stored could not be found out
    /// within the request's deadline. It may be stored (now or shortly); sending
    /// the request again with the same `Idempotency-Key` stores it at most once
    /// and answers as the first would have.
    pub fn outcome_unknown(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "answering 503 outcome_unknown");
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                OUTCOME_UNKNOWN,
                "the change may or may not have been stored; retry with the same Idempotency-Key",
            )
        }
    }

    /// Not an error: the write is stored, but the read models did not show it
    /// within the request's deadline (202, a success envelope). It shows shortly;
    /// a retry with the same `Idempotency-Key` is not stored again.
    pub fn stored_not_visible() -> Self {
        Self::new(
            StatusCode::ACCEPTED,
            STORED_NOT_VISIBLE,
            "the change is stored but not yet visible in queries; it shows shortly",
        )
    }

    /// A stored write whose read model says it applied it, but whose row (`what`)
    /// is not there. That happens for a moment after the event stream lost its
    /// tail (NATS stopped before its disk had the last writes): the checkpoint is
    /// ahead of the stream until the projector finds that and rebuilds
    /// (`projector/stream_check.rs`), and a write's wait trusts it meanwhile. The
    /// write is stored and shows after the rebuild, so the answer is
    /// `stored_not_visible`, not a refusal or a 500.
    pub fn stored_but_missing(what: impl std::fmt::Display) -> Self {
        tracing::warn!(%what, "a stored write is missing from the read model that claims it; answering 202");
        Self::stored_not_visible()
    }

    /// This process is shutting down (SPEC §8): another node will answer.
    pub fn shutting_down() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the server is shutting down; try again",
            )
        }
    }

    /// The server is at a limit of its own (every password hashing worker taken
    /// for as long as a request may wait, or every connection slot used).
    pub fn busy(what: &str) -> Self {
        Self {
            retry_after: Some(2),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is busy ({what}); try again shortly"),
            )
        }
    }

    /// The client took longer than allowed to send its request.
    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request was not received in time")
    }

    /// A bug or an unexpected failure: logged in full, answered vaguely.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "answering 500");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on our side")
    }
}

/// The code of a write whose fate could not be found out in time (503).
pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
/// The code of a write stored but not yet visible to queries (202).
pub const STORED_NOT_VISIBLE: &str = "stored_not_visible";
/// The code of a backing service down.
pub const UNAVAILABLE: &str = "service_unavailable";

/// Marks a response as an `unavailable` answer, so the request's deadline layer
/// (`deadline.rs`) can correct it when the request's write was stored or sent.
#[derive(Clone, Copy, Debug)]
pub struct AnsweredUnavailable;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.status.is_success() {
            json!({ "success": true, "code": self.code, "message": self.message })
        } else {
            json!({ "success": false, "error": { "code": self.code, "message": self.message } })
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == UNAVAILABLE {
            response.extensions_mut().insert(AnsweredUnavailable);
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How each domain's refusals read over HTTP.
pub trait DomainRejection: std::error::Error {
    fn to_api_error(&self) -> ApiError;
}

impl<E: DomainRejection> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(rejection) => rejection.to_api_error(),
            CommandError::Conflict { .. } => {
                ApiError::conflict("concurrent_change", "the resource changed concurrently; try again")
            }
            CommandError::Store(StoreError::Unavailable { reason }) => ApiError::unavailable(reason),
            CommandError::Store(StoreError::OutcomeUnknown { reason }) => ApiError::outcome_unknown(reason),
            CommandError::Store(other) => ApiError::internal(other),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        if error.is_unavailable() { ApiError::unavailable(error) } else { ApiError::internal(error) }
    }
}

impl DomainRejection for RoomError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            RoomError::AlreadyExists => ApiError::conflict("room_exists", message),
            RoomError::NotFound => ApiError::not_found("room_not_found", message),
            RoomError::Ended => ApiError::conflict("room_ended", message),
            RoomError::NotHost => ApiError::forbidden("not_host", message),
            RoomError::WrongPassword => ApiError::forbidden(WRONG_PASSWORD, message),
            RoomError::Full => ApiError::conflict("room_full", message),
            RoomError::NotAParticipant => ApiError::not_found("not_a_participant", message),
            RoomError::CannotRemoveHost => ApiError::bad_request("cannot_remove_host", message),
            RoomError::MaxUsersBelowParticipants => ApiError::conflict("max_users_below_participants", message),
            RoomError::MutedByHost => ApiError::forbidden("muted_by_host", message),
            RoomError::AlreadyStarted => ApiError::conflict("room_already_started", message),
            RoomError::NotScheduled => ApiError::bad_request("room_not_scheduled", message),
            RoomError::StaleSchedule => ApiError::conflict("stale_schedule", message),
            RoomError::AlreadyRecording => ApiError::conflict("already_recording", message),
            RoomError::NotRecording => ApiError::conflict("not_recording", message),
            RoomError::Hashing(error) => error.clone().into(),
        }
    }
}

impl DomainRejection for AccountError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            AccountError::AlreadyRegistered => ApiError::conflict("email_taken", message),
            AccountError::NotFound => ApiError::not_found("user_not_found", message),
            AccountError::WrongPassword => ApiError::forbidden(WRONG_PASSWORD, message),
            // The registration manager gave up on a registration this slow and
            // releases the address. A refusal for good, not `service_unavailable`:
            // the account this request (and its Idempotency-Key) names can never
            // be registered, and an "unavailable" after the claim was stored would
            // read as "stored, not visible yet" (`deadline.rs`).
            AccountError::RegistrationAbandoned => ApiError::conflict(
                "registration_abandoned",
                "the registration took too long and was undone; register again (with a new Idempotency-Key)",
            ),
            AccountError::InvalidToken => ApiError::bad_request("invalid_token", message),
            AccountError::TokenExpired => ApiError::bad_request("token_expired", message),
            AccountError::Hashing(error) => error.clone().into(),
        }
    }
}

impl DomainRejection for EmailClaimError {
    fn to_api_error(&self) -> ApiError {
        match self {
            EmailClaimError::EmailTaken => {
                ApiError::conflict("email_taken", "an account with this email already exists")
            }
            EmailClaimError::NotClaimedBy => ApiError::internal("confirming an email claim held by another account"),
            EmailClaimError::AlreadyConfirmed => ApiError::internal("releasing an email claim that is confirmed"),
        }
    }
}

impl DomainRejection for ContactListError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            ContactListError::CannotAddSelf => ApiError::bad_request("cannot_add_self", message),
            ContactListError::AlreadyAContact => ApiError::conflict("already_a_contact", message),
            ContactListError::NotAContact => ApiError::not_found("not_a_contact", message),
            ContactListError::OwnerMismatch => ApiError::internal(message),
        }
    }
}

impl DomainRejection for InvitationError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            InvitationError::CannotInviteYourself => ApiError::bad_request("cannot_invite_self", message),
            InvitationError::NotFound => ApiError::not_found("invitation_not_found", message),
            InvitationError::NotTheInvitee | InvitationError::BoundToAnotherAccount => {
                ApiError::forbidden("not_the_invitee", message)
            }
            InvitationError::NotTheHost => ApiError::forbidden("not_host", message),
            InvitationError::Revoked => ApiError::conflict("invitation_revoked", message),
            InvitationError::Mismatch => ApiError::internal(message),
        }
    }
}

impl DomainRejection for InboxError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            InboxError::NothingToMark => ApiError::bad_request("invalid_request", message),
            InboxError::OwnerMismatch => ApiError::internal(message),
        }
    }
}

impl DomainRejection for PushError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            PushError::TooManySubscriptions { .. } => ApiError::conflict("too_many_subscriptions", message),
            PushError::UnknownSubscription => ApiError::not_found("subscription_not_found", message),
            PushError::OwnerMismatch => ApiError::internal(message),
        }
    }
}

impl From<PushInputError> for ApiError {
    fn from(error: PushInputError) -> Self {
        ApiError::bad_request("invalid_subscription", error.to_string())
    }
}

impl DomainRejection for SettingsError {
    fn to_api_error(&self) -> ApiError {
        match self {
            SettingsError::OwnerMismatch => ApiError::internal(self),
        }
    }
}

impl From<SettingsInputError> for ApiError {
    fn from(error: SettingsInputError) -> Self {
        ApiError::bad_request("invalid_input", error.to_string())
    }
}

impl DomainRejection for SessionError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            // A login retried with its Idempotency-Key after its session moved on
            // (refreshed or revoked): the first answer cannot be given again.
            SessionError::AlreadyStarted => ApiError::conflict(
                "login_already_answered",
                "this Idempotency-Key's login was answered and its session has changed since; log in again with a new key",
            ),
            SessionError::NotFound | SessionError::UnknownRefreshToken => {
                ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid")
            }
            SessionError::Revoked => ApiError::unauthorized("session_revoked", message),
            SessionError::Expired => ApiError::unauthorized("refresh_token_expired", message),
        }
    }
}

impl From<HashingError> for ApiError {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy => ApiError::busy("password checks"),
            HashingError::Failed(_) => ApiError::internal(error),
        }
    }
}

impl From<RoomInputError> for ApiError {
    fn from(error: RoomInputError) -> Self {
        ApiError::bad_request("invalid_input", error.to_string())
    }
}

impl From<AccountInputError> for ApiError {
    fn from(error: AccountInputError) -> Self {
        match error {
            AccountInputError::AvatarTooLarge { .. } => ApiError::too_large("avatar_too_large", error.to_string()),
            other => ApiError::bad_request("invalid_input", other.to_string()),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(error: PasswordError) -> Self {
        ApiError::bad_request("invalid_password", error.to_string())
    }
}
