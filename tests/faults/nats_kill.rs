//! NATS killed -9 under load and started again at once.

use std::time::Duration;

use crate::run::Run;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn nats_kill_9_and_restart() {
    let mut run = Run::single().await;
    run.fault_begins();
    run.stack.nats.server().kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.stack.nats.server().restart().await;
    run.fault_ends();
    run.finish("NATS kill -9, restart").await;
}
