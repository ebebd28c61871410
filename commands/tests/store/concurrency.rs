use std::sync::Arc;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use rapat_commands::{CommandError, CommandMetadata, JetStreamEventStore, StoreError};
use rapat_domain::ids::UserId;
use rapat_domain::room::{Room, RoomError};

use crate::support::{TestStore, create_room, join, test_services};

/// Loads the room, decides `join(user)` on it and returns the loaded context and
/// the events, without appending: a writer frozen just before its commit.
async fn decide_join(
    store: &JetStreamEventStore<Room>,
    room_id: &str,
    user: UserId,
) -> (rapat_commands::Loaded<Room>, Vec<<Room as Aggregate>::Event>) {
    let mut loaded = store.load(room_id).await.expect("loads");
    let sink = EventSink::default();
    loaded.state.aggregate.handle(join(user), &test_services(), &sink).await.expect("join is allowed");
    (loaded, sink.collect().await)
}

#[tokio::test]
async fn of_two_writers_on_one_aggregate_exactly_one_wins() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 10).await;
    let (left, right) = (test.open::<Room>().await, test.open::<Room>().await);

    let (left_loaded, left_events) = decide_join(&left, &room_id, UserId::new_random()).await;
    let (right_loaded, right_events) = decide_join(&right, &room_id, UserId::new_random()).await;
    let expected = left_loaded.state.subject_sequence;

    let first = left.append(left_loaded, &left_events, &CommandMetadata::system()).await;
    let second = right.append(right_loaded, &right_events, &CommandMetadata::system()).await;
    assert!(first.is_ok(), "the first append wins: {first:?}");
    assert!(
        matches!(second, Err(StoreError::Conflict { expected: e }) if e == expected),
        "the second sees the typed conflict: {second:?}"
    );
    let loaded = test.open::<Room>().await.load(&room_id).await.expect("loads");
    assert_eq!(loaded.state.version, 2);
    assert_eq!(loaded.state.aggregate.participant_count(), 1);
}

#[tokio::test]
async fn fifty_concurrent_joins_fill_ten_seats_exactly() {
    let test = TestStore::new().await;
    // Two buses with separate connections and caches race like two gateways do.
    let gateways = [Arc::new(test.room_bus().await), Arc::new(test.room_bus().await)];
    let (room_id, _host) = create_room(&gateways[0], 10).await;

    let mut joins = Vec::new();
    for n in 0..50 {
        let bus = Arc::clone(&gateways[n % 2]);
        let room_id = room_id.clone();
        joins.push(tokio::spawn(async move {
            bus.execute(&room_id, join(UserId::new_random()), CommandMetadata::system()).await
        }));
    }
    let (mut joined, mut full) = (0, 0);
    for handle in joins {
        match handle.await.expect("task completes") {
            Ok(outcome) => {
                assert_eq!(outcome.events.len(), 1);
                joined += 1;
            }
            Err(CommandError::Rejected(RoomError::Full)) => full += 1,
            Err(other) => panic!("a join failed for a reason other than a full room: {other:?}"),
        }
    }
    assert_eq!((joined, full), (10, 40));

    let commits = gateways[0].store().read_events(&room_id).await.expect("reads");
    let versions: Vec<u64> =
        commits.iter().flat_map(|(_, commit)| commit.events.iter().map(|e| e.aggregate_version)).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<_>>(), "versions are gap-free");
    let loaded = test.open::<Room>().await.load(&room_id).await.expect("loads");
    assert_eq!(loaded.state.aggregate.participant_count(), 10);
}

#[tokio::test]
async fn the_same_command_id_is_stored_once() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 10).await;
    let (first, retry) = (test.open::<Room>().await, test.open::<Room>().await);
    let user = UserId::new_random();
    let metadata = CommandMetadata::system();

    // Both load the same state; the first append is acknowledged, the second is
    // the same command sent again (say, after a lost acknowledgement).
    let (loaded, events) = decide_join(&first, &room_id, user).await;
    let (retried_loaded, retried_events) = decide_join(&retry, &room_id, user).await;
    let stored = first.append(loaded, &events, &metadata).await.expect("stored");
    let again = retry.append(retried_loaded, &retried_events, &metadata).await.expect("acknowledged");
    assert!(!stored.duplicate);
    assert!(again.duplicate, "the server recognised the command id");
    assert_eq!(again.stream_sequence, stored.stream_sequence);

    let commits = bus.store().read_events(&room_id).await.expect("reads");
    assert_eq!(commits.len(), 2, "create + one join, not two");
    let info =
        test.jetstream().get_stream(test.config.namespace.events_stream()).await.expect("stream").cached_info().clone();
    assert_eq!(info.state.messages, 2);
}
