//! Running a planned history through the command bus.
//!
//! Each room's commands run one after another on a task of its own, so the room
//! aggregate sees them in plan order; rooms run side by side, which keeps many
//! appends in flight. The plan is read in time order and at most `window`
//! commands are handed out and not yet done, so the stream holds the history
//! roughly in time order and memory stays bounded however long the history is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rapat_domain::ids::RoomId;
use rapat_domain::room::{Room, RoomError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::plan::PlannedCommand;
use crate::bus::CommandBus;
use crate::error::CommandError;

/// Most commands handed out and not yet done.
pub const MAX_WINDOW: usize = 1000;

/// What [`run_plan`] did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub commands: u64,
    /// Events appended (a rejoin of someone the host muted appends two).
    pub events: u64,
    /// Highest stream sequence written (0 if none).
    pub last_sequence: u64,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.events as f64 / seconds } else { 0.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A command failed; in a fresh namespace none is refused, so this is an
    /// outage, or the history was already generated into this event store.
    #[error("room {room}: command {command_id} of {at}: {error}")]
    Command { room: RoomId, command_id: Uuid, at: DateTime<Utc>, error: CommandError<RoomError> },
    /// A room's task ended without reporting (it panicked).
    #[error("a room's task failed: {0}")]
    Task(String),
}

/// Counts shared by the room tasks.
#[derive(Default)]
struct Tally {
    commands: AtomicU64,
    events: AtomicU64,
    last_sequence: AtomicU64,
}

/// Runs `plan` through `bus` and stops at the first command that fails.
/// `progress` is called with the number of commands done now and then.
pub async fn run_plan(
    bus: Arc<CommandBus<Room>>,
    plan: impl IntoIterator<Item = PlannedCommand>,
    window: usize,
    mut progress: impl FnMut(u64),
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let window = window.clamp(1, MAX_WINDOW);
    let slots = Arc::new(Semaphore::new(window));
    let tally = Arc::new(Tally::default());
    let mut rooms: HashMap<RoomId, mpsc::UnboundedSender<(PlannedCommand, OwnedSemaphorePermit)>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut handed_out = 0u64;
    for planned in plan {
        // A room's task ends early only at an error: stop handing out work.
        if let Some(finished) = tasks.try_join_next() {
            settle(finished)?;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let room = planned.room;
        let sender = rooms.entry(room).or_insert_with(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tasks.spawn(run_room(bus.clone(), receiver, tally.clone()));
            sender
        });
        // A closed channel means the room's task stopped at an error, reported below.
        if sender.send((planned, slot)).is_err() {
            break;
        }
        handed_out += 1;
        if handed_out.is_multiple_of(window as u64) {
            progress(tally.commands.load(Ordering::Relaxed));
        }
    }
    // Closing the channels lets each room's task finish its queue and end.
    drop(rooms);
    while let Some(finished) = tasks.join_next().await {
        settle(finished)?;
    }
    let commands = tally.commands.load(Ordering::Relaxed);
    progress(commands);
    Ok(RunReport {
        commands,
        events: tally.events.load(Ordering::Relaxed),
        last_sequence: tally.last_sequence.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// What a finished room task says.
fn settle(finished: Result<Result<(), RunError>, tokio::task::JoinError>) -> Result<(), RunError> {
    finished.map_err(|error| RunError::Task(error.to_string()))?
}

/// Runs one room's commands in the order they arrive.
async fn run_room(
    bus: Arc<CommandBus<Room>>,
    mut commands: mpsc::UnboundedReceiver<(PlannedCommand, OwnedSemaphorePermit)>,
    tally: Arc<Tally>,
) -> Result<(), RunError> {
    while let Some((planned, _slot)) = commands.recv().await {
        let (room, command_id, at) = (planned.room, planned.metadata.command_id, planned.at());
        let outcome = bus
            .execute(&room.to_string(), planned.command, planned.metadata)
            .await
            .map_err(|error| RunError::Command { room, command_id, at, error })?;
        tally.commands.fetch_add(1, Ordering::Relaxed);
        tally.events.fetch_add(outcome.events.len() as u64, Ordering::Relaxed);
        tally.last_sequence.fetch_max(outcome.stream_sequence, Ordering::Relaxed);
    }
    Ok(())
}
