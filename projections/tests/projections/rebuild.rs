//! Rebuilding a projection reproduces its tables exactly, whether a projector runs
//! or not, and while events keep coming: the new read model is built aside and
//! swapped in, so readers never see it empty.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rapat_domain::ids::UserId;
use rapat_domain::room::RoomEvent;
use rapat_projections::projector::load_checkpoint;
use rapat_projections::{Projection, RebuildError, RebuildProgress, RebuildReport, rebuild};
use rapat_testkit::eventually_async;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::story;
use crate::support::TestEnv;

/// Every read-model table, and the parked messages, in a stable order.
async fn snapshot(env: &TestEnv) -> Vec<(&'static str, Value)> {
    let tables = [
        ("users", "t.id"),
        ("sessions", "t.id"),
        ("contacts", "t.owner_id, t.contact_id"),
        ("rooms", "t.id"),
        ("participants", "t.id"),
        ("audit_events", "t.event_id"),
        ("analytics_room_days", "t.room_id, t.day"),
        ("analytics_room_participants", "t.room_id, t.day, t.user_id"),
        ("analytics_open_stays", "t.room_id, t.user_id"),
        ("analytics_open_meetings", "t.room_id"),
    ];
    let mut snapshot = Vec::new();
    for (table, order) in tables {
        snapshot.push((table, env.table(table, order).await));
    }
    snapshot
}

/// The names of everything the migrations created in `public`, which later
/// migrations may refer to: a rebuild must leave them as they were.
async fn schema_names(env: &TestEnv) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relkind::text || ' ' || c.relname::text FROM pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace \
         UNION ALL SELECT 'constraint ' || conname::text FROM pg_constraint \
         WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT 'schema ' || nspname::text FROM pg_namespace WHERE nspname LIKE 'rebuild_%' \
         ORDER BY 1",
    )
    .fetch_all(&env.pool)
    .await
    .expect("reads the catalog")
}

async fn rebuild_one(env: &TestEnv, projection: Projection) -> RebuildReport {
    rebuild_one_watching(env, projection, |_| {}).await
}

/// [`rebuild_one`], calling `on_progress` with each progress report as it comes.
async fn rebuild_one_watching(
    env: &TestEnv,
    projection: Projection,
    on_progress: impl Fn(&RebuildProgress) + Sync,
) -> RebuildReport {
    let seen = Mutex::new(Vec::<RebuildProgress>::new());
    let report = rebuild(&env.pool, &env.jetstream, &env.config, projection, |progress| {
        on_progress(&progress);
        seen.lock().expect("not poisoned").push(progress);
    })
    .await
    .expect("rebuilds");
    let seen = seen.into_inner().expect("not poisoned");
    let last = seen.last().expect("progress was reported");
    assert_eq!(last.applied_sequence, report.switched_at_sequence);
    assert!(report.switched_at_sequence >= report.target_sequence);
    assert!(seen.iter().all(|progress| progress.target_sequence == report.target_sequence));
    let checkpoint = load_checkpoint(&env.pool, projection).await.expect("reads");
    assert!(checkpoint.last_sequence >= report.switched_at_sequence);
    eprintln!(
        "rebuild {projection}: {} events in {:?} ({:.0} events/s)",
        report.events, report.elapsed, report.events_per_second
    );
    report
}

async fn join(env: &TestEnv, room: Uuid) {
    env.append("room", room, &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }]).await;
}

#[tokio::test]
async fn rebuilt_tables_equal_the_originals() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    // Some volume, so the replay spans many batches.
    let room = story.review.as_uuid();
    for _ in 0..1500 {
        join(&env, room).await;
    }
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(60)).await;
    let before = snapshot(&env).await;
    let names = schema_names(&env).await;

    // While the projector runs.
    let rooms = rebuild_one(&env, Projection::Rooms).await;
    assert_eq!(rooms.events, 20 + 1500);
    assert_eq!(rooms.switched_at_sequence, rooms.target_sequence);
    let audit = rebuild_one(&env, Projection::Audit).await;
    assert_eq!(audit.events, story.events as u64 + 1500);
    projector.stop().await;
    // With no projector running, the rebuild switches on its own.
    for projection in Projection::ALL {
        rebuild_one(&env, projection).await;
    }

    let after = snapshot(&env).await;
    for ((table, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(old, new, "{table} differs after the rebuild");
    }
    assert_eq!(schema_names(&env).await, names, "tables, indexes, constraints or sequences were renamed");
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
}

/// How often the writer appends while the rebuilds run (50 events/s).
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

