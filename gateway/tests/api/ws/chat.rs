//! Chat is stored on its own stream before it is broadcast, and a late joiner
//! reads it back through `GET /rooms/{roomId}/chat`.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::{connected, room_with};
use crate::helpers::{TestApp, nats_url, spawn_app};
use crate::rooms::{join, leave};

fn chat_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/chat")
}

fn chat_stream(app: &TestApp) -> String {
    app.namespace.chat_stream()
}

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(rapat_commands::connect(&nats_url()).await.expect("NATS"))
}

fn texts(page: &Value) -> Vec<&str> {
    page["messages"].as_array().expect("messages").iter().filter_map(|m| m["message"].as_str()).collect()
}

#[tokio::test]
async fn a_late_joiner_reads_the_chat_so_far() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&second, &room, &guests[0].token).await;

    let mut ids = Vec::new();
    for (sender, text) in [("a", "selamat pagi"), ("b", "pagi!"), ("a", "mulai ya")] {
        let client = if sender == "a" { &mut a } else { &mut b };
        client.send(json!({ "type": "chat", "payload": { "message": text } })).await;
        let heard = a.expect("chat").await;
        assert_eq!(heard["payload"]["message"], text);
        assert_eq!(b.expect("chat").await["payload"], heard["payload"], "everyone hears the same stored message");
        ids.push(heard["payload"]["id"].as_u64().expect("a stored chat carries its id"));
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    let late = app.new_user("Citra").await;
    join(&app, &late, &room, json!({})).await.expect(200);
    let history = app.get(&chat_path(&room), &late.token).await;
    history.expect(200);
    let page = history.data();
    assert_eq!(texts(page), ["selamat pagi", "pagi!", "mulai ya"], "oldest first");
    assert_eq!(page["nextBefore"], Value::Null);
    let first = &page["messages"][0];
    assert_eq!(first["id"], ids[0]);
    assert_eq!(first["roomId"], room.as_str());
    assert_eq!(first["userId"], host.id.as_str());
    assert_eq!(first["username"], "Hana Tester");
    assert!(chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().expect("timestamp")).is_ok());
    assert_eq!(page["messages"][1]["userId"], guests[0].id.as_str());

    // Pages walk back with nextBefore.
    let newest = app.get(&format!("{}?limit=2", chat_path(&room)), &late.token).await;
    assert_eq!(texts(newest.data()), ["pagi!", "mulai ya"]);
    assert_eq!(newest.data()["nextBefore"], ids[1]);
    let older = app.get(&format!("{}?limit=2&before={}", chat_path(&room), ids[1]), &late.token).await;
    assert_eq!(texts(older.data()), ["selamat pagi"]);
    assert_eq!(older.data()["nextBefore"], Value::Null);
}

#[tokio::test]
async fn chat_history_is_for_the_host_and_present_and_past_participants() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let stranger = app.new_user("Sam").await;

    app.get(&chat_path(&room), &stranger.token).await.expect_error(403, "not_a_participant");
    app.get(&chat_path(&Uuid::new_v4().to_string()), &host.token).await.expect_error(404, "room_not_found");
    app.get(&chat_path("not-a-uuid"), &host.token).await.expect_error(400, "invalid_path");
    for query in ["limit=0", "limit=101", "before=0", "limit=ten"] {
        app.get(&format!("{}?{query}", chat_path(&room)), &host.token).await.expect_error(400, "invalid_query");
    }
    let empty = app.get(&chat_path(&room), &guests[0].token).await;
    empty.expect(200);
    assert_eq!(empty.data(), &json!({ "messages": [], "nextBefore": null }));

    // The host reads it even when not in the room, and so does a past participant.
    leave(&app, &host, &room).await.expect(200);
    app.get(&chat_path(&room), &host.token).await.expect(200);
    leave(&app, &guests[0], &room).await.expect(200);
    app.get(&chat_path(&room), &guests[0].token).await.expect(200);
    app.get(&chat_path(&room), &stranger.token).await.expect_error(403, "not_a_participant");
}

#[tokio::test]
async fn chat_lives_on_its_own_limited_stream() {
    let app = spawn_app().await;
    let (room, host, _) = room_with(&app, &[]).await;
    let jetstream = jetstream().await;
    let mut events = jetstream.get_stream(app.namespace.events_stream()).await.expect("event stream");
    let events_before = events.info().await.expect("event stream info").state.messages;

    let mut a = connected(&app.base_url, &room, &host.token).await;
    a.send(json!({ "type": "chat", "payload": { "message": "halo" } })).await;
    let id = a.expect("chat").await["payload"]["id"].as_u64().expect("id");

    let mut stream = jetstream.get_stream(chat_stream(&app)).await.expect("the chat stream exists");
    let info = stream.info().await.expect("stream info");
    let namespace = &app.namespace;
    assert_eq!(info.config.subjects, [namespace.all_chat_subjects()]);
    assert_eq!(info.config.max_messages_per_subject, 1000);
    assert_eq!(info.config.max_age, Duration::from_secs(30 * 24 * 3600));
    let stored = stream.get_last_raw_message_by_subject(&namespace.chat_subject(&room)).await.expect("stored");
    assert_eq!(stored.sequence, id);
    let body: Value = serde_json::from_slice(&stored.payload).expect("JSON");
    assert_eq!(body["message"], "halo");
    assert_eq!(body["userId"], host.id.as_str());

    // Not on the event stream: the read models never replay chat.
    let events_after = events.info().await.expect("event stream info").state.messages;
    assert_eq!(events_after, events_before);
}

#[tokio::test]
async fn a_chat_that_cannot_be_stored_is_refused_and_not_broadcast() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&app.base_url, &room, &guests[0].token).await;
    a.send(json!({ "type": "chat", "payload": { "message": "first" } })).await;
    assert_eq!(b.expect("chat").await["payload"]["message"], "first");

    // The chat stream disappears under the running gateway.
    jetstream().await.delete_stream(chat_stream(&app)).await.expect("deleted");
    a.send(json!({ "type": "chat", "payload": { "message": "lost" } })).await;
    let error = a.expect("error").await;
    assert_eq!(error["payload"]["code"], "chat_unavailable");

    // The next message makes sure of the stream again, and only it reaches B.
    a.send(json!({ "type": "chat", "payload": { "message": "again" } })).await;
    let next = b.expect("chat").await;
    assert_eq!(next["payload"]["message"], "again", "the unstored message was never broadcast");
    let history = app.get(&chat_path(&room), &guests[0].token).await;
    assert_eq!(texts(history.data()), ["again"]);
}

#[tokio::test]
async fn the_chat_route_documents_its_page() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let operation = &document["paths"]["/api/v1/rooms/{roomId}/chat"]["get"];
    let parameters: Vec<&str> =
        operation["parameters"].as_array().expect("parameters").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(parameters, ["roomId", "limit", "before"]);
    let page = &document["components"]["schemas"]["ChatPage"];
    assert!(page["properties"]["messages"].is_object() && page["properties"]["nextBefore"].is_object(), "{page:#}");
    let entry = &document["components"]["schemas"]["ChatEntry"]["properties"];
    for field in ["id", "roomId", "userId", "username", "message", "timestamp"] {
        assert!(entry[field].is_object(), "ChatEntry.{field}: {entry:#}");
    }
}
