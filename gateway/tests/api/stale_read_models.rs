//! A read model whose checkpoint is ahead of the event stream, as it is for a
//! moment after NATS lost the stream's last writes (stopped before its disk had
//! them): new events get sequences the checkpoint already covers, so a write's
//! wait for its read model returns at once, though its row is not there. Until
//! the projector finds the mismatch and rebuilds, such a write is answered 202
//! `stored_not_visible` (it is stored), never a 500, a 404 or a 409; after the
//! rebuild it shows.
//!
//! The tests put the checkpoint ahead themselves and hold its row lock, which
//! keeps the projector from applying or rebuilding until they let go.

use std::time::Duration;

use serde_json::json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, spawn_app};
use crate::rooms::{ids, join, participant_ids, room_body};

/// Far past anything a test appends.
const AHEAD: i64 = 1_000_000;

/// Moves `projection`'s checkpoint past the stream's end and holds its row, so
/// that nothing is applied to that read model until the guard is dropped; then
/// gives every gateway time to load the new position (reloaded every 100 ms).
async fn checkpoint_ahead_of_the_stream(app: &TestApp, projection: &str) -> Transaction<'static, Postgres> {
    sqlx::query("UPDATE projection_checkpoints SET last_sequence = last_sequence + $2 WHERE projection = $1")
        .bind(projection)
        .bind(AHEAD)
        .execute(&app.db)
        .await
        .expect("checkpoint moved ahead");
    let mut held = app.db.begin().await.expect("transaction");
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(projection)
        .execute(&mut *held)
        .await
        .expect("checkpoint row held");
    tokio::time::sleep(Duration::from_secs(1)).await;
    held
}

#[track_caller]
fn expect_stored_not_visible(answer: &TestResponse) {
    answer.expect(202);
    assert_eq!(answer.body["success"], json!(true), "{:#}", answer.body);
    assert_eq!(answer.body["code"], json!("stored_not_visible"), "{:#}", answer.body);
}

/// Waits until `shown` holds: the projector found the mismatch and rebuilt the
/// read model (its stream check runs every 5 s).
async fn eventually<F, Fut>(what: &str, mut shown: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !shown().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_registration_the_users_read_model_does_not_show_yet_is_stored_not_visible() {
    let app = spawn_app().await;
    let held = checkpoint_ahead_of_the_stream(&app, "accounts").await;
    let email = format!("rina.{}@example.com", Uuid::new_v4().simple());
    let registered = app.register(&email, "correct horse 1", "Rina", "Tester").await;
    expect_stored_not_visible(&registered);
    held.rollback().await.expect("checkpoint row let go");
    eventually("the stored account", || async { app.login(&email, "correct horse 1").await.status == 200 }).await;
}

#[tokio::test]
async fn a_room_creation_and_a_join_the_rooms_read_model_does_not_show_yet_are_stored_not_visible() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let shown = app.create_room(&host, room_body("Shown")).await;
    let held = checkpoint_ahead_of_the_stream(&app, "rooms").await;

    let created = app.post("/api/v1/rooms", Some(&host.token), room_body("Not shown yet")).await;
    expect_stored_not_visible(&created);
    // The room is in the read model; the guest's stay is not.
    expect_stored_not_visible(&join(&app, &guest, &shown, json!({})).await);
    held.rollback().await.expect("checkpoint row let go");
    eventually("the stored room", || async { ids(&app.get("/api/v1/rooms", &host.token).await).len() == 2 }).await;
    eventually("the stored join", || async { participant_ids(&app, &host, &shown).await == vec![guest.id.clone()] })
        .await;
}
