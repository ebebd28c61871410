use rapat_commands::{CommandMetadata, StoreError};
use rapat_domain::account::{Account, Role};
use rapat_domain::ids::UserId;
use rapat_domain::room::{Room, RoomCommand};
use uuid::Uuid;

use crate::support::{TestStore, create_room, join};

/// An `AccountRegistered` written by schema version 1, before accounts had roles,
/// exactly as such a message sits in the stream.
const ACCOUNT_REGISTERED_V1: &str = include_str!("../fixtures/account_registered_v1.json");

#[tokio::test]
async fn a_version_1_event_still_loads_after_its_payload_gained_a_field() {
    let test = TestStore::new().await;
    let store = test.open::<Account>().await;
    let account_id = Uuid::new_v4().to_string();
    let body = ACCOUNT_REGISTERED_V1.replace("ACCOUNT_ID", &account_id);
    let subject = test.config.namespace.event_subject("account", &account_id);
    test.jetstream().publish(subject, body.into()).await.expect("sent").await.expect("stored");

    let loaded = store.load(&account_id).await.expect("the v1 event loads");
    let account = loaded.state.aggregate;
    assert!(account.is_registered());
    assert_eq!(account.email().map(|email| email.as_str().to_string()), Some("ayu@example.com".to_string()));
    assert_eq!(account.role(), Role::Member, "the upcaster gave the v1 account its default role");
    assert_eq!(loaded.state.version, 1);
}

#[tokio::test]
async fn a_snapshot_loaded_aggregate_equals_a_full_replay() {
    let test = TestStore::with_snapshots_every(50).await;
    let bus = test.room_bus().await;
    let (room_id, host) = create_room(&bus, 20).await;
    // 1 + 8 + 232 = 241 events: snapshots at 50, 100, 150, 200, then 41 more.
    let users: Vec<UserId> = (0..8).map(|_| UserId::new_random()).collect();
    for &user in &users {
        bus.execute(&room_id, join(user), CommandMetadata::system()).await.expect("joins");
    }
    for round in 0..232 {
        // Each (user, microphone or camera) pair comes up every 16 rounds and
        // flips, so every command appends an event.
        let user = users[(round / 2) % users.len()];
        let flip = (round / 16) % 2 == 0;
        let command = if round % 2 == 0 {
            RoomCommand::SetAudio { user, muted: flip }
        } else {
            RoomCommand::SetVideo { user, on: flip }
        };
        let outcome = bus.execute(&room_id, command, CommandMetadata::system()).await.expect("command runs");
        assert_eq!(outcome.events.len(), 1);
    }
    bus.execute(&room_id, RoomCommand::RemoveParticipant { actor: host, target: users[0] }, CommandMetadata::system())
        .await
        .expect("host removes a participant");

    let fresh = test.open::<Room>().await;
    let from_snapshot = fresh.load(&room_id).await.expect("loads from the snapshot");
    let replayed = fresh.replay(&room_id, None).await.expect("replays every event");
    assert_eq!(from_snapshot.state.aggregate, replayed.aggregate);
    assert_eq!(from_snapshot.state.version, replayed.version);
    assert_eq!(from_snapshot.state.subject_sequence, replayed.subject_sequence);

    let bucket = test.jetstream().get_key_value(test.config.namespace.snapshots_bucket()).await.expect("bucket");
    let snapshot = bucket.get(format!("room.{room_id}")).await.expect("reads").expect("a snapshot was written");
    let snapshot: serde_json::Value = serde_json::from_slice(&snapshot).expect("json");
    let snapshot_version = snapshot["version"].as_u64().expect("version");
    assert!(snapshot_version >= 200 && snapshot_version < replayed.version, "snapshot at {snapshot_version}");
}

#[tokio::test]
async fn an_unreadable_message_is_an_error_not_a_panic() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 5).await;
    let subject = test.config.namespace.event_subject("room", &room_id);
    let garbage = test.jetstream().publish(subject, "{not json".into()).await.expect("sent").await.expect("stored");

    let fresh = test.open::<Room>().await;
    match fresh.load(&room_id).await {
        Err(StoreError::Corrupt { sequence, .. }) => assert_eq!(sequence, garbage.sequence),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a garbage message was silently accepted"),
    }
    let invalid_id = fresh.load("room.with.dots").await;
    assert!(matches!(invalid_id, Err(StoreError::InvalidAggregateId(_))));
}
