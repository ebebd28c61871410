//! The outbox worker against a real Postgres: rows written by a projection's
//! transaction are sent once, retried on the schedule, given up on, shared by
//! two workers without double sends, taken over when a worker's lease runs out,
//! and never added by a rebuild's shadow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rapat_delivery::{Channel, Delivery, OutboxWorker, RetryPolicy, SendError, Sender, WorkerConfig};
use rapat_projections::outbox::{NewDelivery, delivery_id, enqueue_all};
use rapat_testkit::{TestDatabase, unique_namespace};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the receiving end does with each attempt, by how many came before.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    FailFirst(u32),
    AlwaysRetry,
    Refuse,
    /// Never answers (a worker that hangs mid-send).
    Hang,
}

/// A channel whose receiver counts what reaches it.
struct Recorder {
    behaviour: Behaviour,
    sends: Mutex<HashMap<Uuid, u32>>,
}

impl Recorder {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self { behaviour, sends: Mutex::new(HashMap::new()) })
    }

    fn sends(&self) -> HashMap<Uuid, u32> {
        self.sends.lock().expect("not poisoned").clone()
    }
}

#[async_trait::async_trait]
impl Sender for Recorder {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let before = {
            let mut sends = self.sends.lock().expect("not poisoned");
            let count = sends.entry(delivery.id).or_default();
            *count += 1;
            *count - 1
        };
        match self.behaviour {
            Behaviour::Accept => Ok(()),
            Behaviour::FailFirst(n) if before < n => Err(SendError::Retry(format!("attempt {} refused", before + 1))),
            Behaviour::FailFirst(_) => Ok(()),
            Behaviour::AlwaysRetry => Err(SendError::Retry("receiver down".into())),
            Behaviour::Refuse => Err(SendError::Permanent("no such mailbox".into())),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

struct Outbox {
    db: PgPool,
    _database: TestDatabase,
    shutdown: CancellationToken,
}

impl Outbox {
    async fn new() -> Self {
        let database = TestDatabase::for_namespace(&unique_namespace());
        let db = rapat_projections::connect(&database.url()).await.expect("a test database");
        Self { db, _database: database, shutdown: CancellationToken::new() }
    }

    /// `count` email rows, committed in one transaction as a projection would.
    async fn add(&self, count: usize) -> Vec<Uuid> {
        let payload = serde_json::json!({ "room": { "name": "Standup" } });
        let sources: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        let rows: Vec<NewDelivery<'_>> = sources
            .iter()
            .enumerate()
            .map(|(n, source)| NewDelivery {
                id: delivery_id(*source, "email"),
                channel: "email",
                kind: "meeting_reminder",
                recipient_id: Some(Uuid::new_v4()),
                address: None,
                notification_id: Some(*source),
                payload: &payload,
                event_id: Uuid::new_v4(),
                stream_sequence: n as u64 + 1,
                created_at: Utc::now(),
            })
            .collect();
        let mut tx = self.db.begin().await.expect("a transaction");
        enqueue_all(&mut tx, &rows).await.expect("enqueued");
        tx.commit().await.expect("committed");
        rows.iter().map(|row| row.id).collect()
    }

    fn start(&self, sender: Arc<Recorder>, config: WorkerConfig) {
        let worker = OutboxWorker::new(self.db.clone(), sender, config);
        tokio::spawn(worker.run(self.shutdown.child_token()));
    }

    async fn states(&self) -> HashMap<String, i64> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM deliveries GROUP BY state")
            .fetch_all(&self.db)
            .await
            .expect("counts");
        rows.into_iter().collect()
    }

    async fn wait_for(&self, what: &str, state: &str, count: i64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let states = self.states().await;
            if states.get(state).copied().unwrap_or_default() == count {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {states:?} after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A schedule of milliseconds, and a poll so slow that only NOTIFY wakes a worker in time.
fn quick() -> WorkerConfig {
    WorkerConfig {
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            give_up_after: Duration::from_secs(60),
        },
        lease: Duration::from_secs(60),
        batch: 16,
        poll_every: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn rows_are_sent_once_as_soon_as_their_transaction_commits() {
    let outbox = Outbox::new().await;
    let receiver = Recorder::new(Behaviour::Accept);
    outbox.start(receiver.clone(), quick());
    let ids = outbox.add(40).await;
    outbox.wait_for("all delivered, woken by NOTIFY", "delivered", 40, Duration::from_secs(10)).await;
    let sends = receiver.sends();
    assert_eq!(sends.len(), 40);
    assert!(ids.iter().all(|id| sends.get(id) == Some(&1)), "each sent once: {sends:?}");
}

#[tokio::test]
async fn a_refused_attempt_is_retried_until_it_is_delivered() {
    let outbox = Outbox::new().await;
    let receiver = Recorder::new(Behaviour::FailFirst(3));
    outbox.start(receiver.clone(), quick());
    let ids = outbox.add(5).await;
    outbox.wait_for("delivered on the fourth attempt", "delivered", 5, Duration::from_secs(20)).await;
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM deliveries ORDER BY id").fetch_all(&outbox.db).await.expect("rows");
    assert_eq!(attempts, vec![4; 5]);
    assert!(ids.iter().all(|id| receiver.sends().get(id) == Some(&4)));
}

#[tokio::test]
async fn a_permanent_refusal_fails_at_once_and_a_receiver_down_for_good_fails_after_the_schedule() {
    let refused = Outbox::new().await;
    refused.start(Recorder::new(Behaviour::Refuse), quick());
    refused.add(3).await;
    refused.wait_for("failed at once", "failed", 3, Duration::from_secs(10)).await;

    let down = Outbox::new().await;
    let receiver = Recorder::new(Behaviour::AlwaysRetry);
    let config =
        WorkerConfig { retry: RetryPolicy { give_up_after: Duration::from_secs(2), ..quick().retry }, ..quick() };
    down.start(receiver.clone(), config);
    let ids = down.add(2).await;
    down.wait_for("failed after two seconds of retries", "failed", 2, Duration::from_secs(20)).await;
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM deliveries LIMIT 1").fetch_one(&down.db).await.expect("a row");
    assert_eq!(error, "receiver down");
    // Retried all along: with delays of 25–200 ms, two seconds hold several attempts.
    assert!(ids.iter().all(|id| receiver.sends().get(id).copied().unwrap_or_default() >= 5), "{:?}", receiver.sends());
}

#[tokio::test]
async fn two_workers_share_the_rows_without_sending_one_twice() {
    let outbox = Outbox::new().await;
    let receiver = Recorder::new(Behaviour::Accept);
    let config = WorkerConfig { batch: 4, ..quick() };
    outbox.start(receiver.clone(), config);
    outbox.start(receiver.clone(), config);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.extend(outbox.add(20).await);
    }
    outbox.wait_for("all delivered", "delivered", 200, Duration::from_secs(30)).await;
    let sends = receiver.sends();
    assert_eq!(sends.len(), 200);
    assert!(sends.values().all(|count| *count == 1), "a row sent twice: {sends:?}");
}

#[tokio::test]
async fn a_row_a_stuck_worker_holds_is_sent_by_another_when_its_lease_runs_out() {
    let outbox = Outbox::new().await;
    let lease = Duration::from_secs(2);
    let poll = Duration::from_millis(200);
    let stuck = Recorder::new(Behaviour::Hang);
    outbox.start(stuck.clone(), WorkerConfig { lease: Duration::from_secs(3600), poll_every: poll, ..quick() });
    let ids = outbox.add(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stuck.sends().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the stuck worker never took the row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // As if that worker's process died mid-send: its lease is made to run out soon.
    sqlx::query("UPDATE deliveries SET leased_until = now() + make_interval(secs => $1)")
        .bind(lease.as_secs_f64())
        .execute(&outbox.db)
        .await
        .expect("lease shortened");
    let healthy = Recorder::new(Behaviour::Accept);
    outbox.start(healthy.clone(), WorkerConfig { lease, poll_every: poll, ..quick() });
    outbox.wait_for("taken over after the lease", "delivered", 1, Duration::from_secs(20)).await;
    assert_eq!(healthy.sends().get(&ids[0]), Some(&1));
}

#[tokio::test]
async fn a_rebuild_shadow_adds_no_rows() {
    let outbox = Outbox::new().await;
    let payload = serde_json::json!({});
    let row = NewDelivery {
        id: Uuid::new_v4(),
        channel: "push",
        kind: "invitation_received",
        recipient_id: Some(Uuid::new_v4()),
        address: None,
        notification_id: None,
        payload: &payload,
        event_id: Uuid::new_v4(),
        stream_sequence: 1,
        created_at: Utc::now(),
    };
    let mut tx = outbox.db.begin().await.expect("a transaction");
    sqlx::query("CREATE SCHEMA rebuild_notifications").execute(&mut *tx).await.expect("a shadow schema");
    sqlx::query("SET LOCAL search_path TO rebuild_notifications, public").execute(&mut *tx).await.expect("shadow");
    enqueue_all(&mut tx, std::slice::from_ref(&row)).await.expect("nothing to add");
    tx.commit().await.expect("committed");
    assert!(outbox.states().await.is_empty(), "history is not sent again by a rebuild");

    let mut tx = outbox.db.begin().await.expect("a transaction");
    enqueue_all(&mut tx, std::slice::from_ref(&row)).await.expect("added");
    enqueue_all(&mut tx, std::slice::from_ref(&row)).await.expect("the same row again adds nothing");
    tx.commit().await.expect("committed");
    assert_eq!(outbox.states().await.get("pending"), Some(&1));
}
