//! Projections: durable JetStream consumers that build the Postgres read models the
//! REST API queries, and the query functions themselves.
//!
//! - [`db::connect`] creates the read database when missing and migrates it.
//! - [`projector::run_projection`] / [`projector::run_all`] keep the read models up to
//!   date. Postgres holds each projection's stream position, written in the same
//!   transaction as the read-model change; one instance per projection is active
//!   across processes (a Postgres advisory lock), the others wait as standbys.
//! - [`rebuild::rebuild`] replays the stream into fresh tables and swaps them in.
//! - [`positions::ProjectionPositions`] lets a writer wait until its events are
//!   visible (read-your-writes).
//! - [`queries`] are the reads REST runs.
//! - [`listen::ChangeListener`] wakes a background loop when a projection changed its table.
//! - [`outbox`] records, exactly once, the emails and pushes a projection owes.
//! - [`redaction`] hides secrets in the copies of events made for people to read.

pub mod calendar;
pub mod db;
pub mod export;
pub mod listen;
mod models;
pub mod outbox;
pub mod positions;
pub mod projector;
pub mod queries;
pub mod rebuild;
pub mod redaction;
mod sql;

pub use db::{ReadDbError, connect};
pub use models::{WEBHOOK_DELIVERIES_CHANNEL, webhook_body, webhook_delivery_id};
pub use positions::{ProjectionPositions, WaitTimeout};
pub use projector::{Projection, ProjectorConfig, ProjectorError, run_all, run_projection};
pub use rebuild::{RebuildError, RebuildProgress, RebuildReport, rebuild};
