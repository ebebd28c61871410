//! Read-your-writes: waiting for the projections to reach a stream position.

use std::time::Duration;

use futures::FutureExt as _;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomEvent;
use rapat_projections::projector::CHECKPOINT_CHANNEL;
use rapat_projections::queries::rooms;
use rapat_projections::{Projection, ProjectionPositions};
use rapat_testkit::eventually;
use serde_json::json;
use sqlx::postgres::PgListener;

use crate::support::TestEnv;

#[tokio::test]
async fn writers_can_wait_for_their_writes() {
    let env = TestEnv::new().await;
    let positions_pool = env.second_pool().await;
    let positions = ProjectionPositions::start(positions_pool.clone());

    let host = UserId::new_random();
    let room = RoomId::new_random();
    let created = json!({"hostId": host, "name": "Wait", "description": "", "maxUsers": 10});
    let sequence = env.append_raw("room", room.as_uuid(), vec![("RoomCreated".into(), 1, created)]).await;

    // Nobody projects yet: the wait times out.
    let waited = positions.wait_for(&[Projection::Rooms], sequence, Duration::from_millis(300)).await;
    let timeout = waited.expect_err("nothing projects the stream yet");
    assert_eq!(timeout.stream_sequence, sequence);

    let projector = env.spawn_projector(env.pool.clone());
    positions
        .wait_for(&[Projection::Rooms, Projection::Audit], sequence, Duration::from_secs(10))
        .await
        .expect("the projector catches up");
    assert!(rooms::by_id(&env.pool, room).await.expect("query").is_some(), "the write is visible");

    // Each write is visible as soon as the wait returns.
    for expected in 1..=20 {
        let joined = RoomEvent::ParticipantJoined { user_id: UserId::new_random() };
        let sequence = env.append("room", room.as_uuid(), &[joined]).await;
        positions.wait_for(&[Projection::Rooms], sequence, Duration::from_secs(10)).await.expect("catches up");
        let row = rooms::by_id(&env.pool, room).await.expect("query").expect("exists");
        assert_eq!(row.participant_count, expected);
    }
    assert!(positions.current().get(Projection::Rooms) >= Some(sequence));

    // Caught up, a wait costs no database round trip: it works with the pool closed.
    positions_pool.close().await;
    positions.wait_for(&[Projection::Rooms], sequence, Duration::from_millis(1)).await.expect("already there");
    projector.stop().await;
}

/// Each committed batch announces its checkpoint (after the commit, outside it): a
/// listener hears the position once the read model shows the write.
#[tokio::test]
async fn a_committed_batch_announces_its_checkpoint() {
    let env = TestEnv::new().await;
    let mut listener = PgListener::connect_with(&env.pool).await.expect("connects");
    listener.listen(CHECKPOINT_CHANNEL).await.expect("listens");
    let projector = env.spawn_projector(env.pool.clone());
    let room = RoomId::new_random();
    let created = json!({"hostId": UserId::new_random(), "name": "Heard", "description": "", "maxUsers": 10});
    let sequence = env.append_raw("room", room.as_uuid(), vec![("RoomCreated".into(), 1, created)]).await;
    let expected = format!("rooms:{sequence}");
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let notification = listener.recv().await.expect("a notification");
            if notification.payload() == expected {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "no {expected} announced");
    assert!(rooms::by_id(&env.pool, room).await.expect("query").is_some(), "announced before it was visible");
    projector.stop().await;
}

/// A checkpoint can go backwards: a stream that lost its tail leaves it past events
/// that will be written again with the same sequences, and the rebuild leaves it
/// lower. A wait for one of those sequences is released by neither the stale
/// checkpoint nor the lower rebuilt one, only by the projection reaching it.
#[tokio::test]
async fn a_checkpoint_marked_mismatched_or_moved_back_releases_no_wait_early() {
    let env = TestEnv::new().await;
    let positions = ProjectionPositions::start(env.second_pool().await);
    let set = async |sql: &'static str| {
        sqlx::query(sql).execute(&env.pool).await.expect("updates the checkpoint");
    };
    // The follower applies a change a moment after it is committed.
    let seen = async |expected: Option<u64>| {
        let what = format!("the positions to show {expected:?}");
        eventually(&what, Duration::from_secs(10), || positions.current().get(Projection::Rooms) == expected).await;
    };
    set("INSERT INTO projection_checkpoints (projection, last_sequence) VALUES ('rooms', 270)").await;
    positions.wait_for(&[Projection::Rooms], 270, Duration::from_secs(10)).await.expect("at 270");

    // The projector found the stream ends before 270 (notified as it does).
    set("UPDATE projection_checkpoints SET stream_mismatch = 'lost tail' WHERE projection = 'rooms'").await;
    set("SELECT pg_notify('rapat_checkpoints', 'rooms:mismatch')").await;
    seen(None).await;
    let waited = positions.wait_for(&[Projection::Rooms], 250, Duration::from_millis(500)).await;
    assert!(waited.is_err(), "a wait for 250 was released by the stale 270");
    assert_eq!(positions.current().get(Projection::Rooms), None);

    // Rebuilt from the stream as far as it goes: 245.
    set("UPDATE projection_checkpoints SET last_sequence = 245, stream_mismatch = NULL WHERE projection = 'rooms'")
        .await;
    set("SELECT pg_notify('rapat_checkpoints', 'rooms:245')").await;
    seen(Some(245)).await;
    let waited = positions.wait_for(&[Projection::Rooms], 250, Duration::from_millis(500)).await;
    assert!(waited.is_err(), "a wait for 250 was released at 245");
    assert_eq!(positions.current().get(Projection::Rooms), Some(245));

    // A wait already under way when the projection moves on to 250.
    let mut reached = std::pin::pin!(positions.wait_for(&[Projection::Rooms], 250, Duration::from_secs(10)));
    assert!(reached.as_mut().now_or_never().is_none(), "a wait for 250 was released at 245");
    set("UPDATE projection_checkpoints SET last_sequence = 250 WHERE projection = 'rooms'").await;
    reached.await.expect("released once the projection reaches 250");
}
