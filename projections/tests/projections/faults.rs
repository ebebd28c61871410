//! The projector under faults: a stream that lost its tail or was replaced (the
//! read models are rebuilt from the stream, not skipped ahead), and a read database
//! that goes away and comes back (projecting resumes within about a second).

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::RoomEvent;
use rapat_projections::projector::load_checkpoint;
use rapat_projections::queries::checkpoints::stream_mismatches;
use rapat_projections::{Projection, ProjectionPositions, ProjectorConfig};
use rapat_testkit::{NatsServer, TcpProxy, eventually_async};
use serde_json::json;
use uuid::Uuid;

use crate::support::TestEnv;

/// Room commands (a creation and `joins` joins) appended to a new room: the room.
async fn room(env: &TestEnv, host: UserId, joins: usize) -> RoomId {
    let room = RoomId::new_random();
    let created = json!({"hostId": host, "name": "Faults", "description": "", "passwordHash": null,
        "maxUsers": 50, "scheduledAt": null});
    env.append_raw("room", room.as_uuid(), vec![("RoomCreated".into(), 1, created)]).await;
    for _ in 0..joins {
        env.append("room", room.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }]).await;
    }
    room
}

async fn account(env: &TestEnv) {
    let id = Uuid::new_v4();
    let registered = json!({"email": format!("{}@example.com", id.simple()), "passwordHash": "x", "firstName": "F",
        "lastName": "L", "role": "member"});
    env.append_raw("account", id, vec![("AccountRegistered".into(), 2, registered)]).await;
}

/// The ids in the rooms read model, sorted.
async fn room_ids(env: &TestEnv) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM rooms ORDER BY id").fetch_all(&env.pool).await.expect("reads rooms")
}

fn sorted(rooms: &[RoomId]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = rooms.iter().map(|room| room.as_uuid()).collect();
    ids.sort();
    ids
}

async fn stream_last_sequence(env: &TestEnv) -> u64 {
    let mut stream = env.jetstream.get_stream(env.config.namespace.events_stream()).await.expect("stream");
    stream.info().await.expect("stream info").state.last_sequence
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates the copy");
    for entry in std::fs::read_dir(from).expect("reads the store") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies a store file");
        }
    }
}

/// What an unsynced power loss does: NATS comes back with the stream as it was a
/// while ago, while the read models (in Postgres, which did sync) have applied the
/// lost tail. New events then get the lost events' sequences; they must reach the
/// read models, the lost events must leave them, and nothing may be applied twice.
#[tokio::test]
async fn a_stream_that_lost_its_tail_is_detected_and_the_read_models_rebuilt() {
    let mut nats = NatsServer::start().await;
    let mut env = TestEnv::on_nats(&nats.url()).await;
    env.config.stream_check = Duration::from_secs(1);
    let host = UserId::new_random();
    let projector = env.spawn_projector(env.pool.clone());

    // Kept: 3 accounts and 4 rooms of 3 joins.
    for _ in 0..3 {
        account(&env).await;
    }
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(room(&env, host, 3).await);
    }
    env.wait_caught_up(Duration::from_secs(30)).await;
    let kept_at = stream_last_sequence(&env).await;
    let created =
        env.jetstream.get_stream(env.config.namespace.events_stream()).await.expect("stream").cached_info().created;

    // The store as it is now is what the "power loss" will bring back.
    nats.kill();
    let store = nats.store_dir();
    let aside = store.with_file_name("jetstream-aside");
    copy_dir(&store, &aside);
    nats.restart().await;
    let mut stream =
        env.jetstream.get_stream(env.config.namespace.events_stream()).await.expect("stream after a restart");
    assert_eq!(stream.info().await.expect("info").created, created, "a restart keeps the stream's creation time");

    // Lost: an account and 3 rooms of 4 joins, applied by the read models.
    account(&env).await;
    let mut lost = Vec::new();
    for _ in 0..3 {
        lost.push(room(&env, host, 4).await);
    }
    env.wait_caught_up(Duration::from_secs(30)).await;
    let lost_at = stream_last_sequence(&env).await;
    assert_eq!(room_ids(&env).await.len(), 7);
    let none: Vec<String> = Vec::new();
    assert_eq!(stream_mismatches(&env.pool).await.expect("reads"), none, "a clean NATS restart is no mismatch");

    // The power loss: the stream comes back without its tail.
    nats.kill();
    std::fs::remove_dir_all(&store).expect("removes the store");
    std::fs::rename(&aside, &store).expect("puts the old store back");
    // Hold the rooms rebuild before its switch (which needs the table exclusively),
    // to see how the mismatch looks from outside while it lasts.
    let mut reader = env.pool.begin().await.expect("begins");
    sqlx::query("LOCK TABLE rooms IN ACCESS SHARE MODE").execute(&mut *reader).await.expect("locks");
    nats.restart().await;
    assert_eq!(stream_last_sequence(&env).await, kept_at, "the stream lost its tail");
    let positions = ProjectionPositions::start(env.second_pool().await);

    eventually_async("the rooms projection reports the mismatch", Duration::from_secs(30), async || {
        stream_mismatches(&env.pool).await.expect("reads").contains(&"rooms".to_owned())
    })
    .await;
    eventually_async("read-your-writes stops trusting the stale position", Duration::from_secs(10), async || {
        positions.current().get(Projection::Rooms).is_none()
    })
    .await;
    // New events take the lost events' sequences: a wait for one is not released
    // by the stale checkpoint (which is past it).
    let first_new = room(&env, host, 2).await;
    let first_new_at = stream_last_sequence(&env).await;
    assert!(first_new_at <= lost_at, "the new room reuses a lost sequence");
    let waited = positions.wait_for(&[Projection::Rooms], first_new_at, Duration::from_millis(500)).await;
    assert!(waited.is_err(), "released by a checkpoint of lost events");
    reader.rollback().await.expect("releases the rooms table");

    // More new events, well past the lost tail, and an account.
    let mut new = vec![first_new];
    for _ in 0..6 {
        new.push(room(&env, host, 2).await);
    }
    account(&env).await;
    assert!(stream_last_sequence(&env).await > lost_at);
    positions
        .wait_for(&[Projection::Rooms], first_new_at, Duration::from_secs(30))
        .await
        .expect("the rebuilt rooms projection reaches the new room");
    env.wait_caught_up(Duration::from_secs(30)).await;

    let expected = sorted(&[kept.clone(), new.clone()].concat());
    eventually_async("the rooms read model holds exactly the stream's rooms", Duration::from_secs(30), async || {
        room_ids(&env).await == expected
    })
    .await;
    eventually_async("every mismatch is repaired", Duration::from_secs(30), async || {
        stream_mismatches(&env.pool).await.expect("reads").is_empty()
    })
    .await;
    // Nothing twice, nothing lost: every event in the stream once in the audit
    // trail, each room with its joins, the accounts that survived plus the new one.
    let events_in_stream = 3 + 4 * (1 + 3) + 7 * (1 + 2) + 1;
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, events_in_stream);
    assert_eq!(
        env.count("SELECT count(DISTINCT (stream_sequence, aggregate_version)) FROM audit_events").await,
        events_in_stream
    );
    assert_eq!(env.count("SELECT coalesce(sum(participant_count), 0)::bigint FROM rooms").await, 4 * 3 + 7 * 2);
    assert_eq!(env.count("SELECT count(*) FROM participants").await, 4 * 3 + 7 * 2);
    assert_eq!(env.count("SELECT count(*) FROM users").await, 4);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
    let last = stream_last_sequence(&env).await;
    let audit = load_checkpoint(&env.pool, Projection::Audit).await.expect("reads");
    assert_eq!(audit.last_sequence, last);
    assert!(audit.last_message.is_some(), "the checkpoint records the message it stands for");
    projector.stop().await;
}

