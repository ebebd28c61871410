//! One node of a three-node NATS cluster killed under load (the one leading the
//! event stream, the hardest case), kept down for a while and started again.
//! rapat runs with `RAPAT_STREAM_REPLICAS=3` and every node's URL.

use std::time::Duration;

use crate::rapat::NAMESPACE;
use crate::run::Run;

const DOWN_FOR: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn one_cluster_node_down() {
    let mut run = Run::cluster().await;
    let leader = stream_leader(&mut run).await;
    run.fault_begins();
    run.stack.nats.cluster().nodes[leader].kill();
    tokio::time::sleep(DOWN_FOR).await;
    run.stack.nats.cluster().nodes[leader].restart().await;
    run.fault_ends();
    run.finish("one of 3 NATS nodes down 10 s").await;
}

/// The index of the node that leads the event stream.
async fn stream_leader(run: &mut Run) -> usize {
    let cluster = run.stack.nats.cluster();
    let client = async_nats::connect(cluster.url()).await.expect("the cluster answers");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(format!("{}_EVENTS", NAMESPACE.to_uppercase()))
        .await
        .expect("rapat created its stream");
    let info = stream.info().await.expect("stream info");
    let leader = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone()).expect("the stream has a leader");
    println!("event stream: {} replicas, leader {leader}", info.config.num_replicas);
    for (index, node) in cluster.nodes.iter().enumerate() {
        let client = async_nats::connect(node.url()).await.expect("a node answers");
        if client.server_info().server_name == leader {
            return index;
        }
    }
    panic!("no node is named {leader}");
}
