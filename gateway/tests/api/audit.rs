//! `GET /api/v1/audit/events`: the whole audit trail, for administrators only,
//! filtered and paged by cursor.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rapat_commands::{Argon2idHasher, CommandBus, CommandMetadata, JetStreamEventStore};
use rapat_domain::account::{Account, AccountCommand, Role};
use rapat_domain::services::DomainServices;
use rapat_projections::{Projection, ProjectionPositions};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, nats_url, spawn_app};

/// Gives `user` a role the way `rapat admin grant` does (a system command on the
/// account), then waits until the users read model shows it.
pub(crate) async fn grant(app: &TestApp, user: &TestUser, role: Role) {
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let store = JetStreamEventStore::<Account>::open(nats, app.event_store.clone()).await.expect("store");
    let bus = CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new())));
    let outcome =
        bus.execute(&user.id, AccountCommand::GrantRole { role }, CommandMetadata::system()).await.expect("granted");
    let positions = ProjectionPositions::start(app.db.clone());
    positions
        .wait_for(&[Projection::Accounts, Projection::Audit], outcome.stream_sequence, Duration::from_secs(10))
        .await
        .expect("visible");
}

async fn audit(app: &TestApp, token: &str, query: &str) -> crate::helpers::TestResponse {
    app.get(&format!("/api/v1/audit/events{query}"), token).await
}

/// Every event the query selects, following `nextCursor` with pages of `limit`.
async fn all_pages(app: &TestApp, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if query.is_empty() { "?" } else { "&" };
        let mut url = format!("{query}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = audit(app, token, &url).await;
        page.expect(200);
        let data = page.data().as_array().expect("an array").clone();
        assert!(data.len() <= limit as usize);
        events.extend(data);
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    events
}

fn summary(events: &[Value]) -> Vec<(Option<String>, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().map(str::to_owned),
                e["aggregateType"].as_str().unwrap_or("").to_owned(),
                e["eventType"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_admin_sees_every_change_of_a_meeting_story_with_its_actor_in_order() {
    let app = spawn_app().await;
    let ayu = app.new_user("Ayu").await;
    let bima = app.new_user("Bima").await;
    app.put("/api/v1/users/profile", &ayu.token, json!({ "firstName": "Ayuningtyas" })).await.expect(200);
    app.post("/api/v1/users/contacts", Some(&ayu.token), json!({ "contactId": bima.id })).await.expect(201);
    let room = app.create_room(&ayu, json!({ "name": "Standup", "maxUsers": 5, "password": "room-pass" })).await;
    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&ayu.token), json!({})).await.expect(200);
    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&bima.token), json!({ "password": "room-pass" }))
        .await
        .expect(200);
    app.post(&format!("/api/v1/rooms/{room}/participants/{}/mute", bima.id), Some(&ayu.token), json!({}))
        .await
        .expect(200);
    app.post(&format!("/api/v1/rooms/{room}/participants/{}/remove", bima.id), Some(&ayu.token), json!({}))
        .await
        .expect(200);
    app.post(&format!("/api/v1/rooms/{room}/end"), Some(&ayu.token), json!({})).await.expect(200);

    let admin = app.new_user("Admin").await;
    audit(&app, &admin.token, "").await.expect_error(403, "not_admin");
    grant(&app, &admin, Role::Admin).await;
    // The role is checked in the read model, so the admin's existing token works.
    let events = all_pages(&app, &admin.token, "", 500).await;

    let (a, b) = (Some(ayu.id.clone()), Some(bima.id.clone()));
    let story: Vec<_> = summary(&events)
        .into_iter()
        .filter(|(actor, kind, _)| {
            (actor == &a || actor == &b || actor.is_none()) && ["account", "contacts", "room"].contains(&kind.as_str())
        })
        .collect();
    let t = |actor: &Option<String>, kind: &str, event: &str| (actor.clone(), kind.to_owned(), event.to_owned());
    assert_eq!(
        story,
        vec![
            // Registration asks for the address's verification in the same command.
            t(&a, "account", "AccountRegistered"),
            t(&a, "account", "EmailVerificationRequested"),
            t(&b, "account", "AccountRegistered"),
            t(&b, "account", "EmailVerificationRequested"),
            t(&a, "account", "ProfileUpdated"),
            t(&a, "contacts", "ContactAdded"),
            t(&a, "room", "RoomCreated"),
            t(&a, "room", "ParticipantJoined"),
            t(&b, "room", "ParticipantJoined"),
            t(&a, "room", "ParticipantMutedByHost"),
            t(&a, "room", "ParticipantRemoved"),
            t(&a, "room", "RoomEnded"),
            t(&None, "account", "RoleGranted"),
        ]
    );

    // Stream order, every field of the envelope, and no password hash.
    let positions: Vec<(u64, u64)> = events
        .iter()
        .map(|e| (e["streamSequence"].as_u64().expect("seq"), e["aggregateVersion"].as_u64().expect("version")))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "in stream order: {positions:?}");
    let created = events.iter().find(|e| e["eventType"] == "RoomCreated").expect("RoomCreated");
    for field in ["eventId", "aggregateId", "schemaVersion", "commandId", "occurredAt", "correlationId"] {
        assert!(!created[field].is_null(), "{field} in {created:#}");
    }
    assert_eq!(created["aggregateId"], json!(room));
    assert_eq!(created["payload"]["passwordHash"], json!("[redacted]"));
    let registered = events.iter().find(|e| e["eventType"] == "AccountRegistered").expect("AccountRegistered");
    assert_eq!(registered["payload"]["passwordHash"], json!("[redacted]"));
    assert!(!serde_json::to_string(&events).expect("json").contains("$argon2"), "no hash anywhere");
}

