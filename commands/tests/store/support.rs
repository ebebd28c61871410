//! `TestStore`: a fresh event store namespace per test, removed when dropped.

use std::sync::Arc;
use std::time::Duration;

use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore, StoredAggregate};
use rapat_domain::envelope::Upcast;
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::DomainServices;
use rapat_domain::services::testing::MarkedHasher;
use uuid::Uuid;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

pub struct TestStore {
    pub client: async_nats::Client,
    pub config: EventStoreConfig,
}

impl TestStore {
    pub async fn new() -> Self {
        Self::with_snapshots_every(100).await
    }

    pub async fn with_snapshots_every(snapshot_every: u64) -> Self {
        let namespace = format!("t{}", Uuid::new_v4().simple());
        let mut config = EventStoreConfig::for_namespace(&namespace);
        config.snapshot_every = snapshot_every;
        // Anything a crashed test leaves behind expires on its own.
        config.max_age = Some(Duration::from_secs(3600));
        let client = rapat_commands::connect(&nats_url()).await.expect("NATS with JetStream must be running");
        Self { client, config }
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

impl Drop for TestStore {
    fn drop(&mut self) {
        let config = self.config.clone();
        let url = nats_url();
        // Drop cannot await; clean up on a thread with its own small runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                if let Ok(client) = rapat_commands::connect(&url).await {
                    let jetstream = async_nats::jetstream::new(client);
                    let _ = jetstream.delete_stream(&config.stream).await;
                    let _ = jetstream.delete_key_value(&config.snapshot_bucket).await;
                }
            });
        });
        let _ = cleanup.join();
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
    RoomCommand::Join { user, password: None }
}

#[allow(dead_code)]
pub fn shared<T>(value: T) -> Arc<T> {
    Arc::new(value)
}
