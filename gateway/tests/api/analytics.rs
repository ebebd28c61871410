//! `GET /api/v1/analytics/rooms/{roomId}` (host) and `GET /api/v1/analytics/daily`
//! (administrators), after a short meeting played through the API.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rapat_commands::{Argon2idHasher, CommandBus, CommandMetadata, JetStreamEventStore};
use rapat_domain::account::{Account, AccountCommand, Role};
use rapat_domain::services::DomainServices;
use rapat_projections::projector::load_checkpoint;
use rapat_projections::{Projection, ProjectionPositions};
use serde_json::json;

use crate::helpers::{TestApp, TestUser, nats_url, spawn_app};

/// Makes `user` an administrator the way `rapat admin grant` does, and waits until
/// the users read model shows it.
async fn make_admin(app: &TestApp, user: &TestUser) {
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let store = JetStreamEventStore::<Account>::open(nats, app.event_store.clone()).await.expect("store");
    let bus = CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new())));
    let command = AccountCommand::GrantRole { role: Role::Admin };
    let outcome = bus.execute(&user.id, command, CommandMetadata::system()).await.expect("granted");
    let positions = ProjectionPositions::start(app.db.clone());
    positions
        .wait_for(&[Projection::Accounts], outcome.stream_sequence, Duration::from_secs(10))
        .await
        .expect("visible");
}

/// Room writes wait for the rooms read model only: wait until analytics has
/// applied every room event the rooms read model has.
async fn analytics_caught_up(app: &TestApp) {
    let rooms = load_checkpoint(&app.db, Projection::Rooms).await.expect("reads").last_sequence;
    let positions = ProjectionPositions::start(app.db.clone());
    positions.wait_for(&[Projection::Analytics], rooms, Duration::from_secs(10)).await.expect("analytics catches up");
}

#[tokio::test]
async fn a_host_sees_the_meeting_and_an_admin_sees_the_day() {
    let app = spawn_app().await;
    let host = app.new_user("Host").await;
    let guest = app.new_user("Guest").await;
    let late = app.new_user("Late").await;
    let room = app.create_room(&host, json!({ "name": "Standup", "maxUsers": 10 })).await;

    // One meeting: host and guest join, a third person comes and goes, then the
    // guest leaves and the host ends the room while still in it.
    for user in [&host, &guest, &late] {
        app.post(&format!("/api/v1/rooms/{room}/join"), Some(&user.token), json!({})).await.expect(200);
    }
    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&late.token), json!({})).await.expect(200);
    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&guest.token), json!({})).await.expect(200);
    app.post(&format!("/api/v1/rooms/{room}/end"), Some(&host.token), json!({})).await.expect(200);
    analytics_caught_up(&app).await;

    let answer = app.get(&format!("/api/v1/analytics/rooms/{room}"), &host.token).await;
    answer.expect(200);
    let data = answer.data();
    assert_eq!(data["roomId"], json!(room));
    let totals = &data["totals"];
    assert_eq!(totals["meetings"], json!(1), "{data:#}");
    assert_eq!(totals["meetingsEnded"], json!(1), "{data:#}");
    assert_eq!(totals["uniqueParticipants"], json!(3), "{data:#}");
    assert_eq!(totals["peakConcurrency"], json!(3), "{data:#}");
    assert!(totals["participantMinutes"].as_f64().is_some_and(|minutes| minutes >= 0.0), "{data:#}");
    assert!(totals["averageMeetingMinutes"].as_f64().is_some_and(|minutes| minutes >= 0.0), "{data:#}");
    let days = data["days"].as_array().expect("days");
    assert!(!days.is_empty(), "{data:#}");
    assert!(days.iter().all(|day| day["rooms"] == json!(1)));

    // Only the host: not a participant, not another user.
    app.get(&format!("/api/v1/analytics/rooms/{room}"), &guest.token).await.expect_error(403, "not_host");
    let unknown = uuid::Uuid::new_v4();
    app.get(&format!("/api/v1/analytics/rooms/{unknown}"), &host.token).await.expect_error(404, "room_not_found");

    // Across rooms: administrators only.
    app.get("/api/v1/analytics/daily", &host.token).await.expect_error(403, "not_admin");
    let admin = app.new_user("Admin").await;
    make_admin(&app, &admin).await;
    let today = Utc::now().date_naive();
    let daily = app.get("/api/v1/analytics/daily", &admin.token).await;
    daily.expect(200);
    let rows = daily.data().as_array().expect("rows");
    assert!(!rows.is_empty(), "{:#}", daily.body);
    let meetings: u64 = rows.iter().map(|row| row["meetings"].as_u64().expect("meetings")).sum();
    assert_eq!(meetings, 1, "{:#}", daily.body);
    assert!(rows.iter().any(|row| row["uniqueParticipants"] == json!(3)), "{:#}", daily.body);
    let explicit = app.get(&format!("/api/v1/analytics/daily?from={today}&to={today}"), &admin.token).await;
    explicit.expect(200);

    // A range before anything happened is empty; malformed ranges are 400.
    let empty = app.get("/api/v1/analytics/daily?from=2000-01-01&to=2000-01-31", &admin.token).await;
    empty.expect(200);
    assert_eq!(empty.data(), &json!([]));
    app.get("/api/v1/analytics/daily?from=yesterday", &admin.token).await.expect_error(400, "invalid_query");
    app.get("/api/v1/analytics/daily?from=2024-02-01&to=2024-01-01", &admin.token)
        .await
        .expect_error(400, "invalid_query");
    app.get("/api/v1/analytics/daily?from=2020-01-01&to=2024-01-01", &admin.token)
        .await
        .expect_error(400, "invalid_query");
}