// Several threads: the rooms rebuild holds its own while the live projector applies
// a write past the rebuild's target (see `hold_until_the_live_checkpoint_passes`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_while_writes_continue_keeps_serving_and_matches_a_fresh_build() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    let room = story.review.as_uuid();
    for _ in 0..2000 {
        join(&env, room).await;
    }
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(60)).await;
    let names = schema_names(&env).await;
    let rooms_before = env.count("SELECT count(*) FROM rooms").await;
    let participants_before = env.count("SELECT count(*) FROM participants").await;
    let audit_before = env.count("SELECT count(*) FROM audit_events").await;

    // Three futures on this task: the rebuilds, a writer appending joins that the
    // live projector applies meanwhile, and a reader that must never see the read
    // models shrink (nor fail) while the tables are replaced under it.
    let done = CancellationToken::new();
    // The rooms switch must find the live checkpoint past its target, or there is
    // nothing to catch up with at the switch. Whether the writer and the live
    // projector get there before the replay ends is a race on a busy machine; so
    // the rebuild's first progress report waits until they have.
    let (gate_passed, gated_writes) = (AtomicBool::new(false), AtomicI64::new(0));
    let hold_until_the_live_checkpoint_passes = |progress: &RebuildProgress| {
        if gate_passed.swap(true, Ordering::SeqCst) {
            return;
        }
        let runtime = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            runtime.block_on(async {
                join(&env, room).await;
                gated_writes.fetch_add(1, Ordering::SeqCst);
                let target = progress.target_sequence;
                let what = format!("the live rooms checkpoint past the rebuild's target {target}");
                eventually_async(&what, Duration::from_secs(60), async || {
                    load_checkpoint(&env.pool, Projection::Rooms).await.expect("reads").last_sequence > target
                })
                .await;
            })
        });
    };
    let rebuilding = async {
        let mut reports =
            vec![rebuild_one_watching(&env, Projection::Rooms, hold_until_the_live_checkpoint_passes).await];
        for projection in [Projection::Audit, Projection::Analytics] {
            reports.push(rebuild_one(&env, projection).await);
        }
        done.cancel();
        reports
    };
    // A steady, modest write rate, well below what a replay applies: a writer that
    // outran the replay would make the rebuild chase the stream (the switch then
    // applies the whole gap with the projector held back), and how long that takes
    // would depend on how busy the machine is.
    let writing = async {
        let mut written = 0_i64;
        let mut pace = tokio::time::interval(WRITE_INTERVAL);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !done.is_cancelled() {
            pace.tick().await;
            join(&env, room).await;
            written += 1;
        }
        written
    };
    let reading = async {
        let mut reads = 0_u64;
        while !done.is_cancelled() {
            assert!(env.count("SELECT count(*) FROM rooms").await >= rooms_before, "rooms shrank during the rebuild");
            let participants = env.count("SELECT count(*) FROM participants").await;
            assert!(participants >= participants_before, "participants shrank to {participants} during the rebuild");
            let audit = env.count("SELECT count(*) FROM audit_events").await;
            assert!(audit >= audit_before, "audit_events shrank to {audit} during the rebuild");
            reads += 1;
        }
        reads
    };
    let (reports, written, reads) = tokio::join!(rebuilding, writing, reading);
    let written = written + gated_writes.load(Ordering::SeqCst);
    eprintln!("{written} events appended and {reads} reads made during the rebuilds");
    assert!(written > 0 && reads > 0);
    // The writes went on through the rebuild, so the switch found the live
    // checkpoint past where the rebuild began.
    let rooms = &reports[0];
    assert!(rooms.switched_at_sequence > rooms.target_sequence, "{rooms:?}");

    // The live projector keeps applying on the new tables.
    for _ in 0..10 {
        join(&env, room).await;
    }
    env.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(env.count("SELECT count(*) FROM participants").await, participants_before + written + 10);
    projector.stop().await;

    // Identical to every read model built from scratch from the same stream.
    let fresh = env.fresh_database_on_same_stream().await;
    let fresh_projector = fresh.spawn_projector(fresh.pool.clone());
    fresh.wait_caught_up(Duration::from_secs(60)).await;
    fresh_projector.stop().await;
    let (rebuilt, scratch) = (snapshot(&env).await, snapshot(&fresh).await);
    for ((table, rebuilt), (_, scratch)) in rebuilt.iter().zip(&scratch) {
        assert_eq!(rebuilt, scratch, "{table} differs from a build from scratch");
    }
    assert_eq!(schema_names(&env).await, names, "tables, indexes, constraints or sequences were renamed");
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
}

#[tokio::test]
async fn parked_messages_are_parked_again_once_and_a_leftover_shadow_is_replaced() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    let poison = env.publish("room", &story.review.as_uuid().to_string(), b"not a stored commit".to_vec()).await;
    join(&env, story.review.as_uuid()).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(60)).await;
    let parked = "SELECT count(*) FROM parked_events WHERE projection = 'rooms'";
    assert_eq!(env.count(parked).await, 1);
    let before = snapshot(&env).await;
    let stays_before = stays(&env).await;
    // What a rebuild that died half-way leaves behind.
    sqlx::raw_sql("CREATE SCHEMA rebuild_rooms; CREATE TABLE rebuild_rooms.rooms (junk int)")
        .execute(&env.pool)
        .await
        .expect("creates a leftover");

    rebuild_one(&env, Projection::Rooms).await;

    assert_eq!(env.count(parked).await, 1, "the poison message is parked exactly once");
    let sequence: i64 = sqlx::query_scalar("SELECT stream_sequence FROM parked_events WHERE projection = 'rooms'")
        .fetch_one(&env.pool)
        .await
        .expect("reads");
    assert_eq!(sequence as u64, poison);
    // The analytics projection parked the same message; its row is left alone.
    assert_eq!(env.count("SELECT count(*) FROM parked_events WHERE projection = 'analytics'").await, 1);
    projector.stop().await;
    let after = snapshot(&env).await;
    for ((table, old), (_, new)) in before.iter().zip(&after) {
        // `participants.id` comes from a sequence, which a rolled-back attempt at a
        // poisoned batch still advances: the ids depend on where batches began,
        // in the live projector and in the rebuild alike. Compared without it below.
        if *table != "participants" {
            assert_eq!(old, new, "{table} differs after the rebuild");
        }
    }
    assert_eq!(stays(&env).await, stays_before, "participants differ after the rebuild");
}

