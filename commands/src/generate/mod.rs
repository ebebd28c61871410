//! A deterministic, realistic history of rooms, generated through the command
//! path (`rapat events generate`), for analytics replays, tests and benchmarks.
//!
//! [`plan_history`] is pure: a seeded plan of room commands, each with its
//! simulated time and a deterministic command id. [`run_plan`] runs it through a
//! [`CommandBus`](crate::CommandBus) like any other command, so the room
//! aggregate decides every event and each append carries its expected sequence
//! and message id. Events are stamped with the simulated time, not the time of
//! writing (see [`CommandMetadata::simulated_at`](crate::CommandMetadata)), and
//! their ids derive from the command id: the same [`HistoryConfig`] always gives
//! the same events, ids included.

mod plan;
mod run;

pub use plan::{HistoryConfig, HistoryPlan, PlannedCommand, plan_history};
pub use run::{MAX_WINDOW, RunError, RunReport, run_plan};
