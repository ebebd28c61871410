//! `/notifications` (SPEC §6): the list (newest first, cursor pages, unread filter),
//! the unread count, marking one or all read, and refusals of bad input.

use std::collections::HashSet;
use std::time::Duration;

use rapat_testkit::eventually_async;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, spawn_app};
use crate::rooms::{join, room_body};

const WAIT: Duration = Duration::from_secs(20);

/// `adder` adds `user` as a contact, then takes them off again: one `contact_added`
/// notification for `user` each time.
async fn add_and_remove(app: &TestApp, adder: &TestUser, user: &TestUser) {
    app.post("/api/v1/users/contacts", Some(&adder.token), json!({ "contactId": user.id })).await.expect(201);
    app.delete(&format!("/api/v1/users/contacts/{}", user.id), &adder.token).await.expect(200);
}

async fn unread(app: &TestApp, user: &TestUser) -> u64 {
    let counted = app.get("/api/v1/notifications/unread-count", &user.token).await;
    counted.expect(200);
    counted.data()["count"].as_u64().expect("a count")
}

async fn wait_unread(app: &TestApp, user: &TestUser, expected: u64) {
    eventually_async(&format!("{expected} unread notifications"), WAIT, async || unread(app, user).await == expected)
        .await;
}

/// Every page of the user's notifications, following `nextCursor`.
async fn all_pages(app: &TestApp, user: &TestUser, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/notifications?{query}&cursor={cursor}"),
            None => format!("/api/v1/notifications?{query}"),
        };
        let page = app.get(&path, &user.token).await;
        page.expect(200);
        pages.push(page.data().as_array().expect("a list").clone());
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn notifications_page_newest_first_and_are_marked_read() {
    let app = spawn_app().await;
    let ana = app.new_user("Ana").await;
    let budi = app.new_user("Budi").await;
    for _ in 0..23 {
        add_and_remove(&app, &budi, &ana).await;
    }
    wait_unread(&app, &ana, 23).await;
    assert_eq!(unread(&app, &budi).await, 0, "the actor is not told");

    let pages = all_pages(&app, &ana, "limit=10").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
    let all: Vec<&Value> = pages.iter().flatten().collect();
    let ids: HashSet<&str> = all.iter().map(|n| n["id"].as_str().expect("an id")).collect();
    assert_eq!(ids.len(), 23, "no notification twice across pages");
    let times: Vec<&str> = all.iter().map(|n| n["createdAt"].as_str().expect("a time")).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first);
    let first = all[0];
    assert_eq!(first["kind"], "contact_added");
    assert_eq!(first["readAt"], Value::Null);
    assert_eq!(first["payload"]["actor"], json!({ "id": budi.id, "name": "Budi Tester" }));
    // The default page is 20.
    let default = app.get("/api/v1/notifications", &ana.token).await;
    assert_eq!(default.data().as_array().map(Vec::len), Some(20));

    // One read: someone else's or an unknown id is not found.
    let id = first["id"].as_str().expect("an id");
    app.post(&format!("/api/v1/notifications/{id}/read"), Some(&budi.token), json!({}))
        .await
        .expect_error(404, "notification_not_found");
    let unknown = Uuid::new_v4();
    app.post(&format!("/api/v1/notifications/{unknown}/read"), Some(&ana.token), json!({}))
        .await
        .expect_error(404, "notification_not_found");
    let read = app.post(&format!("/api/v1/notifications/{id}/read"), Some(&ana.token), json!({})).await;
    read.expect(200);
    assert_eq!(read.data()["id"], id);
    assert!(read.data()["readAt"].is_string(), "{:?}", read.body);
    // Read-your-writes: the count already shows it; reading again changes nothing.
    assert_eq!(unread(&app, &ana).await, 22);
    let again = app.post(&format!("/api/v1/notifications/{id}/read"), Some(&ana.token), json!({})).await;
    again.expect(200);
    assert_eq!(again.data()["readAt"], read.data()["readAt"]);

    let unread_pages = all_pages(&app, &ana, "unread=true&limit=100").await;
    assert_eq!(unread_pages.len(), 1);
    assert_eq!(unread_pages[0].len(), 22);
    assert!(unread_pages[0].iter().all(|n| n["id"] != id && n["readAt"].is_null()));

    let all_read = app.post("/api/v1/notifications/read-all", Some(&ana.token), json!({})).await;
    all_read.expect(200);
    assert_eq!(all_read.data()["count"], 0);
    assert_eq!(unread(&app, &ana).await, 0);
    let listed = app.get("/api/v1/notifications?limit=100", &ana.token).await;
    assert!(listed.data().as_array().expect("a list").iter().all(|n| n["readAt"].is_string()));
    assert_eq!(app.get("/api/v1/notifications?unread=true", &ana.token).await.data(), &json!([]));
}

#[tokio::test]
async fn a_meetings_start_and_a_removal_are_told_to_whom_they_concern() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Gita").await;
    let room = app.create_room(&host, room_body("Standup")).await;
    // The guest starts the meeting: the host is told, the guest is not.
    join(&app, &guest, &room, json!({})).await.expect(200);
    join(&app, &host, &room, json!({})).await.expect(200);
    wait_unread(&app, &host, 1).await;
    let started = app.get("/api/v1/notifications", &host.token).await;
    assert_eq!(started.data()[0]["kind"], "meeting_started");
    assert_eq!(started.data()[0]["payload"]["room"], json!({ "id": room, "name": "Standup" }));
    assert_eq!(started.data()[0]["payload"]["actor"]["id"], guest.id.as_str());

    let path = format!("/api/v1/rooms/{room}/participants/{}/remove", guest.id);
    app.post(&path, Some(&host.token), json!({})).await.expect(200);
    wait_unread(&app, &guest, 1).await;
    let removed = app.get("/api/v1/notifications", &guest.token).await;
    assert_eq!(removed.data()[0]["kind"], "removed_from_room");
    assert_eq!(removed.data()[0]["payload"]["actor"]["id"], host.id.as_str());
    // Joining again does not start the meeting again.
    assert_eq!(unread(&app, &host).await, 1);
}

#[tokio::test]
async fn bad_input_gets_a_400_and_no_token_a_401() {
    let app = spawn_app().await;
    let ana = app.new_user("Ana").await;
    for query in ["limit=0", "limit=101", "limit=abc", "limit=-1", "unread=maybe", "cursor=!!", "cursor=djE6eDp5"] {
        let answer = app.get(&format!("/api/v1/notifications?{query}"), &ana.token).await;
        assert_eq!(answer.status.as_u16(), 400, "{query}: {:?}", answer.body);
        assert_eq!(answer.body["success"], false, "{query}");
    }
    let answer = app.post("/api/v1/notifications/not-a-uuid/read", Some(&ana.token), json!({})).await;
    assert_eq!(answer.status.as_u16(), 400, "{:?}", answer.body);
    for path in ["/api/v1/notifications", "/api/v1/notifications/unread-count"] {
        let answer = app.request(reqwest::Method::GET, path, None, None).await;
        assert_eq!(answer.status.as_u16(), 401, "{path}");
    }
    let answer = app.post("/api/v1/notifications/read-all", None, json!({})).await;
    assert_eq!(answer.status.as_u16(), 401);
}
