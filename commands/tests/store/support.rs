//! `TestStore`: a fresh event store namespace per test, removed when dropped
//! (the shared parts come from `rapat-testkit`).

use std::sync::Arc;
use std::time::Duration;

use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore, StoredAggregate};
use rapat_domain::envelope::Upcast;
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::DomainServices;
use rapat_domain::services::testing::MarkedHasher;
use rapat_testkit::{NamespaceCleanup, nats_url, unique_namespace};
use uuid::Uuid;

pub struct TestStore {
    pub client: async_nats::Client,
    pub config: EventStoreConfig,
    /// Deletes the namespace's stream and bucket when the test is done.
    _cleanup: NamespaceCleanup,
}

impl TestStore {
    pub async fn new() -> Self {
        Self::with_snapshots_every(100).await
    }

    pub async fn with_snapshots_every(snapshot_every: u64) -> Self {
        let namespace = unique_namespace();
        let mut config = EventStoreConfig::for_namespace(namespace.clone());
        config.snapshot_every = snapshot_every;
        // Anything a crashed test leaves behind expires on its own.
        config.max_age = Some(Duration::from_secs(3600));
        let client = rapat_commands::connect(&nats_url()).await.expect("NATS with JetStream must be running");
        Self { client, config, _cleanup: NamespaceCleanup::new(namespace) }
    }

    /// A store with its own connection and empty cache: what a second gateway
    /// process would have.
    pub async fn open<A: StoredAggregate>(&self) -> JetStreamEventStore<A>
    where
        A::Event: Upcast,
    {
        let client = rapat_commands::connect(&nats_url()).await.expect("connects");
        JetStreamEventStore::open(client, self.config.clone()).await.expect("store opens")
    }

    pub async fn room_bus(&self) -> CommandBus<Room> {
        CommandBus::new(self.open::<Room>().await, test_services())
    }

    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client.clone())
    }
}

/// Room decisions under test; argon2 itself is tested in the crate's unit tests.
pub fn test_services() -> DomainServices {
    MarkedHasher::services()
}

pub fn create_room_command(host: UserId, max_users: u32) -> RoomCommand {
    RoomCommand::Create {
        host,
        name: RoomName::parse("Weekly sync".to_string()).expect("valid name"),
        description: RoomDescription::parse("Team meeting".to_string()).expect("valid description"),
        password: None,
        max_users: MaxUsers::parse(max_users).expect("valid max users"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

/// Creates a room through `bus` and returns its id and host.
pub async fn create_room(bus: &CommandBus<Room>, max_users: u32) -> (String, UserId) {
    let host = UserId::new_random();
    let room_id = Uuid::new_v4().to_string();
    bus.execute(&room_id, create_room_command(host, max_users), CommandMetadata::by(host.to_string()))
        .await
        .expect("room is created");
    (room_id, host)
}

pub fn join(user: UserId) -> RoomCommand {
    RoomCommand::Join { user, password: None, invited: false }
}

#[allow(dead_code)]
pub fn shared<T>(value: T) -> Arc<T> {
    Arc::new(value)
}
