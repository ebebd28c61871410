//! Track files committed to the store whose `TrackRecordingFinished` is not
//! stored yet, kept on disk until it is: one small JSON file per track under
//! `.unrecorded/` of the recordings directory. The recording thread writes the
//! entry right after it commits the file, and `track_files.rs` removes it once
//! the room has the event, so neither a NATS outage of any length nor an SFU
//! restart between the two leaves a file the host cannot see. Entries left by an
//! earlier process are recorded when the next one starts; with several nodes on
//! one shared directory a node may record another's entry too, which is
//! harmless: the file's id is the command's id, and the room records a file once.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use rapat_domain::ids::TrackRecordingId;

use crate::FinishedTrack;

/// The directory under the recordings directory that holds the entries.
const DIR: &str = ".unrecorded";

#[derive(Clone, Debug)]
pub struct Unrecorded {
    dir: PathBuf,
}

impl Unrecorded {
    pub fn in_recordings_dir(recordings: &Path) -> Self {
        Self { dir: recordings.join(DIR) }
    }

    fn path_of(&self, id: TrackRecordingId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes the entry for `track`, on disk before it returns (written aside,
    /// synced, then renamed, so a crash leaves a whole entry or none).
    pub fn keep(&self, track: &FinishedTrack) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path_of(track.recording.id);
        let aside = path.with_extension("json.tmp");
        let mut file = fs::File::create(&aside)?;
        file.write_all(&serde_json::to_vec(track).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&aside, &path)
    }

    /// Removes the entry of a track whose event is stored (or refused for good).
    pub fn forget(&self, id: TrackRecordingId) -> io::Result<()> {
        match fs::remove_file(self.path_of(id)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Every entry on disk; an unreadable one is logged and skipped (and kept,
    /// for whoever looks into it).
    pub fn pending(&self) -> Vec<FinishedTrack> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                tracing::warn!(%error, dir = %self.dir.display(), "cannot read the unrecorded track files");
                return Vec::new();
            }
        };
        let mut tracks = Vec::new();
        for path in entries.filter_map(|entry| entry.ok().map(|entry| entry.path())) {
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let read = fs::read(&path).map_err(|error| error.to_string());
            match read.and_then(|bytes| serde_json::from_slice(&bytes).map_err(|error| error.to_string())) {
                Ok(track) => tracks.push(track),
                Err(error) => tracing::warn!(%error, path = %path.display(), "an unreadable unrecorded-track entry"),
            }
        }
        tracks
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rapat_domain::ids::{RoomId, TrackRecordingId, UserId};
    use rapat_domain::room::{RecordingCodec, TrackRecording};

    use super::Unrecorded;
    use crate::FinishedTrack;

    fn track() -> FinishedTrack {
        let recording = TrackRecording {
            id: TrackRecordingId::new_random(),
            user_id: UserId::new_random(),
            codec: RecordingCodec::Vp8,
            started_at: Utc::now(),
            duration_ms: 6_000,
            bytes: 123_456,
        };
        FinishedTrack { room: RoomId::new_random(), recording }
    }

    #[test]
    fn an_entry_is_pending_until_forgotten_and_a_broken_one_is_skipped() {
        let dir = std::env::temp_dir().join(format!("rapat-unrecorded-{}", uuid::Uuid::new_v4()));
        let journal = Unrecorded::in_recordings_dir(&dir);
        assert!(journal.pending().is_empty(), "no directory yet: nothing pending");

        let (first, second) = (track(), track());
        journal.keep(&first).expect("kept");
        journal.keep(&second).expect("kept");
        std::fs::write(dir.join(".unrecorded").join("broken.json"), b"{not json").expect("written");
        let mut pending: Vec<_> = journal.pending().into_iter().map(|track| track.recording).collect();
        pending.sort_by_key(|recording| recording.id);
        let mut expected = vec![first.recording.clone(), second.recording.clone()];
        expected.sort_by_key(|recording| recording.id);
        assert_eq!(pending, expected);

        journal.forget(first.recording.id).expect("forgotten");
        journal.forget(first.recording.id).expect("forgetting twice is fine");
        let pending: Vec<_> = journal.pending().into_iter().map(|track| track.recording.id).collect();
        assert_eq!(pending, vec![second.recording.id]);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
