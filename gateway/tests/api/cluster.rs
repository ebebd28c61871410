//! rapat on a 3-node NATS cluster (`RAPAT_STREAM_REPLICAS=3`, the client given
//! all three URLs) losing the event stream's leader under load: writes go on
//! after a pause for the election, every acknowledged (2xx) write is in the
//! stream afterwards, and the killed node catches up once restarted.

use std::time::{Duration, Instant};

use rapat_testkit::NatsCluster;
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, postgres_base_url, spawn_app_replicated};
use crate::rooms::room_body;

/// When the leader is killed, how long it stays down, and how long the load runs.
/// NATS elects new leaders for the meta group, the stream and each consumer, each
/// after a randomised election timeout of several seconds. A write waits for its
/// read models, so for the consumers of the projections it shows in too; with ten
/// projections on a busy 2-core machine the first write after the kill came
/// 27–32 s later. The node stays down long enough for the two others to take over
/// every role before it returns.
const KILL_AFTER: Duration = Duration::from_secs(2);
const DOWN_FOR: Duration = Duration::from_secs(45);
const LOAD_FOR: Duration = Duration::from_secs(50);

struct Write {
    /// The created room, for a 2xx answer.
    room: Option<String>,
    /// The error code, for another answer.
    error: String,
    answered_at: Instant,
    took: Duration,
}

/// Creates rooms one after another until `stop`, each with its own
/// `Idempotency-Key`. An answer that the room is stored but not yet visible (202)
/// or that the outcome is unknown is retried with the same key, as a client
/// should, until it names the room or is refused.
async fn create_rooms_until(app: &TestApp, user: &TestUser, stop: Instant) -> Vec<Write> {
    let mut writes = Vec::new();
    while Instant::now() < stop {
        let started = Instant::now();
        let key = Uuid::new_v4().to_string();
        let mut answer;
        loop {
            answer = app.keyed(Method::POST, "/api/v1/rooms", Some(&user.token), room_body("Load"), &key, &key).await;
            let unsettled = answer.status == StatusCode::ACCEPTED || answer.error_code() == "outcome_unknown";
            if !unsettled || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let room =
            (answer.status == StatusCode::CREATED).then(|| answer.data()["id"].as_str().expect("room id").to_string());
        let error = format!("{} {}", answer.status.as_u16(), answer.error_code());
        writes.push(Write { room, error, answered_at: Instant::now(), took: started.elapsed() });
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_of_a_three_node_cluster_under_load_loses_no_acknowledged_write() {
    let mut cluster = NatsCluster::start(3).await;
    let app = spawn_app_replicated(&cluster.url(), &postgres_base_url(), 3, |config| {
        config.rooms_per_user_per_hour = 0;
        config.chat_replicas = 3;
    })
    .await;
    let nats = rapat_commands::connect(&cluster.url()).await.expect("the cluster answers");
    let jetstream = async_nats::jetstream::new(nats);
    let mut stream = jetstream.get_stream(app.namespace.events_stream()).await.expect("the event stream");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.num_replicas, 3);
    let leader = info.cluster.and_then(|cluster| cluster.leader).expect("the stream has a leader");
    // Node names end in `-n<index>` (rapat-testkit).
    let leader_index: usize = leader.rsplit("-n").next().and_then(|index| index.parse().ok()).expect("a node name");

    let mut users = Vec::new();
    for name in ["Ana", "Budi", "Citra", "Dewi"] {
        users.push(app.new_user(name).await);
    }
    let started = Instant::now();
    let stop = started + LOAD_FOR;
    let load = futures::future::join_all(users.iter().map(|user| create_rooms_until(&app, user, stop)));
    let fault = async {
        tokio::time::sleep(KILL_AFTER).await;
        cluster.nodes[leader_index].kill();
        let killed_at = Instant::now();
        tokio::time::sleep(DOWN_FOR).await;
        let restarting_at = Instant::now();
        cluster.nodes[leader_index].rejoin().await;
        (killed_at, restarting_at)
    };
    let (writes, (killed_at, restarting_at)) = tokio::join!(load, fault);
    let writes: Vec<Write> = writes.into_iter().flatten().collect();

    // Writes go on with the leader down: some succeed after the kill and before
    // the node comes back. The longest stretch without a success is the pause for
    // the elections; it is reported, not bounded, as it depends on the machine.
    let mut successes: Vec<Instant> =
        writes.iter().filter(|write| write.room.is_some()).map(|write| write.answered_at).collect();
    successes.sort();
    let longest_pause = successes.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap_or_default();
    let slowest = writes.iter().map(|write| write.took).max().unwrap_or_default();
    let acknowledged: Vec<&String> = writes.iter().filter_map(|write| write.room.as_ref()).collect();
    let failures: Vec<String> = writes
        .iter()
        .filter(|write| write.room.is_none())
        .map(|write| format!("{} at {:?} after {:?}", write.error, write.answered_at - started, write.took))
        .collect();
    eprintln!(
        "cluster: {} writes, {} acknowledged, {} failed; longest pause without a success {longest_pause:?}, slowest answer {slowest:?}; leader killed at {:?}; failures: {failures:?}",
        writes.len(),
        acknowledged.len(),
        failures.len(),
        killed_at - started,
    );
    let served_by_two = successes.iter().any(|at| *at > killed_at + Duration::from_secs(1) && *at < restarting_at);
    assert!(served_by_two, "no write succeeded while the old leader was down");

    // The restarted node catches up with the new leader.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let info = stream.info().await.expect("stream info").clone();
        let replicas = info.cluster.map(|cluster| cluster.replicas).unwrap_or_default();
        let caught_up = replicas.len() == 2
            && replicas.iter().all(|peer| peer.current && !peer.offline && peer.lag.unwrap_or(0) == 0);
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted node did not catch up: {replicas:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing acknowledged is lost.
    for room in acknowledged {
        let subject = app.namespace.event_subject("room", room);
        stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .unwrap_or_else(|error| panic!("acknowledged room {room} is not in the stream: {error}"));
    }
}
