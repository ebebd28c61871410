//! Admission from the room's own events, without loading the room aggregate.
//!
//! `room_events.rs` follows every room event from the stream's start and folds
//! it into [`Rosters`] (`roster.rs`: capacity, participants, ended), noting the
//! stream sequence it has applied through. An offer is decided on the rosters
//! once they have caught up with the room: [`RoomEventAdmission`] reads the
//! stream sequence of the room's latest event (one message-get on the room's
//! subject, answered by the stream leader) and waits until the follower has
//! applied that far. So a join stored before the client's offer is always seen,
//! as it was when the aggregate was replayed for every offer, and a leave,
//! removal or end that the follower applies while the offer waits refuses it in
//! the room core.
//!
//! Why not a sequence stamped on the offer by the gateway: the room's head read
//! here is at least as new as anything the gateway delivered to the client, and
//! it keeps the gateway ↔ SFU contract (`rapat_wire::signal`) as it is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::future::BoxFuture;
use rapat_commands::{EventStoreConfig, StoreError};
use rapat_domain::room::RoomEvent;
use tokio::sync::watch;
use uuid::Uuid;

use crate::conductor::Admission;
use crate::inputs::{Admitted, Refused};
use crate::roster::Roster;

/// How long an offer waits for the follower to reach the room's latest event
/// (on start it replays the stream's room events first).
const CATCH_UP: Duration = Duration::from_secs(5);
/// How long reading the room's latest sequence may take.
const READ_HEAD: Duration = Duration::from_secs(2);

/// The rosters the room-event follower keeps and admission reads, with the
/// stream sequence they are applied through. Cheap to clone.
#[derive(Clone, Default)]
pub struct Rosters {
    roster: Arc<Mutex<Roster>>,
    applied: Arc<watch::Sender<u64>>,
}

impl Rosters {
    pub fn apply(&self, room: Uuid, event: &RoomEvent) {
        if let Ok(mut roster) = self.roster.lock() {
            roster.apply(room, event);
        }
    }

    /// Every room event up to stream sequence `sequence` has been applied.
    pub fn applied_through(&self, sequence: u64) {
        self.applied.send_if_modified(|applied| {
            let later = sequence > *applied;
            *applied = (*applied).max(sequence);
            later
        });
    }

    /// The stream sequence every room event up to has been applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    fn decide(&self, room: Uuid, user: Uuid) -> Result<Admitted, Refused> {
        // Read before the rosters: they may be ahead of it, never behind, so a
        // change the decision already saw can only refuse the offer again.
        let as_of = self.applied();
        let roster = self.roster.lock().map_err(|_| Refused::Unavailable("the room rosters are poisoned".into()))?;
        roster.decide(room, user).map(|admitted| Admitted { as_of, ..admitted })
    }
}

/// Admits an offer on the room's events, once they are applied as far as the
/// room's latest.
pub struct RoomEventAdmission {
    rosters: Rosters,
    stream: stream::Stream<()>,
    events: EventStoreConfig,
}

impl RoomEventAdmission {
    pub async fn open(nats: async_nats::Client, events: EventStoreConfig) -> Result<Self, StoreError> {
        let name = events.namespace.events_stream();
        let stream = jetstream::new(nats)
            .get_stream_no_info(&name)
            .await
            .map_err(|error| StoreError::Unavailable { reason: format!("stream {name}: {error}") })?;
        Ok(Self { rosters: Rosters::default(), stream, events })
    }

    /// What the room-event follower (`nats::serve`) folds the events into.
    pub fn rosters(&self) -> Rosters {
        self.rosters.clone()
    }
}

impl Admission for RoomEventAdmission {
    fn check(&self, room: Uuid, user: Uuid) -> BoxFuture<'static, Result<Admitted, Refused>> {
        let (rosters, stream, subject) =
            (self.rosters.clone(), self.stream.clone(), self.events.namespace.event_subject("room", room));
        Box::pin(async move {
            let head =
                match tokio::time::timeout(READ_HEAD, stream.raw_message_builder().last_by_subject(subject).send())
                    .await
                {
                    Ok(Ok(message)) => message.sequence,
                    // No room of that id: nothing to wait for, and nobody is admitted.
                    Ok(Err(error)) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
                    Ok(Err(error)) => return Err(Refused::Unavailable(format!("reading the room's events: {error}"))),
                    Err(_) => return Err(Refused::Unavailable("reading the room's events: no answer in time".into())),
                };
            let mut applied = rosters.applied.subscribe();
            let caught_up =
                matches!(tokio::time::timeout(CATCH_UP, applied.wait_for(|applied| *applied >= head)).await, Ok(Ok(_)));
            if !caught_up {
                return Err(Refused::Unavailable("the SFU has not caught up with the room's events yet".into()));
            }
            rosters.decide(room, user)
        })
    }
}
