//! Which SFU node serves a room, so several SFU processes can share one NATS.
//!
//! Every node hears every room's signaling subject. The first node to see a
//! message for a room nobody owns claims it in the `<NS>_SFU_ROOMS` key-value
//! bucket (an atomic create); the others then ignore that room's messages.
//! Any message claims, not only an offer: an ICE candidate can overtake its
//! offer, and a room is never left unowned while its clients wait. The owner
//! refreshes its claims while the room has peers and gives them up when it has
//! none and has had no message for 30 s (an offer may still be in its admission
//! check); a node that dies stops refreshing, and its claims expire (bucket max
//! age), so its rooms can be claimed again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use rapat_commands::StoreError;
use rapat_wire::Namespace;
use uuid::Uuid;

/// A claim not refreshed for this long expires.
pub const CLAIM_TTL: Duration = Duration::from_secs(180);
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// A room without peers stays claimed until this long after its last message:
/// an offer may still be in its admission check (or behind the ICE candidate
/// that claimed the room).
const RELEASE_AFTER: Duration = Duration::from_secs(30);
/// How long "another node owns this room" is believed without asking again.
const OTHERS_CACHE: Duration = Duration::from_secs(5);

/// Rooms with at least one peer on this node, kept by the conductor.
pub type ActiveRooms = Arc<Mutex<HashSet<Uuid>>>;

/// Whether a node answers a room's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// This node owns the room (it may just have claimed it).
    Here,
    /// Another node owns it and answers; this one stays silent.
    Elsewhere,
    /// The bucket could not be read or written: nobody may know who owns the
    /// room, so this node tells the client (unless it believes another node
    /// owns the room, which then answers).
    Unknown,
}

pub struct Placement {
    node: String,
    bucket: kv::Store,
    /// Rooms this node owns, with when it last took a message for each.
    owned: HashMap<Uuid, Instant>,
    others: HashMap<Uuid, Instant>,
}

impl Placement {
    /// Opens the bucket, creating it with `replicas` when missing.
    pub async fn open(
        jetstream: &jetstream::Context,
        namespace: &Namespace,
        replicas: usize,
    ) -> Result<Self, StoreError> {
        let name = namespace.sfu_rooms_bucket();
        rapat_commands::ensure_kv_bucket(
            jetstream,
            &name,
            "which SFU node serves each room",
            Some(CLAIM_TTL),
            replicas,
        )
        .await?;
        let bucket = jetstream
            .get_key_value(&name)
            .await
            .map_err(|error| StoreError::Unavailable { reason: format!("bucket {name}: {error}") })?;
        Ok(Self { node: Uuid::new_v4().to_string(), bucket, owned: HashMap::new(), others: HashMap::new() })
    }

    /// Whether this node serves `room`; a message for a room nobody owns claims it
    /// (`may_claim`; a `disconnect` has nothing to do in an unowned room).
    pub async fn serves(&mut self, room: Uuid, may_claim: bool) -> Serving {
        if let Some(seen) = self.owned.get_mut(&room) {
            *seen = Instant::now();
            return Serving::Here;
        }
        if self.others.get(&room).is_some_and(|seen| seen.elapsed() < OTHERS_CACHE) {
            return Serving::Elsewhere;
        }
        let key = room.to_string();
        let owner = match self.bucket.get(&key).await {
            Ok(owner) => owner.map(|value| String::from_utf8_lossy(&value).into_owned()),
            Err(error) => {
                tracing::warn!(%room, %error, "cannot read the room's SFU claim");
                return self.unknown(room);
            }
        };
        let serving = match owner {
            Some(owner) if owner == self.node => Serving::Here,
            Some(_) => Serving::Elsewhere,
            // Nobody owns it: not "another node's", so nothing is cached.
            None if !may_claim => return Serving::Elsewhere,
            None => match self.bucket.create(&key, self.node.clone().into()).await {
                Ok(_) => Serving::Here,
                // Another node was faster.
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Serving::Elsewhere,
                Err(error) => {
                    tracing::warn!(%room, %error, "cannot claim the room");
                    return self.unknown(room);
                }
            },
        };
        match serving {
            Serving::Here => {
                self.owned.insert(room, Instant::now());
                self.others.remove(&room);
            }
            _ => {
                self.others.insert(room, Instant::now());
            }
        }
        serving
    }

    /// The bucket failed: a room last seen owned by another node is still left
    /// to it (it answers from its own cache without the bucket); otherwise the
    /// client hears that its message was not handled.
    fn unknown(&self, room: Uuid) -> Serving {
        if self.others.contains_key(&room) { Serving::Elsewhere } else { Serving::Unknown }
    }

    /// Keeps the claims of rooms with peers alive and gives up those quiet and empty.
    pub async fn refresh(&mut self, active: &ActiveRooms) {
        let active: HashSet<Uuid> = active.lock().map(|rooms| rooms.clone()).unwrap_or_default();
        let owned: Vec<(Uuid, Instant)> = self.owned.iter().map(|(room, at)| (*room, *at)).collect();
        for (room, last_message) in owned {
            let key = room.to_string();
            if active.contains(&room) {
                if let Err(error) = self.bucket.put(&key, self.node.clone().into()).await {
                    tracing::warn!(%room, %error, "cannot refresh the room's SFU claim");
                }
            } else if last_message.elapsed() >= RELEASE_AFTER {
                self.owned.remove(&room);
                if let Err(error) = self.bucket.purge(&key).await {
                    tracing::warn!(%room, %error, "cannot release the room's SFU claim");
                }
            }
        }
        self.others.retain(|_, seen| seen.elapsed() < OTHERS_CACHE);
    }
}
