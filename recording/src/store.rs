//! Where recorded files are kept. [`RecordingStore`] is the seam for another
//! kind of storage (an S3-compatible object store): a file is always written to
//! a local partial file first, because containers such as WebM are finished by
//! seeking back to fill in sizes and the duration, and is handed to the store
//! only when complete. [`LocalDirStore`] keeps files in one directory, which
//! several nodes can share as a volume.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rapat_domain::ids::{RoomId, TrackRecordingId};
use rapat_domain::room::RecordingCodec;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("recording store I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where one track recording is kept: `{room}/{track}.{ogg|webm}`. Made only from
/// ids and a codec, so it can never point outside the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordingKey(String);

impl RecordingKey {
    pub fn for_track(room: RoomId, track: TrackRecordingId, codec: RecordingCodec) -> Self {
        Self(format!("{room}/{track}.{}", codec.file_extension()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a stored file reaches a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Download {
    /// A file on this machine, served with Range support.
    LocalFile { path: PathBuf, bytes: u64 },
}

/// A file being written. Becomes part of the store only through
/// [`RecordingStore::commit`]; until then a reader never sees it.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    path: PathBuf,
    key: RecordingKey,
}

impl PartialFile {
    pub fn key(&self) -> &RecordingKey {
        &self.key
    }

    /// Deletes the partial file (it held nothing worth keeping).
    pub fn remove(self) -> Result<(), StoreError> {
        let Self { file, path, .. } = self;
        drop(file);
        fs::remove_file(&path).map_err(io_error(&path))
    }
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for PartialFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// Blocking by design: files are written on the SFU's recording thread, off the
/// forwarding path, and read by the gateway through [`Download`].
pub trait RecordingStore: Send + Sync {
    fn create(&self, key: RecordingKey) -> Result<PartialFile, StoreError>;
    /// Makes a finished file readable under its key; returns its size in bytes.
    fn commit(&self, file: PartialFile) -> Result<u64, StoreError>;
    /// Drops a file that will not be committed.
    fn discard(&self, file: PartialFile) -> Result<(), StoreError> {
        file.remove()
    }
    /// `None` when no file is kept under the key.
    fn download(&self, key: &RecordingKey) -> Result<Option<Download>, StoreError>;
    /// Removes the file; `false` when there was none.
    fn delete(&self, key: &RecordingKey) -> Result<bool, StoreError>;
}

/// Files under one directory: `{dir}/{key}`, partial files under `{dir}/.partial/`.
#[derive(Clone, Debug)]
pub struct LocalDirStore {
    dir: PathBuf,
}

impl LocalDirStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, key: &RecordingKey) -> PathBuf {
        self.dir.join(key.as_str())
    }

    fn partial_path_of(&self, key: &RecordingKey) -> PathBuf {
        self.dir.join(".partial").join(key.as_str())
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(io_error(parent)),
        None => Ok(()),
    }
}

impl RecordingStore for LocalDirStore {
    fn create(&self, key: RecordingKey) -> Result<PartialFile, StoreError> {
        let path = self.partial_path_of(&key);
        create_parent(&path)?;
        let file = File::create(&path).map_err(io_error(&path))?;
        Ok(PartialFile { file, path, key })
    }

    fn commit(&self, file: PartialFile) -> Result<u64, StoreError> {
        let PartialFile { file, path, key } = file;
        // On disk before it is announced: an event will say this file exists.
        file.sync_all().map_err(io_error(&path))?;
        let bytes = file.metadata().map_err(io_error(&path))?.len();
        drop(file);
        let target = self.path_of(&key);
        create_parent(&target)?;
        fs::rename(&path, &target).map_err(io_error(&target))?;
        Ok(bytes)
    }

    fn download(&self, key: &RecordingKey) -> Result<Option<Download>, StoreError> {
        let path = self.path_of(key);
        match fs::metadata(&path) {
            Ok(metadata) => Ok(Some(Download::LocalFile { path, bytes: metadata.len() })),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    fn delete(&self, key: &RecordingKey) -> Result<bool, StoreError> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn key(n: u128) -> RecordingKey {
        let room = RoomId::from_uuid(Uuid::from_u128(1));
        RecordingKey::for_track(room, TrackRecordingId::from_uuid(Uuid::from_u128(n)), RecordingCodec::Vp8)
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rapat-store-{name}-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_file_is_readable_only_once_committed_and_is_gone_once_deleted() {
        let store = LocalDirStore::new(scratch_dir("commit"));
        let mut file = store.create(key(2)).expect("create");
        file.write_all(b"0123456789").expect("write");
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.write_all(b"X").expect("overwrite");
        assert_eq!(store.download(&key(2)).expect("look up"), None);

        assert_eq!(store.commit(file).expect("commit"), 10);
        let Some(Download::LocalFile { path, bytes }) = store.download(&key(2)).expect("look up") else {
            panic!("the committed file is readable");
        };
        assert_eq!(bytes, 10);
        assert_eq!(fs::read(&path).expect("read"), b"X123456789");
        assert!(path.ends_with(key(2).as_str()));

        assert!(store.delete(&key(2)).expect("delete"));
        assert!(!store.delete(&key(2)).expect("delete again"));
        assert_eq!(store.download(&key(2)).expect("look up"), None);
        fs::remove_dir_all(store.dir()).expect("clean up");
    }

    #[test]
    fn keys_are_made_of_ids_and_the_codec_only() {
        assert_eq!(key(2).as_str(), "00000000-0000-0000-0000-000000000001/00000000-0000-0000-0000-000000000002.webm");
    }
}
