//! A room's schedule (SPEC §6): a time and a length when created, a reschedule
//! before the meeting starts, a cancellation when it is ended unstarted, and the
//! bad input each refuses with nothing stored.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn in_days(days: i64) -> String {
    rfc3339(Utc::now() + Duration::days(days))
}

async fn stored_events(app: &TestApp, room: &str, event_type: &str) -> i64 {
    app.audit_caught_up().await;
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE aggregate_id = $1 AND event_type = $2")
        .bind(room)
        .bind(event_type)
        .fetch_one(&app.db)
        .await
        .expect("audit query")
}

#[tokio::test]
async fn times_in_the_past_or_beyond_a_year_and_durations_out_of_range_are_refused() {
    let app = spawn_app().await;
    let host = app.new_user("Planner").await;
    let refused = [
        json!({ "scheduledAt": rfc3339(Utc::now() - Duration::hours(1)) }),
        json!({ "scheduledAt": in_days(400) }),
        json!({ "scheduledAt": in_days(3), "durationMinutes": 0 }),
        json!({ "scheduledAt": in_days(3), "durationMinutes": 1441 }),
        json!({ "scheduledAt": in_days(3), "durationMinutes": 70000 }),
    ];
    for schedule in &refused {
        let mut body = json!({ "name": "Later", "maxUsers": 5 });
        body.as_object_mut().expect("an object").extend(schedule.as_object().expect("an object").clone());
        let created = app.post("/api/v1/rooms", Some(&host.token), body).await;
        created.expect_error(400, "invalid_input");
    }
    let listed = app.get("/api/v1/rooms", &host.token).await;
    assert_eq!(listed.data().as_array().map(Vec::len), Some(0), "nothing stored: {:#}", listed.body);

    let room = app.create_room(&host, json!({ "name": "Planning", "maxUsers": 5, "scheduledAt": in_days(2) })).await;
    let path = format!("/api/v1/rooms/{room}");
    for schedule in &refused {
        app.put(&path, &host.token, schedule.clone()).await.expect_error(400, "invalid_input");
    }
    assert_eq!(stored_events(&app, &room, "RoomRescheduled").await, 0);
}

#[tokio::test]
async fn the_host_reschedules_until_the_meeting_starts() {
    let app = spawn_app().await;
    let host = app.new_user("Host").await;
    let guest = app.new_user("Guest").await;
    let room = app
        .create_room(
            &host,
            json!({ "name": "Review", "maxUsers": 5, "scheduledAt": in_days(2), "durationMinutes": 30 }),
        )
        .await;
    let path = format!("/api/v1/rooms/{room}");

    let later = in_days(3);
    let moved = app.put(&path, &host.token, json!({ "scheduledAt": later, "name": "Review (moved)" })).await;
    moved.expect(200);
    assert_eq!(moved.data()["scheduledAt"], json!(later));
    assert_eq!(moved.data()["durationMinutes"], 30, "the length stays");
    assert_eq!(moved.data()["name"], "Review (moved)", "settings and schedule in one request");

    let longer = app.put(&path, &host.token, json!({ "durationMinutes": 90 })).await;
    longer.expect(200);
    assert_eq!(
        (longer.data()["scheduledAt"].clone(), longer.data()["durationMinutes"].clone()),
        (json!(later), json!(90))
    );
    assert_eq!(stored_events(&app, &room, "RoomRescheduled").await, 2);

    app.put(&path, &guest.token, json!({ "scheduledAt": in_days(4) })).await.expect_error(403, "not_host");

    app.post(&format!("{path}/join"), Some(&host.token), json!({})).await.expect(200);
    let too_late = app.put(&path, &host.token, json!({ "scheduledAt": in_days(5), "name": "Renamed" })).await;
    too_late.expect_error(409, "room_already_started");
    let shown = app.get(&path, &host.token).await;
    assert_eq!(shown.data()["name"], "Review (moved)", "a refused schedule changes no setting either");
    assert!(shown.data()["startedAt"].is_string(), "{:#}", shown.body);
    assert_eq!(stored_events(&app, &room, "RoomRescheduled").await, 2);
}

#[tokio::test]
async fn a_duration_alone_needs_a_scheduled_room() {
    let app = spawn_app().await;
    let host = app.new_user("Host").await;
    let room = app.create_room(&host, json!({ "name": "Anytime", "maxUsers": 5 })).await;
    let path = format!("/api/v1/rooms/{room}");
    app.put(&path, &host.token, json!({ "durationMinutes": 20 })).await.expect_error(400, "room_not_scheduled");
    let scheduled = app.put(&path, &host.token, json!({ "scheduledAt": in_days(1), "durationMinutes": 20 })).await;
    scheduled.expect(200);
    assert_eq!(scheduled.data()["durationMinutes"], 20);
}

#[tokio::test]
async fn ending_a_meeting_that_never_started_cancels_it() {
    let app = spawn_app().await;
    let host = app.new_user("Host").await;
    let cancelled = app.create_room(&host, json!({ "name": "Off", "maxUsers": 5, "scheduledAt": in_days(1) })).await;
    let ended = app.post(&format!("/api/v1/rooms/{cancelled}/end"), Some(&host.token), json!({})).await;
    ended.expect(200);
    assert_eq!(ended.data()["status"], "ended");
    assert!(ended.data()["cancelledAt"].is_string(), "{:#}", ended.body);
    assert_eq!(stored_events(&app, &cancelled, "RoomCancelled").await, 1);
    assert_eq!(stored_events(&app, &cancelled, "RoomEnded").await, 1);

    let held = app.create_room(&host, json!({ "name": "Held", "maxUsers": 5 })).await;
    app.post(&format!("/api/v1/rooms/{held}/join"), Some(&host.token), json!({})).await.expect(200);
    let ended = app.post(&format!("/api/v1/rooms/{held}/end"), Some(&host.token), json!({})).await;
    ended.expect(200);
    assert_eq!(ended.data()["cancelledAt"], json!(null));
    assert_eq!(stored_events(&app, &held, "RoomCancelled").await, 0);
}
