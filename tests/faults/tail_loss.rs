//! Stream tail loss: what a power loss does to writes the disk had not made
//! durable. A copy of NATS's store is taken under load; a few seconds later
//! NATS is killed, the copy put back in place of its store, and NATS started on
//! it, so the stream has lost its last acknowledged messages.
//!
//! Those losses are caused on purpose and counted apart. What must hold is that
//! the read models do not fork: after recovery they show exactly what the
//! stream holds, and writes after the restart are stored once and visible.

use std::path::Path;
use std::time::Duration;

use crate::run::Run;

/// Acknowledged writes in this window (after the copy) are lost by construction.
const LOST_TAIL: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: run by infra/run-tests.sh"]
async fn stream_tail_loss() {
    let mut run = Run::single().await;
    let store = run.stack.nats.server().store_dir();
    let copy = run.stack.dir.join("store-copy");
    let copied_at = run.now();
    copy_dir(&store, &copy).await;
    tokio::time::sleep(LOST_TAIL).await;

    run.fault_begins();
    run.stack.nats.server().kill();
    // What the load learnt from writes the disk loses is void; forgotten again
    // after the restart for answers that were on their way at the kill.
    run.forget();
    std::fs::remove_dir_all(&store).expect("the killed server's store can be removed");
    std::fs::rename(&copy, &store).expect("the earlier copy takes the store's place");
    run.stack.nats.server().restart().await;
    run.fault_ends();
    run.disk_loss_since(copied_at);
    run.finish("stream tail loss").await;
}

/// Copies a directory tree (the server keeps writing to it meanwhile, as a disk
/// losing power would see it).
async fn copy_dir(from: &Path, to: &Path) {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || copy_tree(&from, &to))
        .await
        .expect("the copy task runs")
        .expect("the NATS store can be copied");
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
