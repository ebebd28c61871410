//! Postgres stopped immediately (a crash: no checkpoint, recovery from the WAL
//! on start) under load, and started again after a few seconds.

use std::time::Duration;

use crate::run::Run;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn postgres_immediate_stop_and_start() {
    let mut run = Run::single().await;
    run.fault_begins();
    run.stack.postgres.stop_immediate().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    run.stack.postgres.restart().await;
    run.fault_ends();
    run.finish("Postgres immediate stop, start").await;
}
