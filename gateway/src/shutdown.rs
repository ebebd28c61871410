//! Graceful shutdown of a gateway, in two steps the process drives (SPEC §8).
//!
//! 1. **Draining**: `/readyz` answers 503 (`"state": "draining"`) so load
//!    balancers stop sending, and new requests, WebSocket upgrades included, are
//!    refused with 503 while those already running finish. The listener still
//!    accepts, so that a balancer that has not yet noticed gets an answer rather
//!    than a refused connection.
//! 2. **Stop**: the listener closes, open HTTP connections finish their requests,
//!    and every WebSocket is closed with 1012 (service restart) so its client
//!    reconnects, to another node. `Application::run_until_stopped` returns once
//!    every socket has closed.
//!
//! Stopping implies draining: the draining token is a child of the stop token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

#[derive(Clone)]
pub struct Shutdown {
    draining: CancellationToken,
    stop: CancellationToken,
    /// Open WebSocket sessions: they outlive the HTTP connection they were
    /// upgraded from, so the server waits for them separately.
    sessions: Arc<watch::Sender<usize>>,
}

impl Shutdown {
    /// A gateway that stops when `stop` is cancelled, and drains before that when
    /// `begin_draining` is called.
    pub fn new(stop: CancellationToken) -> Self {
        Self { draining: stop.child_token(), stop, sessions: Arc::new(watch::Sender::new(0)) }
    }

    /// Step 1: refuse new work and report not ready.
    pub fn begin_draining(&self) {
        self.draining.cancel();
    }

    /// Step 2: close the listener and every WebSocket.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Completes when step 2 begins.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Counts a WebSocket session as open until the guard is dropped.
    pub(crate) fn session(&self) -> SessionGuard {
        self.sessions.send_modify(|open| *open += 1);
        SessionGuard(Arc::clone(&self.sessions))
    }

    /// Completes once no WebSocket session is open.
    pub(crate) async fn sessions_closed(&self) {
        let mut open = self.sessions.subscribe();
        let _ = open.wait_for(|open| *open == 0).await;
    }
}

pub(crate) struct SessionGuard(Arc<watch::Sender<usize>>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open = open.saturating_sub(1));
    }
}

/// Middleware: while draining, a new request is answered 503 and its connection
/// closed, so the client's next request opens a connection the load balancer
/// sends elsewhere. Requests that arrived before keep running.
pub async fn refuse_while_draining(State(shutdown): State<Shutdown>, request: Request, next: Next) -> Response {
    if !shutdown.is_draining() {
        return next.run(request).await;
    }
    let mut response = ApiError::shutting_down().into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
