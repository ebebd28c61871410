//! The projector's guarantees: exactly-once application across redeliveries,
//! restarts, crashes and two instances; poison messages parked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::inbox::InboxEvent;
use rapat_domain::room::RoomEvent;
use rapat_projections::Projection;
use rapat_projections::projector::load_checkpoint;
use serde_json::json;
use sqlx::Row;

use crate::story;
use crate::support::TestEnv;

/// Creates a room and has `users` join it; returns the room.
async fn room_with(env: &TestEnv, host: UserId, users: &[UserId]) -> RoomId {
    let room = RoomId::new_random();
    let created = serde_json::json!({"hostId": host, "name": "Load", "description": "", "passwordHash": null,
        "maxUsers": 500, "scheduledAt": null});
    env.append_raw("room", room.as_uuid(), vec![("RoomCreated".into(), 1, created)]).await;
    for user in users {
        env.append("room", room.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: *user }]).await;
    }
    room
}

async fn participant_count(env: &TestEnv, room: RoomId) -> i32 {
    sqlx::query_scalar("SELECT participant_count FROM rooms WHERE id = $1")
        .bind(room.as_uuid())
        .fetch_one(&env.pool)
        .await
        .expect("room exists")
}

#[tokio::test]
async fn redelivered_messages_and_restarts_apply_once() {
    let mut env = TestEnv::new().await;
    // Short enough that JetStream redelivers while a batch is held up below.
    env.config.ack_wait = Duration::from_secs(1);
    let story = story::tell(&env).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;

    // Hold the rooms checkpoint so the next batch cannot commit, until JetStream has
    // given up on its acks and delivered the messages again.
    let mut holder = env.pool.begin().await.expect("begins");
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = 'rooms' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("locks");
    let users: Vec<UserId> = (0..20).map(|_| UserId::new_random()).collect();
    let room = room_with(&env, story.ana, &users).await;
    let jetstream_stream = env.jetstream.get_stream(env.config.namespace.events_stream()).await.expect("stream");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            jetstream_stream.get_consumer(&env.config.consumer_name(Projection::Rooms)).await.expect("consumer");
        if consumer.info().await.expect("info").num_redelivered > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "JetStream never redelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.rollback().await.expect("releases");
    env.wait_caught_up(Duration::from_secs(20)).await;
    assert_eq!(participant_count(&env, room).await, 20);
    let stays: i64 = sqlx::query_scalar("SELECT count(*) FROM participants WHERE room_id = $1")
        .bind(room.as_uuid())
        .fetch_one(&env.pool)
        .await
        .expect("counts");
    assert_eq!(stays, 20);

    // A clean restart, then a crash, each followed by more events.
    projector.stop().await;
    let late = UserId::new_random();
    env.append("room", room.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: late }]).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    projector.kill().await;
    env.append("room", room.as_uuid(), &[RoomEvent::ParticipantLeft { user_id: late }]).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;

    assert_eq!(participant_count(&env, room).await, 20);
    let all_events = story.events as i64 + 1 + 20 + 2;
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, all_events);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
    projector.stop().await;
}

#[tokio::test]
async fn poison_messages_are_parked_and_stepped_over() {
    let env = TestEnv::new().await;
    let host = UserId::new_random();
    let room = room_with(&env, host, &[host]).await;
    let garbage = env.publish("room", &room.to_string(), b"\x00 not json at all".to_vec()).await;
    let misfit = env
        .append_raw("room", room.as_uuid(), vec![("ParticipantJoined".into(), 1, json!({"userId": "not-a-uuid"}))])
        .await;
    let future = env
        .append_raw(
            "room",
            room.as_uuid(),
            vec![("ParticipantJoined".into(), 9, json!({"userId": UserId::new_random()}))],
        )
        .await;
    for _ in 0..3 {
        env.append("room", room.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }]).await;
    }
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;

    assert_eq!(participant_count(&env, room).await, 4, "the host and the three good joins");
    let parked = sqlx::query(
        "SELECT projection, stream_sequence, error FROM parked_events ORDER BY projection, stream_sequence",
    )
    .fetch_all(&env.pool)
    .await
    .expect("reads parked");
    let parked: Vec<(String, i64)> =
        parked.iter().map(|row| (row.get::<String, _>("projection"), row.get::<i64, _>("stream_sequence"))).collect();
    let at = |projection: &str, sequence: u64| (projection.to_owned(), sequence as i64);
    // The audit trail keeps the misfit and the future event (they are well-formed
    // stored events); only the garbage has no event to record. Analytics reads room
    // events as the rooms read model does, so it parks the same three, and so do the
    // notifications (which decode every aggregate's events). The webhooks queue,
    // like the audit trail, takes any well-formed stored event as it is.
    let expected = [
        at("analytics", garbage),
        at("analytics", misfit),
        at("analytics", future),
        at("audit", garbage),
        at("notifications", garbage),
        at("notifications", misfit),
        at("notifications", future),
        at("rooms", garbage),
        at("rooms", misfit),
        at("rooms", future),
        at("webhooks", garbage),
    ];
    assert_eq!(parked, expected);
    let last = env.targets().into_iter().find(|(projection, _)| *projection == Projection::Rooms).map(|(_, seq)| seq);
    let checkpoint = load_checkpoint(&env.pool, Projection::Rooms).await.expect("reads");
    assert_eq!(Some(checkpoint.last_sequence), last);
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, 2 + 1 + 1 + 3);
    projector.stop().await;
}

