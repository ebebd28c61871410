//! What a command accepts, every read model can store: text with a NUL (which
//! Postgres's `text` and `jsonb` refuse) or a time outside `timestamptz`'s range is
//! refused with 400 before anything is appended, so no projection ever parks it.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// How many `event_type` events the audit trail holds for the aggregate `id`.
async fn stored_events(app: &TestApp, id: &str, event_type: &str) -> i64 {
    app.audit_caught_up().await;
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE aggregate_id = $1 AND event_type = $2")
        .bind(id)
        .bind(event_type)
        .fetch_one(&app.db)
        .await
        .expect("audit query")
}

async fn parked(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM parked_events").fetch_one(&app.db).await.expect("parked query")
}

#[tokio::test]
async fn a_nul_in_a_room_description_is_refused_on_create_and_update() {
    let app = spawn_app().await;
    let host = app.new_user("Host").await;

    let created = app
        .post("/api/v1/rooms", Some(&host.token), json!({ "name": "Standup", "description": "a\u{0}b", "maxUsers": 5 }))
        .await;
    created.expect_error(400, "invalid_input");
    let escape = app
        .post(
            "/api/v1/rooms",
            Some(&host.token),
            json!({ "name": "Standup", "description": "\u{1b}[2J", "maxUsers": 5 }),
        )
        .await;
    escape.expect_error(400, "invalid_input");
    let listed = app.get("/api/v1/rooms", &host.token).await;
    listed.expect(200);
    assert_eq!(listed.data().as_array().map(Vec::len), Some(0), "no room was created: {:#}", listed.body);

    let room =
        app.create_room(&host, json!({ "name": "Standup", "description": "Agenda:\n\t- one", "maxUsers": 5 })).await;
    let updated = app
        .put(
            &format!("/api/v1/rooms/{room}"),
            &host.token,
            json!({ "description": "x\u{0}", "password": "new secret" }),
        )
        .await;
    updated.expect_error(400, "invalid_input");
    // A valid update after it is applied by every projection (the write waits for
    // the rooms and audit read models): had the NUL one been stored, it would be
    // in the audit trail before it, or parked.
    let fine = app.put(&format!("/api/v1/rooms/{room}"), &host.token, json!({ "description": "Agenda: two" })).await;
    fine.expect(200);
    assert_eq!(fine.data()["description"], "Agenda: two");
    assert_eq!(fine.data()["hasPassword"], false, "the refused update changed nothing: {:#}", fine.body);
    assert_eq!(stored_events(&app, &room, "RoomSettingsUpdated").await, 1);
    assert_eq!(parked(&app).await, 0);
}

#[tokio::test]
async fn a_scheduled_time_outside_what_postgres_stores_is_refused() {
    let app = spawn_app().await;
    let host = app.new_user("Planner").await;
    for when in ["-262143-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "+10000-01-01T00:00:00Z", "", "tomorrow"] {
        let created = app
            .post("/api/v1/rooms", Some(&host.token), json!({ "name": "Later", "maxUsers": 5, "scheduledAt": when }))
            .await;
        assert_eq!(created.status.as_u16(), 400, "scheduledAt {when:?}: {:#}", created.body);
    }
    let listed = app.get("/api/v1/rooms", &host.token).await;
    assert_eq!(listed.data().as_array().map(Vec::len), Some(0), "{:#}", listed.body);
    assert_eq!(parked(&app).await, 0);
}

#[tokio::test]
async fn whole_numbers_written_with_a_fraction_of_zero_are_accepted() {
    // JSON Schema's `integer`, which the document promises, includes 284.0.
    let app = spawn_app().await;
    let host = app.new_user("Counter").await;
    let room = app.create_room(&host, json!({ "name": "Big", "maxUsers": 284.0 })).await;
    let updated = app.put(&format!("/api/v1/rooms/{room}"), &host.token, json!({ "maxUsers": 12.0 })).await;
    updated.expect(200);
    assert_eq!(updated.data()["maxUsers"], 12);
    let fraction = app.put(&format!("/api/v1/rooms/{room}"), &host.token, json!({ "maxUsers": 12.5 })).await;
    assert_eq!(fraction.status.as_u16(), 400, "{:#}", fraction.body);
}

#[tokio::test]
async fn profile_text_with_control_characters_or_nothing_in_it_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user("Profile").await;
    for body in [
        json!({ "firstName": "A\u{0}" }),
        json!({ "lastName": "" }),
        json!({ "lastName": " \t " }),
        json!({ "firstName": "Ana\u{202e}".repeat(30) }),
        json!({ "firstName": "line\nbreak" }),
    ] {
        let answer = app.put("/api/v1/users/profile", &user.token, body.clone()).await;
        assert_eq!(answer.status.as_u16(), 400, "{body}: {:#}", answer.body);
    }
    let fine =
        app.put("/api/v1/users/profile", &user.token, json!({ "firstName": "\tAna ", "lastName": "Ö'Brien" })).await;
    fine.expect(200);
    assert_eq!(fine.data()["firstName"], "Ana");
    assert_eq!(parked(&app).await, 0);
}
