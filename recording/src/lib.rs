//! Recordings (SPEC §10). The SFU hands each published track's packets to a
//! writer here, which turns them into one file per publication; the store keeps
//! the files, and the gateway serves them from it.

pub mod store;

pub use store::{Download, LocalDirStore, PartialFile, RecordingKey, RecordingStore, StoreError};