#[tokio::test]
async fn two_instances_apply_everything_exactly_once() {
    const ROOMS: usize = 120;
    let env = Arc::new(TestEnv::new().await);
    let users: Vec<UserId> = (0..6).map(|_| UserId::new_random()).collect();
    for (i, user) in users.iter().enumerate() {
        let registered = json!({"email": format!("u{i}@example.com"), "passwordHash": "x", "firstName": "U",
            "lastName": format!("{i}"), "role": "member"});
        env.append_raw("account", user.as_uuid(), vec![("AccountRegistered".into(), 2, registered)]).await;
    }

    let first = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    let second = env.spawn_projector(env.second_pool().await);

    // Each room: created, five join, one leaves, one is removed, one is muted by
    // the host, the one who left comes back: 10 events, 4 people in it, 6 stays.
    let publisher = {
        let (env, users) = (Arc::clone(&env), users.clone());
        tokio::spawn(async move {
            for _ in 0..ROOMS {
                let room = room_with(&env, users[0], &users[1..6]).await;
                let events = [
                    RoomEvent::ParticipantLeft { user_id: users[1] },
                    RoomEvent::ParticipantRemoved { user_id: users[2], removed_by: users[0] },
                    RoomEvent::ParticipantMutedByHost { user_id: users[3], muted_by: users[0] },
                    RoomEvent::ParticipantJoined { user_id: users[1] },
                ];
                for event in events {
                    env.append("room", room.as_uuid(), &[event]).await;
                }
            }
        })
    };
    // Crash the first instance while it is in the middle of the stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    while load_checkpoint(&env.pool, Projection::Rooms).await.expect("reads").last_sequence < 300 {
        assert!(Instant::now() < deadline, "the first instance made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().await;
    publisher.await.expect("publisher finished");
    env.wait_caught_up(Duration::from_secs(60)).await;

    assert_eq!(env.count("SELECT count(*)::bigint FROM rooms").await, ROOMS as i64);
    assert_eq!(env.count("SELECT coalesce(sum(participant_count), 0)::bigint FROM rooms").await, 4 * ROOMS as i64);
    assert_eq!(env.count("SELECT count(*) FROM participants").await, 6 * ROOMS as i64);
    let mismatched = "SELECT count(*) FROM rooms r WHERE participant_count <> \
                      (SELECT count(*) FROM participants p WHERE p.room_id = r.id AND p.left_at IS NULL)";
    assert_eq!(env.count(mismatched).await, 0);
    assert_eq!(env.count("SELECT count(*) FROM participants WHERE muted_by_host").await, ROOMS as i64);
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, (users.len() + 10 * ROOMS) as i64);
    assert_eq!(env.count("SELECT count(*) FROM users").await, users.len() as i64);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0, "no duplicate-key or other failure");
    for (projection, target) in env.targets() {
        let checkpoint = load_checkpoint(&env.pool, projection).await.expect("reads");
        assert_eq!(checkpoint.last_sequence, target, "{projection}");
    }
    second.stop().await;
}

#[tokio::test]
async fn database_outages_are_retried_never_parked() {
    const ROOMS: usize = 150;
    let env = Arc::new(TestEnv::new().await);
    let host = UserId::new_random();
    let projector = env.spawn_projector(env.second_pool().await);
    let publisher = {
        let env = Arc::clone(&env);
        tokio::spawn(async move {
            for _ in 0..ROOMS {
                let users: Vec<UserId> = (0..5).map(|_| UserId::new_random()).collect();
                room_with(&env, host, &users).await;
            }
        })
    };
    // Cut every other connection to the database (the projector's batches and its
    // locks) several times while it works.
    let mut cuts = 0;
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cuts < 5 && !publisher.is_finished() {
        let at = load_checkpoint(&env.pool, Projection::Rooms).await.expect("reads").last_sequence;
        if at > seen {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&env.pool)
            .await
            .expect("terminates");
            cuts += 1;
            seen = at;
        }
        assert!(Instant::now() < deadline, "the projector stopped making progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.await.expect("publisher finished");
    assert!(cuts >= 2, "only {cuts} outages happened while the projector worked");
    env.wait_caught_up(Duration::from_secs(60)).await;

    assert_eq!(env.count("SELECT coalesce(sum(participant_count), 0)::bigint FROM rooms").await, 5 * ROOMS as i64);
    assert_eq!(env.count("SELECT count(*) FROM participants").await, 5 * ROOMS as i64);
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, 6 * ROOMS as i64);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0, "an outage is not a poison message");
    projector.stop().await;
}