/// Every participant row but its surrogate id.
async fn stays(env: &TestEnv) -> Value {
    let columns =
        "room_id, user_id, joined_at, left_at, left_reason, audio_muted, video_on, screen_sharing, muted_by_host";
    env.table(&format!("(SELECT {columns} FROM participants)"), "t.room_id, t.user_id, t.joined_at").await
}

#[tokio::test]
async fn a_second_rebuild_of_the_same_projection_is_refused_while_one_runs() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    for _ in 0..2000 {
        join(&env, story.review.as_uuid()).await;
    }
    let before = snapshot(&env).await;
    let run = || rebuild(&env.pool, &env.jetstream, &env.config, Projection::Rooms, |_| {});
    let (first, second) = tokio::join!(run(), run());
    let refused = [&first, &second]
        .iter()
        .filter(|outcome| matches!(outcome, Err(RebuildError::AlreadyRunning(Projection::Rooms))))
        .count();
    assert_eq!(refused, 1, "{first:?} / {second:?}");
    assert!(first.is_ok() || second.is_ok());
    // Nothing ran the projector: the rebuild alone built the read model.
    assert_ne!(snapshot(&env).await, before);
    assert!(env.count("SELECT count(*) FROM participants").await > 2000);
    let (_, target) = env.targets().into_iter().find(|(p, _)| *p == Projection::Rooms).expect("rooms");
    assert_eq!(load_checkpoint(&env.pool, Projection::Rooms).await.expect("reads").last_sequence, target);
}

// The live projector applies room events one at a time, the rebuild a batch at a
// time: a hand-made history that rejoins, joins twice (which the aggregate never
// does: the stay's id is drawn and nothing inserted), is muted by the host and
// ends must leave the same rows, stay ids included.
#[tokio::test]
async fn rooms_rebuilt_in_batches_equal_rooms_applied_event_by_event() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    let room = story.review.as_uuid();
    let (ann, bob) = (UserId::new_random(), UserId::new_random());
    let history = [
        RoomEvent::ParticipantJoined { user_id: ann },
        RoomEvent::ParticipantJoined { user_id: bob },
        RoomEvent::ParticipantJoined { user_id: ann },
        RoomEvent::ParticipantMutedByHost { user_id: bob, muted_by: ann },
        RoomEvent::ParticipantAudioChanged { user_id: bob, muted: true },
        RoomEvent::ParticipantLeft { user_id: ann },
        RoomEvent::ParticipantJoined { user_id: ann },
        RoomEvent::ParticipantVideoChanged { user_id: ann, on: true },
        RoomEvent::ParticipantRemoved { user_id: bob, removed_by: ann },
        RoomEvent::ParticipantJoined { user_id: bob },
        RoomEvent::ParticipantScreenShareChanged { user_id: bob, sharing: true },
        RoomEvent::RoomEnded {},
    ];
    for event in history {
        env.append("room", room, &[event]).await;
    }
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(60)).await;
    projector.stop().await;
    let tables = [("rooms", "t.id"), ("participants", "t.id")];
    let mut before = Vec::new();
    for (table, order) in tables {
        before.push(env.table(table, order).await);
    }
    let ended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM participants WHERE user_id = ANY($1) AND left_reason = 'room_ended'")
            .bind(vec![ann.as_uuid(), bob.as_uuid()])
            .fetch_one(&env.pool)
            .await
            .expect("counts");
    assert_eq!(ended, 2, "ann's and bob's last stays");
    // The second join drew an id, as `INSERT ... ON CONFLICT DO NOTHING` did: a hole.
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM participants WHERE user_id = ANY($1) ORDER BY id")
        .bind(vec![ann.as_uuid(), bob.as_uuid()])
        .fetch_all(&env.pool)
        .await
        .expect("reads ids");
    let steps: Vec<i64> = ids.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert_eq!(steps, vec![1, 2, 1], "stay ids {ids:?}");

    rebuild_one(&env, Projection::Rooms).await;
    for ((table, order), old) in tables.iter().zip(&before) {
        assert_eq!(&env.table(table, order).await, old, "{table} differs after the rebuild");
    }
}
