//! A room on a real event store, an SFU on a real NATS, and loopback webrtc-rs
//! clients whose signaling goes over the same NATS subjects a gateway uses.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::testing::MarkedHasher;
use rapat_sfu::loopback_client::{ClientOptions, ClientStats, LoopbackClient, RtpCodecKind, Signal};
use rapat_sfu::nats::{RoomEventAdmission, Rosters};
use rapat_sfu::{Sfu, SfuConfig};
pub use rapat_testkit::eventually;
use rapat_testkit::{nats_url, unique_namespace};
use rapat_wire::Namespace;
use rapat_wire::signal::{CONNECTION_HEADER, SfuReply, SfuRequest, SfuRequestKind};
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Harness {
    pub nats: async_nats::Client,
    pub namespace: Namespace,
    events: EventStoreConfig,
    pub rooms: CommandBus<Room>,
    pub room: Uuid,
    pub host: UserId,
    pub sfu: Sfu,
    /// What the SFU's room-event follower has applied.
    pub rosters: Rosters,
    cancel: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub struct Client {
    pub peer: LoopbackClient,
}

impl Client {
    pub fn stats(&self) -> Arc<ClientStats> {
        self.peer.stats()
    }
}

pub async fn harness() -> Harness {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
    config.workers = 2;
    harness_with(config).await
}

/// An SFU on a range of `ports` ports of 127.0.0.1 (RAPAT_SFU_PORT_RANGE mode).
pub async fn harness_with_port_range(ports: u16) -> (Harness, std::ops::RangeInclusive<u16>) {
    // A free range is found by trying: another test may hold a port.
    for _ in 0..20 {
        let first = 20_000 + (rand::random::<u16>() % 40_000);
        let range = first..=first + (ports - 1);
        let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
        config.port_range = Some((*range.start(), *range.end()));
        config.workers = 2;
        if range.clone().all(|port| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()) {
            return (harness_with(config).await, range);
        }
    }
    panic!("no free range of {ports} ports");
}

pub async fn harness_with(config: SfuConfig) -> Harness {
    harness_on(&nats_url(), config).await
}

/// A harness on the NATS at `url` (a test's own server, to kill and restart).
pub async fn harness_on(url: &str, config: SfuConfig) -> Harness {
    let nats = async_nats::connect(url).await.expect("NATS is reachable");
    let namespace = unique_namespace();
    let mut events = EventStoreConfig::for_namespace(namespace.clone());
    events.max_age = Some(Duration::from_secs(3600));
    let store = JetStreamEventStore::open(nats.clone(), events.clone()).await.expect("event store");
    let rooms = CommandBus::new(store, MarkedHasher::services());
    let admission = RoomEventAdmission::open(nats.clone(), events.clone()).await.expect("admission");
    let rosters = admission.rosters();
    let (sfu, outgoing) = Sfu::start(config, Arc::new(admission)).expect("SFU starts");
    let cancel = CancellationToken::new();
    let events_config = events.clone();
    let serve = rapat_sfu::nats::serve(nats.clone(), events, rosters.clone(), sfu.handle(), outgoing, cancel.clone());
    tokio::spawn(async move { serve.await.expect("SFU on NATS") });
    let handle = sfu.handle();
    eventually("the SFU's signaling subscription", Duration::from_secs(10), || handle.signaling()).await;

    let host = UserId::new_random();
    let room = Uuid::new_v4();
    let harness = Harness { nats, namespace, events: events_config, rooms, room, host, sfu, rosters, cancel };
    harness.command(create_room(host, 50)).await;
    harness
}

/// The command that makes `host` the host of a room for `max_users`.
pub fn create_room(host: UserId, max_users: u16) -> RoomCommand {
    RoomCommand::Create {
        host,
        name: RoomName::parse("Standup".into()).expect("name"),
        description: RoomDescription::parse(String::new()).expect("description"),
        password: None,
        max_users: MaxUsers::parse(max_users.into()).expect("max users"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

/// A participant publishing and the host listening, with media flowing.
pub struct OnAir {
    pub speaker: UserId,
    /// The speaker's user id: the MediaStream id of what the host receives.
    pub stream: String,
    pub publisher: Client,
    pub listener: Client,
}

impl Harness {
    pub async fn speaker_and_listening_host(&self, listener: ClientOptions) -> OnAir {
        self.join(self.host).await;
        let speaker = self.participant().await;
        let publisher = self.connect(speaker, ClientOptions::publisher()).await;
        let listener = self.connect(self.host, listener).await;
        let stream = speaker.to_string();
        let stats = listener.stats();
        eventually("video and audio at the host", Duration::from_secs(15), || {
            stats.packets_from(&stream, RtpCodecKind::Video) > 30
                && stats.packets_from(&stream, RtpCodecKind::Audio) > 10
        })
        .await;
        OnAir { speaker, stream, publisher, listener }
    }

    /// Removes the speaker from the room and asserts that the host stops getting
    /// their video within a second.
    pub async fn remove_speaker_and_expect_silence(&self, on_air: &OnAir) {
        let stats = on_air.listener.stats();
        self.command(RoomCommand::RemoveParticipant { actor: self.host, target: on_air.speaker }).await;
        let removed = Instant::now();
        let video = || stats.packets_from(&on_air.stream, RtpCodecKind::Video);
        let stopped = stopped_at(Duration::from_secs(5), Duration::from_millis(400), video).await;
        let took = stopped.saturating_duration_since(removed);
        assert!(took <= Duration::from_secs(1), "media stopped {took:?} after the removal");
    }

    /// Another SFU process on the same NATS namespace, running until the harness drops.
    pub async fn another_sfu_node(&self) -> Sfu {
        let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
        config.workers = 1;
        self.another_sfu_node_with(config).await
    }

    /// Another SFU process with `config` on the same NATS namespace.
    pub async fn another_sfu_node_with(&self, config: SfuConfig) -> Sfu {
        let admission = RoomEventAdmission::open(self.nats.clone(), self.events.clone()).await.expect("admission");
        let rosters = admission.rosters();
        let (sfu, outgoing) = Sfu::start(config, Arc::new(admission)).expect("SFU starts");
        let serve = rapat_sfu::nats::serve(
            self.nats.clone(),
            self.events.clone(),
            rosters,
            sfu.handle(),
            outgoing,
            self.cancel.clone(),
        );
        tokio::spawn(async move { serve.await.expect("SFU on NATS") });
        let handle = sfu.handle();
        eventually("the second node's signaling subscription", Duration::from_secs(10), || handle.signaling()).await;
        sfu
    }

    /// Runs `command` on the room; returns the stream sequence to wait for to see it.
    pub async fn command(&self, command: RoomCommand) -> u64 {
        self.rooms
            .execute(&self.room.to_string(), command, CommandMetadata::system())
            .await
            .expect("room command")
            .stream_sequence
    }

    /// A new user who joined the room.
    pub async fn participant(&self) -> UserId {
        let user = UserId::new_random();
        self.join(user).await;
        user
    }

    pub async fn join(&self, user: UserId) {
        self.command(RoomCommand::Join { user, password: None, invited: false }).await;
    }

    /// A loopback client for `user`, signaling through NATS like a gateway would.
    pub async fn connect(&self, user: UserId, options: ClientOptions) -> Client {
        let connection = Uuid::new_v4();
        let (to_sfu, mut from_client) = unbounded_channel::<Signal>();
        let (to_client, from_sfu) = unbounded_channel::<Signal>();
        let mut replies = self.nats.subscribe(self.namespace.room_signal_subject(self.room)).await.expect("subscribe");
        self.nats.flush().await.expect("flush");
        let wanted = connection.to_string();
        tokio::spawn(async move {
            while let Some(message) = replies.next().await {
                let for_us = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(CONNECTION_HEADER))
                    .is_some_and(|v| v.as_str() == wanted);
                if !for_us {
                    continue;
                }
                let Ok(reply) = serde_json::from_slice::<SfuReply>(&message.payload) else { continue };
                if to_client.send((reply.kind.as_str().to_string(), reply.payload)).is_err() {
                    return;
                }
            }
        });
        let (nats, subject, room) = (self.nats.clone(), self.namespace.sfu_inbound_subject(self.room), self.room);
        tokio::spawn(async move {
            while let Some((kind, payload)) = from_client.recv().await {
                let Some(kind) = SfuRequestKind::from_client_type(&kind) else { continue };
                let request = SfuRequest {
                    kind,
                    room_id: room,
                    user_id: user.as_uuid(),
                    username: "loopback".into(),
                    connection_id: connection,
                    payload,
                };
                let Ok(body) = serde_json::to_vec(&request) else { continue };
                let _ = nats.publish(subject.clone(), body.into()).await;
            }
        });
        let peer = LoopbackClient::start(options, to_sfu, from_sfu).await.expect("client starts");
        Client { peer }
    }
}

/// When a counter stopped rising: polls until it has not changed for `quiet`,
/// and returns the moment of its last change (at most `limit` after now).
pub async fn stopped_at(limit: Duration, quiet: Duration, mut count: impl FnMut() -> u64) -> Instant {
    let started = Instant::now();
    let mut last = count();
    let mut changed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = count();
        if now != last {
            last = now;
            changed = Instant::now();
        } else if changed.elapsed() >= quiet {
            return changed;
        }
        assert!(started.elapsed() < limit, "the count kept rising for {limit:?}");
    }
}