/// Polls `projection`'s checkpoint until it reaches `sequence`; how long that took
/// since `started`. Fails after `give_up`.
async fn time_to_reach(
    env: &TestEnv,
    projection: Projection,
    sequence: u64,
    started: Instant,
    give_up: Duration,
) -> Duration {
    loop {
        let checkpoint = load_checkpoint(&env.pool, projection).await.expect("reads checkpoint");
        if checkpoint.last_sequence >= sequence {
            return started.elapsed();
        }
        assert!(started.elapsed() < give_up, "{projection} had not reached {sequence} after {give_up:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn batches_no_write_waits_for_linger_and_the_others_do_not() {
    let mut env = TestEnv::new().await;
    // Far longer than any batch takes, so that what lingers shows.
    env.config.linger = Duration::from_secs(5);
    let projector = env.spawn_projector(env.pool.clone());
    let story = story::tell(&env).await;
    env.wait_caught_up(Duration::from_secs(30)).await;

    // A room write waits for the rooms read model alone: that batch is applied at
    // once, while the audit trail, analytics and notifications gather for the linger.
    let started = Instant::now();
    let joined = env
        .append("room", story.review.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }])
        .await;
    let rooms = time_to_reach(&env, Projection::Rooms, joined, started, Duration::from_secs(30)).await;
    assert!(rooms < Duration::from_secs(3), "the rooms batch waited {rooms:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for lingering in [Projection::Audit, Projection::Analytics, Projection::Notifications, Projection::Webhooks] {
        let checkpoint = load_checkpoint(&env.pool, lingering).await.expect("reads checkpoint");
        assert!(checkpoint.last_sequence < joined, "{lingering} applied the join without lingering");
    }
    for lingering in [Projection::Audit, Projection::Analytics, Projection::Notifications, Projection::Webhooks] {
        let waited = time_to_reach(&env, lingering, joined, started, Duration::from_secs(30)).await;
        assert!(waited >= Duration::from_secs(5), "{lingering} applied the join after {waited:?}");
    }

    // Reading notifications waits for the notifications read model: its batch is
    // applied as soon as it holds that write, with what it gathered before.
    let started = Instant::now();
    // A room event first, which the notifications batch starts lingering for.
    env.append("room", story.review.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }]).await;
    let read =
        env.append("inbox", story.ana.as_uuid(), &[InboxEvent::AllNotificationsRead { user_id: story.ana }]).await;
    let notifications = time_to_reach(&env, Projection::Notifications, read, started, Duration::from_secs(30)).await;
    assert!(notifications < Duration::from_secs(3), "the notifications batch waited {notifications:?}");
    env.wait_caught_up(Duration::from_secs(30)).await;
    projector.stop().await;
}

#[tokio::test]
async fn batches_do_not_queue_for_the_pool() {
    let mut env = TestEnv::new().await;
    // No periodic stream check (it reads through the pool) during the test.
    env.config.stream_check = Duration::from_secs(600);
    let pool = env.second_pool().await;
    let projector = env.spawn_projector(pool.clone());
    let story = story::tell(&env).await;
    env.wait_caught_up(Duration::from_secs(30)).await;

    // Every connection of the projector's pool busy, as under a burst of reads.
    let mut held = Vec::new();
    while let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_millis(500), pool.acquire()).await {
        held.push(connection);
    }
    assert_eq!(held.len(), pool.options().get_max_connections() as usize);
    let started = Instant::now();
    let joined = env
        .append("room", story.review.as_uuid(), &[RoomEvent::ParticipantJoined { user_id: UserId::new_random() }])
        .await;
    let rooms = time_to_reach(&env, Projection::Rooms, joined, started, Duration::from_secs(3)).await;
    assert!(rooms < Duration::from_secs(3), "the rooms batch waited {rooms:?} for the pool");
    drop(held);
    env.wait_caught_up(Duration::from_secs(30)).await;
    projector.stop().await;
}
