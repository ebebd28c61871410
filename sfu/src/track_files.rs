//! Records each track file the recording thread finished on its room, through
//! the command layer (`RoomCommand::FinishTrackRecording`), so the host can list
//! and download it. The file's id is the command's id: a command retried after
//! an outage whose outcome was unknown is stored once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::room::{Room, RoomCommand};
use rapat_domain::services::{DomainServices, HashingError, PasswordHasher};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::FinishedTrack;

/// Attempts for one file's command while the event store is unreachable.
const ATTEMPTS: u32 = 10;
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Finishing a recording hashes no password.
struct NoPasswords;

#[async_trait]
impl PasswordHasher for NoPasswords {
    async fn hash(&self, _: &Password) -> Result<PasswordHash, HashingError> {
        Err(HashingError::Failed("the SFU hashes no passwords".into()))
    }

    async fn verify(&self, _: &Password, _: &PasswordHash) -> Result<bool, HashingError> {
        Err(HashingError::Failed("the SFU checks no passwords".into()))
    }
}

/// Runs until the SFU's recording thread has stopped and every file is recorded.
pub async fn record_finished(
    nats: async_nats::Client,
    events: EventStoreConfig,
    mut finished: UnboundedReceiver<FinishedTrack>,
) {
    let mut rooms: Option<CommandBus<Room>> = None;
    while let Some(track) = finished.recv().await {
        for attempt in 1..=ATTEMPTS {
            if rooms.is_none() {
                match JetStreamEventStore::open(nats.clone(), events.clone()).await {
                    Ok(store) => rooms = Some(CommandBus::new(store, DomainServices::new(Arc::new(NoPasswords)))),
                    Err(error) => tracing::warn!(%error, "cannot open the event store to record a track file"),
                }
            }
            if let Some(bus) = &rooms
                && record(bus, &track).await
            {
                break;
            }
            if attempt == ATTEMPTS {
                tracing::error!(room = %track.room, id = %track.recording.id, "a recorded track file could not be recorded on its room");
            } else {
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// `true` when done with this file (recorded, or refused for good).
async fn record(bus: &CommandBus<Room>, track: &FinishedTrack) -> bool {
    let metadata = CommandMetadata::system().with_command_id(track.recording.id.as_uuid());
    let command = RoomCommand::FinishTrackRecording { recording: track.recording.clone() };
    match bus.execute(&track.room.to_string(), command, metadata).await {
        Ok(_) => {
            tracing::info!(room = %track.room, id = %track.recording.id, "track recording recorded on its room");
            true
        }
        Err(error) if error.is_unavailable() || error.is_outcome_unknown() => {
            tracing::warn!(%error, room = %track.room, "recording a track file on its room failed; retrying");
            false
        }
        Err(error) => {
            tracing::warn!(%error, room = %track.room, id = %track.recording.id, "the room refused a track file");
            true
        }
    }
}
