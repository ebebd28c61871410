//! rapat killed -9 under load (requests in flight get no answer) and started
//! again; clients retry unknown outcomes with the same key.

use std::time::Duration;

use crate::run::Run;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn rapat_kill_9_and_restart() {
    let mut run = Run::single().await;
    run.fault_begins();
    run.stack.rapat.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.stack.rapat.restart().await;
    run.fault_ends();
    run.finish("rapat kill -9, restart").await;
}
