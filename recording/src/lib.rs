//! Recordings (SPEC §10). The SFU hands each published track's packets to a
//! writer here, which turns them into one file per publication; the store keeps
//! the files, and the gateway serves them from it.
//!
//! Writing, one job per module: `jitter` puts packets in sequence order,
//! `timeline` places them on one clock across SSRC changes, `vp8` makes frames
//! of VP8 packets, `ogg` and `webm` are the containers, and `track` drives them
//! for one publication ([`TrackRecorder`]). Everything here is synchronous I/O,
//! run on the SFU's recording thread, never on the forwarding path.

pub mod jitter;
pub mod ogg;
pub mod store;
pub mod timeline;
pub mod track;
pub mod vp8;
pub mod webm;

pub use store::{Download, LocalDirStore, PartialFile, RecordingKey, RecordingStore, StoreError};
pub use track::{TrackRecorder, Written};
