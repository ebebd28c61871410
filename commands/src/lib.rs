//! rapat's write side: commands in, events out.
//!
//! [`CommandBus`] runs a command on its aggregate (cqrs-es `Aggregate::handle`) and
//! appends the resulting events through [`JetStreamEventStore`], which keeps them in
//! NATS JetStream, the only source of truth. The services commands need (argon2id
//! hashing) live here too, so the domain stays free of I/O. [`registration`] is the
//! sequence of commands that registers an account, and settles one cut short.
//! [`recording`] is what the SFU and the retention loop record of recorded files.
//! [`generate`] writes a made-up history of rooms through the same bus.

mod bus;
mod cache;
mod codec;
mod config;
pub mod deadline;
mod error;
mod follow;
pub mod generate;
mod metadata;
mod password;
pub mod recording;
pub mod registration;
mod setup;
mod snapshot;
mod store;

pub use bus::{CommandBus, CommandOutcome};
pub use cache::Cached;
pub use codec::EVENT_TYPES_HEADER;
pub use config::EventStoreConfig;
pub use error::{CommandError, StoreError};
pub use follow::{Follow, follow, follow_from_start};
pub use metadata::CommandMetadata;
pub use password::{Argon2idHasher, HashingLimits};
pub use setup::{connect, ensure_event_store, ensure_kv_bucket, power_loss_warning};
pub use store::{Appended, JetStreamEventStore, Loaded, StoredAggregate};
