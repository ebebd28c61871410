//! The SFU keeps following room events, signaling and placement across a NATS
//! kill -9 and restart, on a NATS server of the test's own.

mod common;

use std::time::{Duration, Instant};

use common::{create_room, eventually, harness_on};
use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
use rapat_domain::ids::UserId;
use rapat_domain::room::{Room, RoomCommand};
use rapat_domain::services::testing::MarkedHasher;
use rapat_sfu::loopback_client::ClientOptions;
use rapat_sfu::nats::Rosters;
use rapat_sfu::{RoomChange, SfuConfig};
use rapat_testkit::{NatsServer, TcpProxy, unique_namespace};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long NATS stays dead: 3 s, or `RAPAT_TEST_NATS_DOWN_SECS` (a longer
/// outage by hand, e.g. 60).
fn down_for() -> Duration {
    let seconds = std::env::var("RAPAT_TEST_NATS_DOWN_SECS").ok().and_then(|value| value.parse().ok());
    Duration::from_secs(seconds.unwrap_or(3))
}

async fn connect(url: &str) -> async_nats::Client {
    rapat_commands::connect(url).await.expect("the test's NATS answers")
}

/// Runs `command` on `room`, retrying while the client is still reconnecting;
/// returns the stream sequence of its write.
async fn execute(rooms: &CommandBus<Room>, room: Uuid, command: RoomCommand) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rooms.execute(&room.to_string(), command.clone(), CommandMetadata::system()).await {
            Ok(outcome) => return outcome.stream_sequence,
            Err(error) => {
                assert!(Instant::now() < deadline, "the room command still fails: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn next_change(changes: &mut UnboundedReceiver<RoomChange>) -> RoomChange {
    tokio::time::timeout(Duration::from_secs(20), changes.recv())
        .await
        .expect("a room change in time")
        .expect("the follower is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_event_written_while_the_sfu_was_cut_off_from_a_restarting_nats_reaches_it_once() {
    let mut server = NatsServer::start().await;
    let writer = connect(&server.url()).await;
    // The follower reaches NATS through a proxy, so it stays cut off while the
    // writer is already back.
    let proxy = TcpProxy::start(&format!("127.0.0.1:{}", server.port())).await;
    let follower_nats = connect(&format!("nats://{}", proxy.address())).await;
    let events = EventStoreConfig::for_namespace(unique_namespace());
    let store = JetStreamEventStore::open(writer.clone(), events.clone()).await.expect("event store");
    let rooms = CommandBus::new(store, MarkedHasher::services());
    let (room, host, left, removed) =
        (Uuid::new_v4(), UserId::new_random(), UserId::new_random(), UserId::new_random());
    execute(&rooms, room, create_room(host, 10)).await;
    let mut joined = 0;
    for user in [left, removed] {
        joined = execute(&rooms, room, RoomCommand::Join { user, password: None, invited: false }).await;
    }

    let (changes_tx, mut changes) = unbounded_channel();
    let cancel = CancellationToken::new();
    let rosters = Rosters::default();
    let follow = rapat_sfu::room_events::follow(
        follower_nats,
        events.clone(),
        rosters.clone(),
        move |change, _| drop(changes_tx.send(change)),
        cancel.clone(),
    );
    tokio::spawn(follow);
    // The follower folds the room's history into the rosters, and applies as
    // changes what is stored after its start.
    eventually("the follower applied the room's history", Duration::from_secs(10), || rosters.applied() >= joined)
        .await;

    execute(&rooms, room, RoomCommand::Leave { user: left }).await;
    assert_eq!(next_change(&mut changes).await, RoomChange::UserGone { room, user: left.as_uuid() });

    proxy.cut();
    server.kill();
    tokio::time::sleep(down_for()).await;
    server.restart().await;
    // Written while the follower is still cut off, and after its consumer died with the server.
    execute(&rooms, room, RoomCommand::RemoveParticipant { actor: host, target: removed }).await;
    proxy.restore();
    let restored = Instant::now();
    assert_eq!(next_change(&mut changes).await, RoomChange::UserGone { room, user: removed.as_uuid() });
    eprintln!(
        "the event written in the gap reached the follower {:?} after its connection came back",
        restored.elapsed()
    );

    execute(&rooms, room, RoomCommand::End { actor: host }).await;
    assert_eq!(next_change(&mut changes).await, RoomChange::Ended { room });
    // Nothing applied twice, nothing from before the follower started: the next
    // change is one of another room, written last.
    let (other, guest) = (Uuid::new_v4(), UserId::new_random());
    execute(&rooms, other, create_room(host, 10)).await;
    execute(&rooms, other, RoomCommand::Join { user: guest, password: None, invited: false }).await;
    execute(&rooms, other, RoomCommand::Leave { user: guest }).await;
    assert_eq!(
        next_change(&mut changes).await,
        RoomChange::UserGone { room: other, user: guest.as_uuid() },
        "an extra room change arrived"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_nats_restart_peers_connect_again_and_a_removal_stops_media() {
    let mut server = NatsServer::start().await;
    let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
    config.workers = 2;
    let h = harness_on(&server.url(), config).await;

    server.kill();
    tokio::time::sleep(down_for()).await;
    server.restart().await;
    eventually("the client reconnected", Duration::from_secs(20), || {
        h.nats.connection_state() == async_nats::connection::State::Connected
    })
    .await;

    // Signaling (core subscription), placement (key-value) and admission all work again...
    let on_air = h.speaker_and_listening_host(ClientOptions::subscriber()).await;
    // ...and so do room events.
    h.remove_speaker_and_expect_silence(&on_air).await;
}
