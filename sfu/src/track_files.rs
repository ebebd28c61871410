//! Records each track file the recording thread finished on its room, through
//! the command layer (`RoomCommand::FinishTrackRecording`), so the host can list
//! and download it. The file's id is the command's id: a command retried after
//! an outage whose outcome was unknown is stored once. What is not recorded yet
//! waits on disk (`unrecorded.rs`), across outages and restarts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::room::{Room, RoomCommand};
use rapat_domain::services::{DomainServices, HashingError, PasswordHasher};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::FinishedTrack;
use crate::unrecorded::Unrecorded;

/// The first wait after a failed attempt; each next one doubles, up to [`RETRY_AT_MOST`].
const RETRY_AFTER: Duration = Duration::from_secs(1);
const RETRY_AT_MOST: Duration = Duration::from_secs(30);

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

/// Records the files an earlier process left unrecorded, then each file the
/// recording thread finishes, until that thread has stopped. A file is tried
/// until its room has it (or refuses it for good), however long the event store
/// is away, and its entry in `unrecorded` goes only then.
pub async fn record_finished(
    nats: async_nats::Client,
    events: EventStoreConfig,
    mut finished: UnboundedReceiver<FinishedTrack>,
    unrecorded: Unrecorded,
) {
    let mut rooms: Option<CommandBus<Room>> = None;
    let left_over = unrecorded.pending();
    if !left_over.is_empty() {
        tracing::info!(files = left_over.len(), "recording track files an earlier run left unrecorded");
    }
    for track in left_over {
        record_until_done(&nats, &events, &mut rooms, &track).await;
        forget(&unrecorded, &track);
    }
    while let Some(track) = finished.recv().await {
        record_until_done(&nats, &events, &mut rooms, &track).await;
        forget(&unrecorded, &track);
    }
}

async fn record_until_done(
    nats: &async_nats::Client,
    events: &EventStoreConfig,
    rooms: &mut Option<CommandBus<Room>>,
    track: &FinishedTrack,
) {
    let mut wait = RETRY_AFTER;
    loop {
        if rooms.is_none() {
            match JetStreamEventStore::open(nats.clone(), events.clone()).await {
                Ok(store) => *rooms = Some(CommandBus::new(store, DomainServices::new(Arc::new(NoPasswords)))),
                Err(error) => tracing::warn!(%error, "cannot open the event store to record a track file"),
            }
        }
        if let Some(bus) = rooms.as_ref()
            && record(bus, track).await
        {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_AT_MOST);
    }
}

fn forget(unrecorded: &Unrecorded, track: &FinishedTrack) {
    if let Err(error) = unrecorded.forget(track.recording.id) {
        tracing::warn!(%error, id = %track.recording.id, "cannot remove a recorded track file's entry; it is recorded again (once) at the next start");
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
