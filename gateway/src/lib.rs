//! The gateway: rapat's HTTP edge. REST `/api/v1` (axum), with the write side
//! behind it for commands and the Postgres read models for queries, and WebSocket
//! signaling (`/ws`). The browser client's files join it later.
//!
//! Only this crate knows the REST wire shapes; it never loads an aggregate to
//! answer a query.

mod app;
mod auth;
mod chat;
mod client_addr;
mod config;
mod deadline;
mod error;
mod extract;
mod idempotency;
mod limits;
mod metrics;
mod presence;
mod recording_retention;
mod registration;
mod reminders;
mod response;
mod routes;
mod serve;
mod session_cache;
mod shutdown;
mod state;
mod tokens;
mod turn;
mod web;
mod write;
mod ws;

pub use app::{Application, Backends, StartError, router};
pub use config::{GatewayConfig, HttpLimits, IceServer, JoinFailureLimits, RateLimit, WsRateLimits};
pub use error::ApiError;
pub use rapat_commands::HashingLimits;
pub use rapat_commands::registration::{PendingClaim, Settled, settle};
pub use recording_retention::{RecordingRetention, RetentionConfig, RetentionError};
pub use registration::{RegistrationConfig, RegistrationManager};
pub use reminders::{ReminderConfig, ReminderScheduler};
pub use shutdown::Shutdown;
pub use turn::TurnConfig;
pub use ws::CONNECTION_HEADER;
