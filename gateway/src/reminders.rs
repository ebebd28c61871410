//! The reminder scheduler: fires the reminder timers that came due (SPEC §6).
//!
//! The timers are durable: the notifications projection keeps them in
//! `reminder_timers`, one per room schedule and recipient, from the room,
//! invitation and settings events. The scheduler reads the due ones and runs
//! `RoomCommand::FireReminder` for each; the room aggregate records
//! `MeetingReminderDue` at most once per schedule and recipient and refuses a
//! moved or cancelled schedule, and the command id is derived from the timer, so
//! a scheduler that crashes and fires again, or two that race, append one event.
//! The projection then turns that event into the notification and drops the
//! timer. A timer found past due by more than `late_after` (every process was
//! down at its moment) fires with `late: true`.
//!
//! One scheduler is active per database (a Postgres advisory lock); the others
//! stand by and take over within `poll_every`. It sleeps until the next timer
//! is due, and wakes early when the projection changes the timers (NOTIFY).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapat_commands::{CommandBus, CommandError, CommandMetadata, EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::room::{Room, RoomCommand, RoomError};
use rapat_domain::services::DomainServices;
use rapat_projections::listen::ChangeListener;
use rapat_projections::projector::AdvisoryLock;
use rapat_projections::queries::QueryError;
use rapat_projections::queries::reminders::{self, DueTimer, TIMERS_CHANGED_CHANNEL};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::registration::NoPasswords;

/// The advisory lock that makes one scheduler active per database.
const LOCK_NAME: &str = "rapat.reminders";

/// Fixed forever: the command ids of fired reminders derive from it.
const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5c0f_2a71_8e44_4b9d_93d1_6f0a_2b7e_c431);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReminderConfig {
    /// A timer fired later than this after its moment is marked `late`.
    pub late_after: Duration,
    /// The longest sleep between looks at the timers, and how often a standby
    /// tries to take over.
    pub poll_every: Duration,
    /// Most timers read in one pass.
    pub batch: u32,
    /// Most reminders fired at once.
    pub in_flight: usize,
}