#[tokio::test]
async fn filters_and_cursor_pages_cover_the_trail_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, json!({ "name": "Retro", "maxUsers": 5 })).await;
    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&guest.token), json!({})).await.expect(200);
    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&guest.token), json!({})).await.expect(200);
    app.post(&format!("/api/v1/rooms/{room}/join"), Some(&guest.token), json!({})).await.expect(200);
    let admin = app.new_user("Admin").await;
    grant(&app, &admin, Role::Admin).await;

    let everything = all_pages(&app, &admin.token, "", 500).await;
    let paged = all_pages(&app, &admin.token, "", 2).await;
    assert_eq!(paged, everything, "pages of 2 give the same events, once each");
    let ids: HashSet<&str> = paged.iter().filter_map(|e| e["eventId"].as_str()).collect();
    assert_eq!(ids.len(), paged.len());
    let first = audit(&app, &admin.token, "").await;
    assert!(first.data().as_array().is_some_and(|page| page.len() == everything.len().min(50)));

    let room_events = all_pages(&app, &admin.token, &format!("?aggregateType=room&aggregateId={room}"), 2).await;
    let kinds: Vec<&str> = room_events.iter().filter_map(|e| e["eventType"].as_str()).collect();
    assert_eq!(kinds, ["RoomCreated", "ParticipantJoined", "ParticipantLeft", "ParticipantJoined"]);
    let by_guest = all_pages(&app, &admin.token, &format!("?actor={}&aggregateType=room", guest.id), 2).await;
    assert_eq!(by_guest.len(), 3);
    let joins = all_pages(&app, &admin.token, "?eventType=ParticipantJoined", 1).await;
    assert_eq!(joins.len(), 2);

    let created_at = room_events[0]["occurredAt"].as_str().expect("time").to_owned();
    let last_at = room_events[3]["occurredAt"].as_str().expect("time").to_owned();
    let from = all_pages(&app, &admin.token, &format!("?aggregateType=room&from={}", urlencode(&created_at)), 2).await;
    assert_eq!(from.len(), 4);
    let window = all_pages(
        &app,
        &admin.token,
        &format!("?aggregateType=room&from={}&to={}", urlencode(&created_at), urlencode(&last_at)),
        2,
    )
    .await;
    assert_eq!(window.len(), 3, "to is exclusive");
    let none = audit(&app, &admin.token, "?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await;
    none.expect(200);
    assert_eq!(none.data(), &json!([]));
    assert_eq!(none.body["nextCursor"], Value::Null);
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_filters_are_400_and_only_admins_get_in() {
    let app = spawn_app().await;
    let member = app.new_user("Mira").await;
    let no_token = app.request(reqwest::Method::GET, "/api/v1/audit/events", None, None).await;
    no_token.expect_error(401, "missing_token");
    audit(&app, &member.token, "").await.expect_error(403, "not_admin");

    grant(&app, &member, Role::Admin).await;
    audit(&app, &member.token, "").await.expect(200);
    for query in [
        "?limit=0",
        "?limit=501",
        "?limit=x",
        "?from=yesterday",
        "?to=2025-13-01T00:00:00Z",
        "?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
    ] {
        audit(&app, &member.token, query).await.expect_error(400, "invalid_query");
    }
    for cursor in ["garbage!", "djE6eA"] {
        audit(&app, &member.token, &format!("?cursor={cursor}")).await.expect_error(400, "invalid_cursor");
    }

    // A revoked admin is refused at once, with the token that worked a moment ago.
    grant(&app, &member, Role::Member).await;
    audit(&app, &member.token, "").await.expect_error(403, "not_admin");
}

/// Secrets are redacted when the audit trail is written, not only when it is read:
/// the table itself holds no password hash (account or room) and no refresh-token hash.
#[tokio::test]
async fn the_audit_table_holds_no_password_or_refresh_token_hash() {
    let app = spawn_app().await;
    let host = app.new_user("Rahasia").await;
    let room = app.create_room(&host, json!({ "name": "Locked", "maxUsers": 3, "password": "open sesame" })).await;
    app.put(&format!("/api/v1/rooms/{room}"), &host.token, json!({ "password": "another one" })).await.expect(200);
    app.post("/api/v1/auth/refresh", None, json!({ "refreshToken": host.refresh_token })).await.expect(200);
    // A refresh waits only for the sessions read model: wait for the audit trail too.
    let jetstream = async_nats::jetstream::new(rapat_commands::connect(&nats_url()).await.expect("NATS"));
    let mut stream = jetstream.get_stream(app.namespace.events_stream()).await.expect("stream");
    let last = stream.info().await.expect("stream info").state.last_sequence;
    let positions = ProjectionPositions::start(app.db.clone());
    positions.wait_for(&[Projection::Audit], last, Duration::from_secs(10)).await.expect("the audit trail caught up");

    let hashes: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE payload::text LIKE '%argon2%'")
        .fetch_one(&app.db)
        .await
        .expect("query");
    assert_eq!(hashes, 0, "a password hash is stored in the audit trail");
    let redacted: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, key FROM audit_events, jsonb_each_text(payload) AS field(key, value) \
         WHERE key IN ('passwordHash', 'refreshHash') AND value = '[redacted]' ORDER BY stream_sequence",
    )
    .fetch_all(&app.db)
    .await
    .expect("query");
    let kinds: HashSet<(&str, &str)> = redacted.iter().map(|(event, key)| (event.as_str(), key.as_str())).collect();
    for expected in [
        ("AccountRegistered", "passwordHash"),
        ("RoomCreated", "passwordHash"),
        ("RoomSettingsUpdated", "passwordHash"),
        ("SessionStarted", "refreshHash"),
        ("SessionRefreshed", "refreshHash"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} not stored redacted: {redacted:?}");
    }
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events, jsonb_each_text(payload) AS field(key, value) \
         WHERE key IN ('passwordHash', 'refreshHash') AND value <> '[redacted]'",
    )
    .fetch_one(&app.db)
    .await
    .expect("query");
    assert_eq!(stored, 0);
}
