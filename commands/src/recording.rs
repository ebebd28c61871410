//! The commands that record what became of a room's recorded files (SPEC §10),
//! sent by processes rather than by a user: the SFU when it closes a track's file,
//! the retention loop when it removed one. Each command's id derives from the
//! track recording's id, so a process that crashes and says it again, or two that
//! race, append one event (the aggregate also records each at most once).

use rapat_domain::ids::{RoomId, TrackRecordingId};
use rapat_domain::room::{Room, RoomCommand, RoomError, TrackRecording};
use uuid::Uuid;

use crate::{CommandBus, CommandError, CommandMetadata, CommandOutcome};

/// Fixed forever: the ids of stored commands derive from it.
const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x2d7b_9e41_0c5a_4f83_b6e2_71a9_5d30_e8c4);

/// Records on the room that the SFU finished `recording`'s file, which must
/// already be committed to the recording store: the event announces a file a
/// host can download. Accepted after the recording stopped and after the room
/// ended (files close after their last packets); a repeat records nothing.
pub async fn finish_track_recording(
    rooms: &CommandBus<Room>,
    room: RoomId,
    recording: TrackRecording,
) -> Result<CommandOutcome<Room>, CommandError<RoomError>> {
    let metadata = CommandMetadata::system().with_command_id(command_id("finish", recording.id));
    rooms.execute(&room.to_string(), RoomCommand::FinishTrackRecording { recording }, metadata).await
}

/// Records that the file of `track_recording_id` was deleted (retention). Send it
/// after the file is gone, so a listed recording always has its file.
pub async fn expire_track_recording(
    rooms: &CommandBus<Room>,
    room: RoomId,
    track_recording_id: TrackRecordingId,
) -> Result<CommandOutcome<Room>, CommandError<RoomError>> {
    let metadata = CommandMetadata::system().with_command_id(command_id("expire", track_recording_id));
    rooms.execute(&room.to_string(), RoomCommand::ExpireTrackRecording { track_recording_id }, metadata).await
}

fn command_id(what: &str, track: TrackRecordingId) -> Uuid {
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, format!("{what}/{track}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_differ_by_command_and_track_and_never_change() {
        let track = TrackRecordingId::from_uuid(Uuid::from_u128(7));
        let other = TrackRecordingId::from_uuid(Uuid::from_u128(8));
        assert_eq!(command_id("finish", track), command_id("finish", track));
        assert_ne!(command_id("finish", track), command_id("expire", track));
        assert_ne!(command_id("finish", track), command_id("finish", other));
    }
}
