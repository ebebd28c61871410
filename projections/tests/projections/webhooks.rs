//! The webhooks projection: one delivery per matching endpoint and event stored
//! after the endpoint's registration, with the body secrets redacted, and a
//! rebuild that neither queues history again nor touches delivery state.

use std::time::Duration;

use rapat_domain::credentials::PasswordHash;
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use rapat_domain::webhook::{WebhookEvent, WebhookSecret, WebhookUrl, parse_event_types};
use rapat_projections::{Projection, rebuild, webhook_delivery_id};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestEnv;

fn created(host: UserId) -> RoomEvent {
    RoomEvent::RoomCreated {
        host_id: host,
        name: RoomName::parse("Planning".into()).expect("valid name"),
        description: RoomDescription::parse(String::new()).expect("valid description"),
        password_hash: Some(PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into())),
        max_users: MaxUsers::parse(10).expect("valid max"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

fn registered(patterns: &[&str]) -> WebhookEvent {
    WebhookEvent::WebhookRegistered {
        url: WebhookUrl::parse("https://hooks.example.com/rapat").expect("url"),
        event_types: parse_event_types(patterns).expect("patterns"),
        description: String::new(),
        secret: WebhookSecret::from_key(&[5; 32]),
    }
}

async fn queued(env: &TestEnv, endpoint: Uuid) -> Vec<(Uuid, Uuid, String)> {
    sqlx::query_as(
        "SELECT id, event_id, body FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY stream_sequence, event_index",
    )
    .bind(endpoint)
    .fetch_all(&env.pool)
    .await
    .expect("reads deliveries")
}

#[tokio::test]
async fn matching_events_after_registration_are_queued_once_and_a_rebuild_neither_requeues_nor_loses_state() {
    let env = TestEnv::new().await;
    let projector = env.spawn_projector(env.pool.clone());
    let host = UserId::new_random();
    env.append("room", Uuid::new_v4(), &[created(host)]).await;
    let (rooms, ended, disabled) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    env.append("webhook", rooms, &[registered(&["room.*"])]).await;
    env.append("webhook", ended, &[registered(&["RoomEnded"])]).await;
    env.append("webhook", disabled, &[registered(&["*"])]).await;
    let off = WebhookEvent::WebhookUpdated { url: None, event_types: None, enabled: Some(false), description: None };
    env.append("webhook", disabled, &[off]).await;
    for _ in 0..3 {
        env.append("room", Uuid::new_v4(), &[created(host)]).await;
    }
    env.wait_caught_up(Duration::from_secs(30)).await;

    let to_rooms = queued(&env, rooms).await;
    assert_eq!(to_rooms.len(), 3, "the room created before the registration is not sent");
    assert!(queued(&env, ended).await.is_empty());
    assert!(queued(&env, disabled).await.is_empty(), "a disabled endpoint is queued nothing");
    for (id, event, body) in &to_rooms {
        assert_eq!(*id, webhook_delivery_id(rooms, *event));
        let body: Value = serde_json::from_str(body).expect("json");
        assert_eq!(body["type"], json!("RoomCreated"));
        assert_eq!(body["data"]["passwordHash"], json!("[redacted]"));
    }
    sqlx::query("UPDATE webhook_deliveries SET status = 'delivered', attempts = 1 WHERE id = $1")
        .bind(to_rooms[0].0)
        .execute(&env.pool)
        .await
        .expect("marks one delivered");
    let before = env.table("webhook_deliveries", "id").await;
    let endpoints = env.table("webhook_endpoints", "id").await;

    // Rebuilt beside the running projector, as `rapat rebuild webhooks` does.
    let report = rebuild(&env.pool, &env.jetstream, &env.config, Projection::Webhooks, |_| {}).await.expect("rebuilds");
    assert!(report.events > 0);
    assert_eq!(env.table("webhook_deliveries", "id").await, before, "a rebuild leaves the queue as it was");
    assert_eq!(env.table("webhook_endpoints", "id").await, endpoints, "the endpoints fold the same again");

    env.append("room", Uuid::new_v4(), &[created(host)]).await;
    env.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(queued(&env, rooms).await.len(), 4, "queueing goes on after the rebuild, once per event");
    projector.stop().await;
}
