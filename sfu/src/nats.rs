//! The SFU on NATS: signaling from gateways, answers back to sockets, and room
//! events from JetStream (for admission and for what media follows).
//!
//! The contract with the gateways (messages, header) is `rapat_wire::signal`,
//! and every name comes from the `rapat_wire::Namespace` of the event store settings given to [`serve`]:
//! - `<namespace>.sfu.rooms.<roomId>.in`: a gateway publishes a client's `offer`,
//!   `answer`, `ice-candidate` or `disconnect` (an `SfuRequest`).
//! - `<namespace>.rooms.<roomId>.signal`: the SFU publishes an `SfuReply` (a
//!   complete signaling message, `username: "sfu"`, no `targetUserId`) with the
//!   header `Rapat-Ws-Connection: <connectionId>`; the gateway holding that
//!   socket delivers it to that socket only.
//! - the `<NAMESPACE>_SFU_ROOMS` key-value bucket: which SFU node serves each
//!   room, when several run (`placement.rs`).
//! - `<namespace>.events.room.<roomId>` on the event stream: followed from its
//!   start by `room_events.rs`, which keeps its position across NATS restarts and
//!   folds the events into the rosters admission decides on (`admission.rs`);
//!   the SFU's one write is there too: each finished recording file, as a room
//!   command through the command layer (`track_files.rs`).
//!
//! The inbound subscription is core NATS: the client sends it again when it
//! reconnects, and the placement bucket is read and written by request, so both
//! work again as soon as the connection is back.

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use rapat_commands::{EventStoreConfig, StoreError};
use rapat_wire::Namespace;
use rapat_wire::signal::{CONNECTION_HEADER, SfuRequest, SfuRequestKind};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

pub use crate::admission::{RoomEventAdmission, Rosters};
use crate::placement::{Placement, REFRESH_EVERY, Serving};
use crate::room_events;
use crate::{Outgoing, SfuHandle};

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Connects a running SFU to NATS until `cancel`: takes signaling from gateways,
/// follows room events (folding them into `rosters`, those of the SFU's
/// [`RoomEventAdmission`]), and publishes what the SFU sends to clients.
pub async fn serve(
    nats: async_nats::Client,
    events: EventStoreConfig,
    rosters: Rosters,
    sfu: SfuHandle,
    outgoing: UnboundedReceiver<Outgoing>,
    cancel: CancellationToken,
) -> Result<(), NatsError> {
    let nats_error = |what: &str, error: &dyn std::fmt::Display| NatsError::Nats(format!("{what}: {error}"));
    let namespace = events.namespace.clone();
    let mut inbound = nats
        .subscribe(namespace.all_sfu_inbound_subjects())
        .await
        .map_err(|e| nats_error("subscribing to SFU signaling", &e))?;
    let mut placement = Placement::open(&jetstream::new(nats.clone()), &namespace, events.replicas).await?;
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    let mut report = tokio::time::interval(std::time::Duration::from_secs(5));
    let publisher = tokio::spawn(publish_outgoing(nats.clone(), namespace.clone(), outgoing));
    // Not stopped with the rest: files the SFU finishes as it stops are still recorded.
    if let Some((finished, unrecorded)) = sfu.take_finished_recordings() {
        tokio::spawn(crate::track_files::record_finished(nats.clone(), events.clone(), finished, unrecorded));
    }
    let follower = {
        let sfu = sfu.clone();
        tokio::spawn(room_events::follow(
            nats.clone(),
            events,
            rosters,
            move |change, sequence| sfu.room_changed(change, sequence),
            cancel.child_token(),
        ))
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
                    Ok(request) => match placement.serves(request.room_id, request.kind != SfuRequestKind::Disconnect).await {
                        Serving::Here => sfu.signal(request),
                        Serving::Elsewhere => {}
                        Serving::Unknown if request.kind == SfuRequestKind::Disconnect => {}
                        Serving::Unknown => sfu.refuse(
                            &request,
                            "sfu_unavailable",
                            "the media server cannot tell which node serves this room; try again",
                        ),
                    },
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
