//! One node of a three-node NATS cluster killed under load (the one leading the
//! event stream, the hardest case), kept down for a while and started again.
//! rapat runs with `RAPAT_STREAM_REPLICAS=3` and every node's URL.

use std::time::Duration;

use crate::rapat::namespace;
use crate::run::Run;
use crate::verify;

const DOWN_FOR: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn one_cluster_node_down() {
    let mut run = Run::cluster().await;
    let (leader, replicas) = stream_leader(&mut run).await;
    // SPEC §8: with three replicas every part keeps working when one node dies.
    run.require_writes_during_fault();
    run.fault_begins();
    run.stack.nats.cluster().nodes[leader].kill();
    tokio::time::sleep(DOWN_FOR).await;
    run.stack.nats.cluster().nodes[leader].restart().await;
    run.fault_ends();
    run.finish(&format!("one of 3 NATS nodes down 10 s (stream R{replicas})")).await;
}

/// The index of the node that leads the event stream, and the stream's replicas.
async fn stream_leader(run: &mut Run) -> (usize, usize) {
    let cluster = run.stack.nats.cluster();
    let client = verify::connect(&cluster.url()).await.expect("the cluster answers");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(namespace().events_stream())
        .await
        .expect("rapat created its stream");
    let info = stream.info().await.expect("stream info");
    let leader = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone()).expect("the stream has a leader");
    let replicas = info.config.num_replicas;
    println!("event stream: {replicas} replicas, leader {leader}");
    for (index, node) in cluster.nodes.iter().enumerate() {
        let client = async_nats::connect(node.url()).await.expect("a node answers");
        if client.server_info().server_name == leader {
            return (index, replicas);
        }
    }
    panic!("no node is named {leader}");
}
