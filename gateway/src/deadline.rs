//! One deadline per request (`RAPAT_REQUEST_DEADLINE_MS`) across all its steps,
//! and the last word on what a late or failed request's answer says.
//!
//! The write path cuts each of its waits (load, publish, settle, read models) to
//! what is left of the budget and answers itself; this layer is the backstop for
//! everything else (a query stuck on Postgres, a pool with no free connection),
//! and corrects an `unavailable` answer given after the request's last write was
//! stored (202 `stored_not_visible`) or sent without settling (503
//! `outcome_unknown`): `unavailable` always means "not applied". A keyed write
//! (`Idempotency-Key`) that fails before storing anything is not `unavailable`
//! either but `outcome_unknown`: an earlier attempt with the same key may have
//! been stored, and only a retry with the key can tell.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rapat_commands::deadline::{self, RequestBudget, WriteState};

use crate::error::{AnsweredUnavailable, ApiError};

/// Time after the deadline for the handler's own answer, which says more than
/// this layer's, to come out first.
const GRACE: Duration = Duration::from_millis(250);

pub async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let budget = RequestBudget::new(limit);
    let keyed = request.method() != axum::http::Method::GET && request.headers().contains_key("idempotency-key");
    let answer = tokio::time::timeout(limit + GRACE, deadline::scope(budget.clone(), next.run(request))).await;
    let last_write = budget.last_write();
    match answer {
        Ok(response) if response.extensions().get::<AnsweredUnavailable>().is_none() => response,
        Ok(response) => match last_write {
            WriteState::None if keyed => {
                ApiError::outcome_unknown("an earlier attempt with this Idempotency-Key may have been stored")
                    .into_response()
            }
            WriteState::None => response,
            WriteState::Stored => ApiError::stored_not_visible().into_response(),
            WriteState::Unsettled => {
                ApiError::outcome_unknown("a later step failed while a write was unsettled").into_response()
            }
        },
        Err(_) => match last_write {
            WriteState::None if keyed => ApiError::outcome_unknown(
                "the request deadline passed; an earlier attempt with this Idempotency-Key may have been stored",
            )
            .into_response(),
            WriteState::None => {
                ApiError::unavailable(format!("no answer within the request deadline of {limit:?}")).into_response()
            }
            WriteState::Stored => ApiError::stored_not_visible().into_response(),
            WriteState::Unsettled => {
                ApiError::outcome_unknown("the request deadline passed while a write was unsettled").into_response()
            }
        },
    }
}