impl Default for ReminderConfig {
    fn default() -> Self {
        Self { late_after: Duration::from_secs(60), poll_every: Duration::from_secs(5), batch: 1000, in_flight: 64 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Command(#[from] CommandError<RoomError>),
}

/// Fires due reminder timers; see the module's documentation.
pub struct ReminderScheduler {
    rooms: CommandBus<Room>,
    db: PgPool,
    config: ReminderConfig,
}

/// A timer fired in this process a moment ago, whose row the projection has not
/// dropped yet: not fired again until `REFIRE_AFTER` (firing again would be
/// harmless, only wasted).
const REFIRE_AFTER: Duration = Duration::from_secs(30);

impl ReminderScheduler {
    pub async fn open(
        nats: async_nats::Client,
        event_store: EventStoreConfig,
        db: PgPool,
        config: ReminderConfig,
    ) -> Result<Self, StoreError> {
        // Firing a reminder hashes no password.
        let services = DomainServices::new(Arc::new(NoPasswords));
        let rooms = CommandBus::new(JetStreamEventStore::open(nats, event_store).await?, services);
        Ok(Self { rooms, db, config })
    }

    /// Runs until `shutdown`: as the active scheduler while it holds the lock, as a
    /// standby otherwise. Outages are logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut standing_by = false;
        loop {
            match AdvisoryLock::try_acquire(&self.db, LOCK_NAME).await {
                Ok(Some(lock)) => {
                    tracing::info!("active reminder scheduler");
                    standing_by = false;
                    self.run_locked(lock, &shutdown).await;
                }
                Ok(None) if !standing_by => {
                    tracing::info!("another reminder scheduler is active; standing by");
                    standing_by = true;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the read database for the reminder scheduler's lock")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.poll_every) => {}
            }
        }
    }

    async fn run_locked(&self, mut lock: AdvisoryLock, shutdown: &CancellationToken) {
        let mut listener = ChangeListener::connect(&self.db, TIMERS_CHANGED_CHANNEL).await;
        let mut recently_fired = HashMap::new();
        loop {
            let wait = match self.fire_due(&mut recently_fired).await {
                Ok(()) => self.until_next_due().await,
                Err(error) => {
                    tracing::warn!(%error, "firing reminders failed; trying again");
                    self.config.poll_every
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    lock.release().await;
                    return;
                }
                () = tokio::time::sleep(wait) => {}
                () = listener.changed() => {}
            }
            if !lock.still_held().await {
                tracing::warn!("lost the reminder scheduler's lock; standing by");
                return;
            }
        }
    }

    /// How long to sleep: until the next timer is due, at most `poll_every`.
    async fn until_next_due(&self) -> Duration {
        let now = Utc::now();
        match reminders::next_due_after(&self.db, now).await {
            Ok(Some(next)) => (next - now).to_std().unwrap_or_default().min(self.config.poll_every),
            Ok(None) => self.config.poll_every,
            Err(error) => {
                tracing::warn!(%error, "cannot read the next reminder timer");
                self.config.poll_every
            }
        }
    }

    /// Fires every timer due now (a batch at a time), except those this process
    /// fired a moment ago. Stops at the first outage.
    async fn fire_due(&self, recently_fired: &mut HashMap<DueTimer, Instant>) -> Result<(), FireError> {
        recently_fired.retain(|_, fired| fired.elapsed() < REFIRE_AFTER);
        loop {
            let now = Utc::now();
            let due = reminders::due(&self.db, now, self.config.batch).await?;
            let read = due.len();
            let to_fire: Vec<DueTimer> = due.into_iter().filter(|timer| !recently_fired.contains_key(timer)).collect();
            if to_fire.is_empty() {
                return Ok(());
            }
            let outcomes: Vec<(DueTimer, Result<(), FireError>)> = futures::stream::iter(to_fire)
                .map(|timer| async move {
                    let outcome = self.fire(&timer, now).await;
                    (timer, outcome)
                })
                .buffer_unordered(self.config.in_flight)
                .collect()
                .await;
            for (timer, outcome) in outcomes {
                match outcome {
                    Ok(()) => {}
                    Err(FireError::Command(error)) if error.is_unavailable() || error.is_outcome_unknown() => {
                        return Err(error.into());
                    }
                    Err(error) => {
                        tracing::warn!(room = %timer.room_id, recipient = %timer.recipient_id, %error, "cannot fire a reminder")
                    }
                }
                recently_fired.insert(timer, Instant::now());
            }
            if read < self.config.batch as usize {
                return Ok(());
            }
        }
    }

    /// Fires one timer. A schedule that moved, a cancelled or ended room: the
    /// timer is stale, and the projection drops it when it applies that change.
    pub async fn fire(&self, timer: &DueTimer, now: DateTime<Utc>) -> Result<(), FireError> {
        let late_after = chrono::Duration::from_std(self.config.late_after).unwrap_or(chrono::Duration::MAX);
        let late = now - timer.due_at > late_after;
        let Ok(schedule_sequence) = u32::try_from(timer.schedule_sequence) else {
            return Ok(());
        };
        let command =
            RoomCommand::FireReminder { recipient: timer.recipient_id, schedule_sequence, due_at: timer.due_at, late };
        let key = format!("{}/{}/{}", timer.room_id, schedule_sequence, timer.recipient_id);
        let metadata = CommandMetadata::system().with_command_id(Uuid::new_v5(&COMMAND_ID_NAMESPACE, key.as_bytes()));
        match self.rooms.execute(&timer.room_id.to_string(), command, metadata).await {
            Ok(outcome) => {
                if !outcome.events.is_empty() {
                    let lateness = (now - timer.due_at).to_std().unwrap_or_default();
                    metrics::histogram!("rapat_reminder_lateness_seconds").record(lateness.as_secs_f64());
                    metrics::counter!("rapat_reminders_fired_total", "late" => if late { "true" } else { "false" })
                        .increment(1);
                }
                Ok(())
            }
            Err(CommandError::Rejected(
                RoomError::StaleSchedule | RoomError::Ended | RoomError::NotScheduled | RoomError::NotFound,
            )) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
