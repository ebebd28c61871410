//! Reminders from durable timers (SPEC §6): the reminder scheduler fires each
//! timer the notifications projection keeps, once per schedule and recipient; a
//! moved meeting reminds at its new time only, a cancelled one never; and a
//! reminder whose moment passed while no scheduler ran is sent when one comes
//! back, late and once, even with two schedulers starting together.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rapat_gateway::{ReminderConfig, ReminderScheduler};
use rapat_testkit::eventually_async;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, TestUser, spawn_app};

const WAIT: Duration = Duration::from_secs(20);
const LATE_AFTER: Duration = Duration::from_secs(2);

fn in_seconds(seconds: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(seconds)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Starts a reminder scheduler on the app's stream and database, as a rapat
/// process would; cancelling the token stops it.
async fn start_scheduler(app: &TestApp) -> CancellationToken {
    let nats = rapat_commands::connect(&app.nats_url).await.expect("NATS");
    let config =
        ReminderConfig { late_after: LATE_AFTER, poll_every: Duration::from_millis(500), ..Default::default() };
    let scheduler =
        ReminderScheduler::open(nats, app.event_store.clone(), app.db.clone(), config).await.expect("scheduler opens");
    let stop = CancellationToken::new();
    tokio::spawn(scheduler.run(stop.clone()));
    stop
}

/// A host who wants reminders at the meeting's start (a lead of 0 minutes), so
/// a meeting seconds away is reminded seconds from now.
async fn host_reminded_at_the_start(app: &TestApp) -> TestUser {
    let host = app.new_user("Host").await;
    app.put("/api/v1/users/settings", &host.token, json!({ "reminderMinutes": 0 })).await.expect(200);
    host
}

async fn schedule(app: &TestApp, host: &TestUser, name: &str, at: DateTime<Utc>) -> String {
    app.create_room(host, json!({ "name": name, "maxUsers": 5, "scheduledAt": rfc3339(at) })).await
}

/// The reminder notifications `user` has of `room`, as their payloads.
async fn reminders(app: &TestApp, user: &TestUser, room: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT payload FROM notifications WHERE recipient_id = $1::uuid AND kind = 'meeting_reminder' \
         AND payload->'room'->>'id' = $2",
    )
    .bind(&user.id)
    .bind(room)
    .fetch_all(&app.db)
    .await
    .expect("notifications query")
}

async fn stored(app: &TestApp, room: &str) -> Vec<Value> {
    app.audit_caught_up().await;
    sqlx::query_scalar(
        "SELECT payload FROM audit_events WHERE aggregate_id = $1 AND event_type = 'MeetingReminderDue' ORDER BY 1::text",
    )
    .bind(room)
    .fetch_all(&app.db)
    .await
    .expect("audit query")
}

#[tokio::test]
async fn a_reminder_fires_at_its_moment_once_at_the_new_time_after_a_reschedule_and_never_when_cancelled() {
    let app = spawn_app().await;
    let host = host_reminded_at_the_start(&app).await;
    let on_time = schedule(&app, &host, "On time", in_seconds(3)).await;
    let moved = schedule(&app, &host, "Moved", in_seconds(3)).await;
    let cancelled = schedule(&app, &host, "Cancelled", in_seconds(3)).await;
    let later = in_seconds(5);
    app.put(&format!("/api/v1/rooms/{moved}"), &host.token, json!({ "scheduledAt": rfc3339(later) })).await.expect(200);
    app.post(&format!("/api/v1/rooms/{cancelled}/end"), Some(&host.token), json!({})).await.expect(200);

    let _scheduler = start_scheduler(&app).await.drop_guard();
    eventually_async("the reminders of both meetings", WAIT, async || {
        reminders(&app, &host, &on_time).await.len() == 1 && reminders(&app, &host, &moved).await.len() == 1
    })
    .await;
    let fired = Utc::now();
    assert!(fired >= later, "the moved meeting reminded at its new time, not before");

    let on_time_events = stored(&app, &on_time).await;
    assert_eq!(on_time_events.len(), 1, "{on_time_events:#?}");
    assert_eq!(on_time_events[0]["late"], false);
    let moved_events = stored(&app, &moved).await;
    assert_eq!(moved_events.len(), 1, "only the new schedule fired: {moved_events:#?}");
    assert_eq!(moved_events[0]["scheduleSequence"], 1);
    assert_eq!(reminders(&app, &host, &on_time).await[0]["late"], false);
    // The cancelled meeting's timer went with its cancellation, before the others fired.
    assert_eq!(stored(&app, &cancelled).await.len(), 0);
    assert_eq!(reminders(&app, &host, &cancelled).await.len(), 0);
    let timers: i64 = sqlx::query_scalar("SELECT count(*) FROM reminder_timers")
        .fetch_one(&app.db)
        .await
        .expect("counts reminder timers");
    assert_eq!(timers, 0, "every timer fired or went away");
}

#[tokio::test]
async fn a_reminder_due_while_no_scheduler_ran_is_sent_late_once_when_two_come_back() {
    let app = spawn_app().await;
    let host = host_reminded_at_the_start(&app).await;
    let due = in_seconds(2);
    let room = schedule(&app, &host, "Through an outage", due).await;

    // A scheduler runs, and stops before the moment, as a killed process would.
    let first = start_scheduler(&app).await;
    first.cancel();
    // Its moment passes, and the grace after which a reminder counts as late.
    let back =
        due + chrono::Duration::from_std(LATE_AFTER).expect("a short duration") + chrono::Duration::milliseconds(500);
    tokio::time::sleep((back - Utc::now()).to_std().unwrap_or_default()).await;
    assert!(reminders(&app, &host, &room).await.is_empty(), "nothing fired while no scheduler ran");

    let _one = start_scheduler(&app).await.drop_guard();
    let _two = start_scheduler(&app).await.drop_guard();
    eventually_async("the late reminder", WAIT, async || reminders(&app, &host, &room).await.len() == 1).await;
    let reminder = &reminders(&app, &host, &room).await[0];
    assert_eq!(reminder["late"], true, "{reminder:#}");
    let events = stored(&app, &room).await;
    assert_eq!(events.len(), 1, "one reminder although two schedulers came back: {events:#?}");
    assert_eq!(events[0]["late"], true);
}
