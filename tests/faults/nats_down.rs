//! NATS killed and kept down for a while (60 s by default), then started again.

use std::time::Duration;

use crate::run::Run;

/// `RAPAT_FAULTS_NATS_DOWN_SECONDS`, default 60.
fn outage() -> Duration {
    let seconds = std::env::var("RAPAT_FAULTS_NATS_DOWN_SECONDS").ok().and_then(|text| text.parse().ok());
    Duration::from_secs(seconds.unwrap_or(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn nats_down_for_a_minute() {
    let outage = outage();
    let mut run = Run::single().await;
    run.fault_begins();
    run.stack.nats.server().kill();
    tokio::time::sleep(outage).await;
    run.stack.nats.server().restart().await;
    run.fault_ends();
    run.finish(&format!("NATS down {} s", outage.as_secs())).await;
}