/// A stream deleted and created again (same name, sequences from 1): the read
/// models are rebuilt from the new stream.
#[tokio::test]
async fn a_replaced_stream_is_detected_and_the_read_models_rebuilt() {
    let mut env = TestEnv::new().await;
    env.config.stream_check = Duration::from_secs(1);
    let host = UserId::new_random();
    let projector = env.spawn_projector(env.pool.clone());
    account(&env).await;
    for _ in 0..5 {
        room(&env, host, 3).await;
    }
    env.wait_caught_up(Duration::from_secs(30)).await;

    let config = env
        .jetstream
        .get_stream(env.config.namespace.events_stream())
        .await
        .expect("stream")
        .cached_info()
        .config
        .clone();
    env.jetstream.delete_stream(env.config.namespace.events_stream()).await.expect("deletes the stream");
    env.jetstream.create_stream(stream::Config { ..config }).await.expect("creates it again");
    let mut new = Vec::new();
    for _ in 0..2 {
        new.push(room(&env, host, 1).await);
    }
    account(&env).await;
    assert!(stream_last_sequence(&env).await < 20, "the new stream starts again at 1");

    let expected = sorted(&new);
    eventually_async("the rooms read model holds the new stream's rooms", Duration::from_secs(30), async || {
        room_ids(&env).await == expected
    })
    .await;
    eventually_async("the audit trail holds the new stream's events", Duration::from_secs(30), async || {
        env.count("SELECT count(*) FROM audit_events").await == 2 * 2 + 1
            && stream_mismatches(&env.pool).await.expect("reads").is_empty()
    })
    .await;
    assert_eq!(env.count("SELECT count(*) FROM users").await, 1);
    projector.stop().await;
}

/// `url` with its `host:port` replaced by `address`.
fn through(url: &str, address: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    format!("{scheme}://{user}{address}/{path}")
}

/// Postgres unreachable for a few seconds while events are written: once it is
/// back, every projection catches up within about a second.
#[tokio::test]
async fn projections_resume_within_a_second_of_the_database_returning() {
    let mut env = TestEnv::new().await;
    // What ships, not the shorter pause the other tests use.
    env.config.max_backoff = ProjectorConfig::for_namespace(env.config.namespace.clone()).max_backoff;
    let upstream = env.database_url.split_once('@').and_then(|(_, rest)| rest.split_once('/')).expect("host").0;
    let proxy = TcpProxy::start(upstream).await;
    let pool = rapat_projections::connect(&through(&env.database_url, proxy.address())).await.expect("connects");
    let projector = env.spawn_projector(pool);
    let host = UserId::new_random();
    room(&env, host, 2).await;
    account(&env).await;
    env.wait_caught_up(Duration::from_secs(30)).await;

    proxy.cut();
    let cut_until = Instant::now() + Duration::from_secs(8);
    let mut rooms = 1;
    while Instant::now() < cut_until {
        room(&env, host, 2).await;
        rooms += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    account(&env).await;
    proxy.restore();
    let restored = Instant::now();
    env.wait_caught_up(Duration::from_secs(30)).await;
    let caught_up = restored.elapsed();
    println!("every projection caught up {caught_up:?} after the database returned ({rooms} rooms)");
    assert!(caught_up < Duration::from_millis(1500), "caught up only {caught_up:?} after the database returned");
    assert_eq!(env.count("SELECT count(*) FROM rooms").await, rooms);
    assert_eq!(env.count("SELECT count(*) FROM participants").await, 2 * rooms);
    projector.stop().await;
}
