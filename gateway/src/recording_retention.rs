//! Recording retention (SPEC §10, `RAPAT_RECORDINGS_RETENTION_DAYS`): deletes the
//! files of track recordings older than the setting and records each deletion on
//! its room (`TrackRecordingExpired`), which takes it out of the host's list.
//!
//! The file goes first, then the command: a listed recording always has its
//! file, and a loop that stops in between deletes nothing twice (the file is
//! already gone) and sends the command on its next pass. The command's id
//! derives from the track recording (`rapat_commands::recording`), so two
//! processes that race append one event; one loop is active per database anyway
//! (a Postgres advisory lock, as the reminder scheduler does), the others stand
//! by.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rapat_commands::{CommandBus, CommandError, EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::room::{Room, RoomError};
use rapat_domain::services::DomainServices;
use rapat_projections::projector::AdvisoryLock;
use rapat_projections::queries::QueryError;
use rapat_projections::queries::recordings;
use rapat_recording::{RecordingKey, RecordingStore};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::registration::NoPasswords;

const LOCK_NAME: &str = "rapat.recording-retention";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    /// How long a recording is kept, counted from when it started; `None` keeps
    /// every recording (the default).
    pub keep_for: Option<Duration>,
    /// How often the loop looks for expired recordings.
    pub every: Duration,
    /// Most recordings expired in one look.
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { keep_for: None, every: Duration::from_secs(600), batch: 500 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot delete a recording: {0}")]
    Store(String),
    #[error(transparent)]
    Command(#[from] CommandError<RoomError>),
}

pub struct RecordingRetention {
    rooms: CommandBus<Room>,
    db: PgPool,
    store: Arc<dyn RecordingStore>,
    config: RetentionConfig,
}

impl RecordingRetention {
    pub async fn open(
        nats: async_nats::Client,
        event_store: EventStoreConfig,
        db: PgPool,
        store: Arc<dyn RecordingStore>,
        config: RetentionConfig,
    ) -> Result<Self, StoreError> {
        // Expiring a recording hashes no password.
        let services = DomainServices::new(Arc::new(NoPasswords));
        let rooms = CommandBus::new(JetStreamEventStore::open(nats, event_store).await?, services);
        Ok(Self { rooms, db, store, config })
    }

    /// Runs until `shutdown`, also when recordings are kept forever: the process
    /// takes any of its tasks ending as a reason to stop.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(keep_for) = self.config.keep_for else {
            tracing::info!("recordings are kept forever (RAPAT_RECORDINGS_RETENTION_DAYS is not set)");
            shutdown.cancelled().await;
            return;
        };
        let keep_for = chrono::Duration::from_std(keep_for).unwrap_or(chrono::Duration::MAX);
        loop {
            match AdvisoryLock::try_acquire(&self.db, LOCK_NAME).await {
                Ok(Some(lock)) => {
                    if let Err(error) = self.expire_started_before(Utc::now() - keep_for).await {
                        tracing::warn!(%error, "expiring old recordings failed; trying again later");
                    }
                    lock.release().await;
                }
                Ok(None) => tracing::debug!("another process expires recordings"),
                Err(error) => tracing::warn!(%error, "cannot reach the read database for the retention lock"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.every) => {}
            }
        }
    }

    /// Deletes the files of the recordings that started before `cutoff` (at
    /// most a batch; the next pass takes the rest, once the read model shows
    /// these expired) and records each as expired. Returns how many it expired.
    pub async fn expire_started_before(&self, cutoff: DateTime<Utc>) -> Result<usize, RetentionError> {
        let old = recordings::started_before(&self.db, cutoff, self.config.batch).await?;
        let mut expired = 0;
        for recording in old {
            let key = RecordingKey::for_track(recording.room_id, recording.id, recording.codec);
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.delete(&key))
                .await
                .map_err(|error| RetentionError::Store(error.to_string()))?
                .map_err(|error| RetentionError::Store(error.to_string()))?;
            rapat_commands::recording::expire_track_recording(&self.rooms, recording.room_id, recording.id).await?;
            metrics::counter!("rapat_recordings_expired_total").increment(1);
            expired += 1;
        }
        Ok(expired)
    }
}
