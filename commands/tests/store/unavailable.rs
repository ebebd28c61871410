use std::time::{Duration, Instant};

use rapat_commands::{CommandMetadata, StoreError};
use rapat_domain::ids::UserId;

use crate::support::{TestStore, create_room, join};

#[tokio::test]
async fn an_unreachable_nats_is_a_clear_error_not_a_hang() {
    let started = Instant::now();
    // Port 1 on loopback: nothing listens there.
    let result = rapat_commands::connect("nats://127.0.0.1:1").await;
    assert!(started.elapsed() < Duration::from_secs(10), "gave up in {:?}", started.elapsed());
    match result {
        Err(StoreError::Unavailable { reason }) => assert!(reason.contains("127.0.0.1:1"), "{reason}"),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected to a port nobody listens on"),
    }
}

#[tokio::test]
async fn a_missing_stream_makes_commands_fail_as_unavailable() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 5).await;
    // The stream disappears under a running bus (an operator error, a lost node).
    test.jetstream().delete_stream(test.config.namespace.events_stream()).await.expect("deleted");

    let started = Instant::now();
    let result = bus.execute(&room_id, join(UserId::new_random()), CommandMetadata::system()).await;
    assert!(started.elapsed() < Duration::from_secs(10), "gave up in {:?}", started.elapsed());
    let error = result.expect_err("no stream, no command");
    assert!(error.is_unavailable(), "expected a 503-able error, got {error:?}");
}
