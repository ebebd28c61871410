//! Read-your-writes: waiting for the projections to reach a stream position.

use std::time::Duration;

use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomEvent;
use rapat_projections::queries::rooms;
use rapat_projections::{Projection, ProjectionPositions};
use serde_json::json;

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
