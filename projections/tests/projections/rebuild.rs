//! Rebuilding a projection reproduces its tables exactly, whether the running
//! projector replays it or the rebuild does it alone.

use std::sync::Mutex;
use std::time::Duration;

use rapat_domain::ids::UserId;
use rapat_domain::room::RoomEvent;
use rapat_projections::projector::load_checkpoint;
use rapat_projections::{Projection, RebuildProgress, rebuild};
use serde_json::Value;

use crate::story;
use crate::support::TestEnv;

/// Every read-model table in a stable order.
async fn snapshot(env: &TestEnv) -> Vec<(&'static str, Value)> {
    let tables = [
        ("users", "t.id"),
        ("sessions", "t.id"),
        ("contacts", "t.owner_id, t.contact_id"),
        ("rooms", "t.id"),
        ("participants", "t.id"),
        ("audit_events", "t.event_id"),
    ];
    let mut snapshot = Vec::new();
    for (table, order) in tables {
        snapshot.push((table, env.table(table, order).await));
    }
    snapshot
}

async fn rebuild_one(env: &TestEnv, projection: Projection) -> rapat_projections::RebuildReport {
    let seen = Mutex::new(Vec::<RebuildProgress>::new());
    let report = rebuild(&env.pool, &env.jetstream, &env.config, projection, |progress| {
        seen.lock().expect("not poisoned").push(progress);
    })
    .await
    .expect("rebuilds");
    let seen = seen.into_inner().expect("not poisoned");
    let last = seen.last().expect("progress was reported");
    assert_eq!(last.applied_sequence, report.target_sequence);
    assert!(seen.iter().all(|progress| progress.target_sequence == report.target_sequence));
    let checkpoint = load_checkpoint(&env.pool, projection).await.expect("reads");
    assert!(checkpoint.last_sequence >= report.target_sequence);
    eprintln!(
        "rebuild {projection}: {} events in {:?} ({:.0} events/s)",
        report.events, report.elapsed, report.events_per_second
    );
    report
}

#[tokio::test]
async fn rebuilt_tables_equal_the_originals() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    // Some volume, so the replay spans many batches.
    let room = story.review.as_uuid();
    for _ in 0..1500 {
        let user = UserId::new_random();
        env.append("room", room, &[RoomEvent::ParticipantJoined { user_id: user }]).await;
    }
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(60)).await;
    let before = snapshot(&env).await;

    // While the projector runs, the active instance does the replay.
    let rooms = rebuild_one(&env, Projection::Rooms).await;
    assert_eq!(rooms.events, 20 + 1500);
    let audit = rebuild_one(&env, Projection::Audit).await;
    assert_eq!(audit.events, story.events as u64 + 1500);
    projector.stop().await;
    // With no projector running, the rebuild replays by itself.
    for projection in [Projection::Accounts, Projection::Sessions, Projection::Contacts, Projection::Rooms] {
        rebuild_one(&env, projection).await;
    }

    let after = snapshot(&env).await;
    for ((table, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(old, new, "{table} differs after the rebuild");
    }
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
}
