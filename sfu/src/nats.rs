//! The SFU on NATS: signaling from gateways, answers back to sockets, admission
//! from the event store, and room events from JetStream.
//!
//! The contract with the gateways (messages, header) is `rapat_wire::signal`,
//! and every name comes from the `rapat_wire::Namespace` given to [`serve`]:
//! - `<namespace>.sfu.rooms.<roomId>.in`: a gateway publishes a client's `offer`,
//!   `answer`, `ice-candidate` or `disconnect` (an `SfuRequest`).
//! - `<namespace>.rooms.<roomId>.signal`: the SFU publishes an `SfuReply` (a
//!   complete signaling message, `username: "sfu"`, no `targetUserId`) with the
//!   header `Rapat-Ws-Connection: <connectionId>`; the gateway holding that
//!   socket delivers it to that socket only.
//! - the `<NAMESPACE>_SFU_ROOMS` key-value bucket: which SFU node serves each
//!   room, when several run (`placement.rs`).
//! - `<namespace>.events.room.<roomId>` on the event stream: followed from "now"
//!   by `room_events.rs`, which keeps its position across NATS restarts; who may
//!   offer is checked against the room aggregate itself, so nothing before "now"
//!   is needed.
//!
//! The inbound subscription is core NATS: the client sends it again when it
//! reconnects, and the placement bucket is read and written by request, so both
//! work again as soon as the connection is back.

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use futures::future::BoxFuture;
use rapat_commands::{EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::ids::UserId;
use rapat_domain::room::Room;
use rapat_wire::signal::{CONNECTION_HEADER, SfuRequest, SfuRequestKind};
use rapat_wire::Namespace;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::placement::{Placement, REFRESH_EVERY};
use crate::room_events;
use crate::{Admission, Admitted, Outgoing, Refused, SfuHandle};

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Admission from the room aggregate in the event store.
pub struct EventStoreAdmission {
    rooms: JetStreamEventStore<Room>,
}

impl EventStoreAdmission {
    pub async fn open(nats: async_nats::Client, config: EventStoreConfig) -> Result<Self, StoreError> {
        Ok(Self { rooms: JetStreamEventStore::open(nats, config).await? })
    }
}

impl Admission for EventStoreAdmission {
    fn check(&self, room: Uuid, user: Uuid) -> BoxFuture<'static, Result<Admitted, Refused>> {
        let rooms = self.rooms.clone();
        Box::pin(async move {
            let id = room.to_string();
            let unavailable = |error: StoreError| Refused::Unavailable(error.to_string());
            // The cache may be behind another process's writes: catch up from it.
            let cached = rooms.load(&id).await.map_err(unavailable)?;
            let state = rooms.replay(&id, Some(cached.state)).await.map_err(unavailable)?;
            let room = &state.aggregate;
            if room.is_ended() {
                return Err(Refused::RoomEnded);
            }
            match room.participant(UserId::from_uuid(user)) {
                Some(participant) => Ok(Admitted { audio_muted: participant.audio_muted, max_users: room.max_users().get() }),
                None => Err(Refused::NotParticipant),
            }
        })
    }
}

/// Connects a running SFU to NATS until `cancel`: takes signaling from gateways,
/// follows room events, and publishes what the SFU sends to clients.
pub async fn serve(
    nats: async_nats::Client,
    namespace: Namespace,
    events: EventStoreConfig,
    sfu: SfuHandle,
    outgoing: UnboundedReceiver<Outgoing>,
    cancel: CancellationToken,
) -> Result<(), NatsError> {
    let nats_error = |what: &str, error: &dyn std::fmt::Display| NatsError::Nats(format!("{what}: {error}"));
    let mut inbound = nats
        .subscribe(namespace.all_sfu_inbound_subjects())
        .await
        .map_err(|e| nats_error("subscribing to SFU signaling", &e))?;
    let mut placement = Placement::open(&jetstream::new(nats.clone()), &namespace, events.replicas).await?;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    let mut report = tokio::time::interval(std::time::Duration::from_secs(5));
    let publisher = tokio::spawn(publish_outgoing(nats.clone(), namespace.clone(), outgoing));
    let follower = {
        let sfu = sfu.clone();
        tokio::spawn(room_events::follow(nats.clone(), events, move |change| sfu.room_changed(change), cancel.child_token()))
    };
    nats.flush().await.map_err(|e| nats_error("flushing the subscription", &e))?;
    sfu.set_signaling(true);
    tracing::info!(%namespace, "SFU signaling on NATS");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = refresh.tick() => placement.refresh(&sfu.active).await,
            _ = report.tick() => sfu.report_metrics(),
            message = inbound.next() => match message {
                Some(message) => match serde_json::from_slice::<SfuRequest>(&message.payload) {
                    Ok(request) => {
                        if placement.serves(request.room_id, request.kind == SfuRequestKind::Offer).await {
                            sfu.signal(request);
                        }
                    }
                    Err(error) => tracing::warn!(subject = %message.subject, %error, "ignoring an unreadable SFU signaling message"),
                },
                None => break,
            },
        }
    }
    sfu.set_signaling(false);
    publisher.abort();
    follower.abort();
    Ok(())
}

async fn publish_outgoing(nats: async_nats::Client, namespace: Namespace, mut outgoing: UnboundedReceiver<Outgoing>) {
    while let Some(message) = outgoing.recv().await {
        let Ok(body) = serde_json::to_vec(&message.reply(chrono::Utc::now())) else { continue };
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION_HEADER, message.to.connection.to_string().as_str());
        let subject = namespace.room_signal_subject(message.to.room);
        if let Err(error) = nats.publish_with_headers(subject, headers, body.into()).await {
            tracing::warn!(%error, "cannot publish an SFU message");
        }
    }
}
