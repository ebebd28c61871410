//! Web push (SPEC §7) end to end: subscriptions through REST, a notification
//! caused through REST, the push channel encrypting and signing it, and a push
//! service stand-in on loopback (`service.rs`) that checks the VAPID JWT and
//! decrypts the message with the subscription's private keys.

mod channel;
mod service;

use std::time::Duration;

use rapat_delivery::push::VapidKey;
use rapat_delivery::{Channel, Delivery, SendError, Sender};
use rapat_testkit::eventually_async;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use self::channel::{PushChannel, push_config, push_sender};
use self::service::{PushService, Subscription};
use crate::helpers::{TestApp, TestUser, spawn_app_with};
use crate::rooms::room_body;

const WAIT: Duration = Duration::from_secs(20);

async fn push_app() -> TestApp {
    spawn_app_with(|config| config.push = push_config()).await
}

/// `user` wants invitations by push too.
async fn push_invitations_on(app: &TestApp, user: &TestUser) {
    let body = json!({ "notifications": { "room_invitation": { "inApp": true, "email": false, "push": true } } });
    app.put("/api/v1/users/settings", &user.token, body).await.expect(200);
}

async fn vapid_key(app: &TestApp, base_url: &str) -> String {
    let answer = app.http.get(format!("{base_url}/api/v1/push/vapid-public-key")).send().await.expect("sent");
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.expect("json");
    body["data"]["publicKey"].as_str().expect("a key").to_owned()
}

async fn subscribe(app: &TestApp, service: &PushService, user: &TestUser, name: &str) -> Subscription {
    let subscription = Subscription::new(name);
    service.add(&subscription);
    app.post("/api/v1/push/subscriptions", Some(&user.token), subscription.json(service)).await.expect(201);
    subscription
}

/// A host invites `invitee` to a new room; returns the room id.
async fn invite(app: &TestApp, host: &TestUser, invitee: &TestUser, name: &str) -> String {
    let room = app.create_room(host, room_body(name)).await;
    let body = json!({ "userIds": [invitee.id] });
    app.post(&format!("/api/v1/rooms/{room}/invitations"), Some(&host.token), body).await.expect(201);
    room
}

async fn endpoints_of(app: &TestApp, user: &TestUser) -> Vec<String> {
    sqlx::query_scalar("SELECT endpoint FROM push_subscriptions WHERE user_id = $1 ORDER BY endpoint")
        .bind(Uuid::parse_str(&user.id).expect("a uuid"))
        .fetch_all(&app.db)
        .await
        .expect("query")
}

/// The newest notification of `user`, through REST.
async fn newest_notification(app: &TestApp, user: &TestUser) -> Value {
    let listed = app.get("/api/v1/notifications?limit=1", &user.token).await;
    listed.expect(200);
    listed.data()[0].clone()
}

async fn setup() -> (TestApp, PushService, TestUser, TestUser) {
    let app = push_app().await;
    let service = PushService::start().await;
    service.expect_vapid_key(&vapid_key(&app, &app.base_url).await);
    let host = app.new_user("Hana").await;
    let ana = app.new_user("Ana").await;
    push_invitations_on(&app, &ana).await;
    (app, service, host, ana)
}

#[tokio::test]
async fn an_invitation_arrives_encrypted_signed_and_readable() {
    let (app, service, host, ana) = setup().await;
    subscribe(&app, &service, &ana, "laptop").await;
    let _channel = PushChannel::start(&app).await;

    let room = invite(&app, &host, &ana, "Design review").await;
    eventually_async("the push message", WAIT, async || !service.received("laptop").is_empty()).await;
    let received = service.received("laptop");
    assert_eq!(received.len(), 1, "{received:?}");
    let notification = newest_notification(&app, &ana).await;
    let message = &received[0].message;
    assert_eq!(message["title"], "Invitation");
    assert_eq!(message["body"], "Hana Tester invited you to Design review");
    assert_eq!(message["url"], format!("/#/rooms/{room}"));
    assert_eq!(message["kind"], "room_invitation");
    assert_eq!(message["notificationId"], notification["id"]);
    let id = Uuid::parse_str(notification["id"].as_str().expect("an id")).expect("a uuid");
    assert_eq!(received[0].topic.as_deref(), Some(id.simple().to_string().as_str()));
    assert_eq!(received[0].urgency.as_deref(), Some("normal"));
    assert_eq!(received[0].ttl.as_deref(), Some("86400"));
    assert_eq!(service.refused(), Vec::<String>::new());
}

#[tokio::test]
async fn every_subscription_of_the_user_receives_and_others_do_not() {
    let (app, service, host, ana) = setup().await;
    subscribe(&app, &service, &ana, "laptop").await;
    subscribe(&app, &service, &ana, "phone").await;
    // The host subscribed too, but the invitation is not theirs.
    subscribe(&app, &service, &host, "host-laptop").await;
    let _channel = PushChannel::start(&app).await;

    invite(&app, &host, &ana, "Planning").await;
    eventually_async("both messages", WAIT, async || {
        service.received("laptop").len() == 1 && service.received("phone").len() == 1
    })
    .await;
    assert_eq!(service.received("laptop")[0].message, service.received("phone")[0].message);
    assert!(service.received("host-laptop").is_empty());
    assert_eq!(service.refused(), Vec::<String>::new());
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_not_sent_to_again() {
    let (app, service, host, ana) = setup().await;
    subscribe(&app, &service, &ana, "kept").await;
    subscribe(&app, &service, &ana, "gone").await;
    service.answer("gone", 410);
    let _channel = PushChannel::start(&app).await;

    invite(&app, &host, &ana, "First").await;
    eventually_async("the kept one receives", WAIT, async || service.received("kept").len() == 1).await;
    eventually_async("the gone one removed", WAIT, async || {
        endpoints_of(&app, &ana).await == vec![service.endpoint("kept")]
    })
    .await;
    assert_eq!(service.answered("gone"), 1);
    // The removal is an event like any other: in the audit trail (a projection of
    // its own, which may lag a moment), its reason given.
    eventually_async("the removal in the audit trail", WAIT, async || {
        let reason: Option<String> = sqlx::query_scalar(
            "SELECT payload ->> 'reason' FROM audit_events WHERE event_type = 'PushUnsubscribed' AND aggregate_id = $1",
        )
        .bind(&ana.id)
        .fetch_optional(&app.db)
        .await
        .expect("query");
        reason.as_deref() == Some("gone")
    })
    .await;

    invite(&app, &host, &ana, "Second").await;
    eventually_async("the second message", WAIT, async || service.received("kept").len() == 2).await;
    assert_eq!(service.answered("gone"), 1, "nothing more is sent to a gone subscription");
    assert_eq!(service.refused(), Vec::<String>::new());
}

/// The push delivery of `user`'s newest notification: (state, attempts, last error).
async fn push_delivery(app: &TestApp, user: &TestUser) -> Option<(String, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT state, attempts, last_error FROM deliveries WHERE channel = 'push' AND recipient_id = $1 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(Uuid::parse_str(&user.id).expect("a uuid"))
    .fetch_optional(&app.db)
    .await
    .expect("query")
}

#[tokio::test]
async fn a_push_service_that_is_down_gets_the_message_once_it_is_back() {
    let (app, service, host, ana) = setup().await;
    subscribe(&app, &service, &ana, "laptop").await;
    let _channel = PushChannel::start(&app).await;

    service.stop().await;
    invite(&app, &host, &ana, "Retrospective").await;
    eventually_async("a failed attempt, kept for a retry", WAIT, async || {
        push_delivery(&app, &ana).await.is_some_and(|(state, attempts, error)| {
            state == "pending" && attempts >= 2 && error.is_some_and(|e| e.contains("unreachable"))
        })
    })
    .await;
    assert!(service.received("laptop").is_empty());
    assert_eq!(endpoints_of(&app, &ana).await.len(), 1, "an outage removes no subscription");

    service.restart().await;
    eventually_async("the message, once the service is back", WAIT, async || !service.received("laptop").is_empty())
        .await;
    eventually_async("the delivery recorded", WAIT, async || {
        push_delivery(&app, &ana).await.is_some_and(|(state, _, _)| state == "delivered")
    })
    .await;
    let notification = newest_notification(&app, &ana).await;
    assert_eq!(service.received("laptop").len(), 1);
    assert_eq!(service.received("laptop")[0].message["notificationId"], notification["id"]);
    assert_eq!(service.refused(), Vec::<String>::new());
}

#[tokio::test]
async fn a_retried_delivery_goes_only_to_the_subscriptions_that_failed() {
    let (app, service, host, ana) = setup().await;
    subscribe(&app, &service, &ana, "laptop").await;
    subscribe(&app, &service, &ana, "phone").await;
    service.answer("phone", 503);
    let sender = push_sender(&app).await;
    invite(&app, &host, &ana, "Retrospective").await;
    let notification = newest_notification(&app, &ana).await;
    let delivery = Delivery {
        id: Uuid::new_v4(),
        channel: Channel::Push,
        kind: "room_invitation".to_owned(),
        recipient_id: Some(Uuid::parse_str(&ana.id).expect("a uuid")),
        address: None,
        notification_id: notification["id"].as_str().map(|id| Uuid::parse_str(id).expect("a uuid")),
        payload: notification["payload"].clone(),
        event_id: Uuid::new_v4(),
        created_at: chrono::Utc::now(),
        enqueued_at: chrono::Utc::now(),
        attempts: 1,
    };
    match sender.send(&delivery).await {
        Err(SendError::Retry(reason)) => assert!(reason.contains("503"), "{reason}"),
        other => panic!("a 503 means try again later, got {other:?}"),
    }
    assert_eq!((service.received("laptop").len(), service.answered("phone")), (1, 1));

    service.unanswer("phone");
    sender.send(&Delivery { attempts: 2, ..delivery.clone() }).await.expect("delivered to the rest");
    assert_eq!((service.received("laptop").len(), service.received("phone").len()), (1, 1), "the laptop had it");
    sender.send(&Delivery { attempts: 3, ..delivery }).await.expect("nothing left to send");
    assert_eq!((service.received("laptop").len(), service.received("phone").len()), (1, 1));
    assert_eq!(service.refused(), Vec::<String>::new());
}

#[tokio::test]
async fn the_vapid_key_is_made_once_and_shared_by_every_process() {
    let app = push_app().await;
    let first = vapid_key(&app, &app.base_url).await;
    let second_gateway = app.second_gateway().await;
    assert_eq!(vapid_key(&app, &second_gateway).await, first, "a second gateway signs with the same key");
    // Processes starting together agree on the first key kept.
    let (a, b) = tokio::join!(VapidKey::resolve(None, &app.db), VapidKey::resolve(None, &app.db));
    assert_eq!(a.expect("a key").public_key(), first);
    assert_eq!(b.expect("a key").public_key(), first);
    assert_eq!(first.len(), 87, "65 bytes of base64url: {first}");

    // A configured key (here PEM, PKCS#8) wins over the kept one.
    let configured = spawn_app_with(|config| config.push.vapid_private_key = Some(CONFIGURED_PEM.to_owned())).await;
    assert_eq!(vapid_key(&configured, &configured.base_url).await, CONFIGURED_PUBLIC);
}

/// A throwaway P-256 key (openssl genpkey), and its public key in base64url.
const CONFIGURED_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjMQgWjcuxBaJj/EG
oyxb+A3bDhdRdmcPbjj8fxAm+W+hRANCAAS4h2Ejuh0AfXwsYH2sNUSs5ZXcRaao
QtQdpU/tqdVgO/aJKQwRCYVGvhIAoEs+cj5C4c7ljjpkcpE/uDZjfgYU
-----END PRIVATE KEY-----";
const CONFIGURED_PUBLIC: &str =
    "BLiHYSO6HQB9fCxgfaw1RKzlldxFpqhC1B2lT-2p1WA79okpDBEJhUa-EgCgSz5yPkLhzuWOOmRykT-4NmN-BhQ";

#[tokio::test]
async fn bad_subscriptions_are_refused_and_removal_is_the_users() {
    let app = spawn_app_with(|config| config.push = rapat_delivery::push::PushConfig::default()).await;
    let service = PushService::start().await;
    let ana = app.new_user("Ana").await;
    let good = Subscription::new("laptop").json(&service);
    let post = async |body: Value| app.post("/api/v1/push/subscriptions", Some(&ana.token), body).await;
    // Without RAPAT_PUSH_ALLOW_INSECURE, http and private addresses are refused.
    post(good.clone()).await.expect_error(400, "invalid_subscription");
    let https = |endpoint: &str| with_field(&good, "/endpoint", json!(endpoint));
    post(https("https://10.1.2.3/push/x")).await.expect_error(400, "invalid_subscription");
    post(https("not a url")).await.expect_error(400, "invalid_subscription");
    let valid = https("https://push.example.net/send/abc");
    let bad_key = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfQ";
    for body in [
        with_field(&valid, "/keys/p256dh", json!(bad_key)),
        with_field(&valid, "/keys/p256dh", json!("AAAA")),
        with_field(&valid, "/keys/auth", json!("AAECAwQ")),
        with_field(&valid, "/keys/auth", json!(17)),
        json!({ "endpoint": "https://push.example.net/send/abc" }),
    ] {
        let answer = post(body.clone()).await;
        assert_eq!(answer.status.as_u16(), 400, "{body}: {:#}", answer.body);
        assert_eq!(answer.body["success"], false);
    }
    let anonymous = app.request(Method::POST, "/api/v1/push/subscriptions", None, Some(valid.clone())).await;
    anonymous.expect(401);

    post(valid.clone()).await.expect(201);
    post(valid.clone()).await.expect(201);
    for n in 1..20 {
        post(with_field(&valid, "/endpoint", json!(format!("https://push.example.net/send/{n}")))).await.expect(201);
    }
    post(with_field(&valid, "/endpoint", json!("https://push.example.net/send/20")))
        .await
        .expect_error(409, "too_many_subscriptions");

    let delete = async |endpoint: &str| {
        let body = json!({ "endpoint": endpoint });
        app.request(Method::DELETE, "/api/v1/push/subscriptions", Some(&ana.token), Some(body)).await
    };
    delete("https://push.example.net/send/abc").await.expect(200);
    delete("https://push.example.net/send/abc").await.expect_error(404, "subscription_not_found");
    assert_eq!(endpoints_of(&app, &ana).await.len(), 19);
    // The auth secret never reaches the audit trail.
    app.audit_caught_up().await;
    let secrets: Vec<String> =
        sqlx::query_scalar("SELECT payload ->> 'authSecret' FROM audit_events WHERE event_type = 'PushSubscribed'")
            .fetch_all(&app.db)
            .await
            .expect("query");
    assert_eq!(secrets.len(), 20);
    assert!(secrets.iter().all(|secret| secret == "[redacted]"), "{secrets:?}");
}

fn with_field(body: &Value, path: &str, value: Value) -> Value {
    let mut body = body.clone();
    *body.pointer_mut(path).expect("a field") = value;
    body
}

#[tokio::test]
async fn the_sender_reaches_no_private_address_unless_allowed() {
    let (app, service, host, ana) = setup().await;
    // Accepted by a gateway that allows loopback (as in a test), under a name
    // that resolves to loopback: only the sender's resolver stands in the way.
    let subscription = Subscription::new("laptop");
    service.add(&subscription);
    let mut body = subscription.json(&service);
    let endpoint = body["endpoint"].as_str().expect("an endpoint").replace("127.0.0.1", "localhost");
    body["endpoint"] = json!(endpoint);
    app.post("/api/v1/push/subscriptions", Some(&ana.token), body).await.expect(201);
    invite(&app, &host, &ana, "Internal").await;
    let notification = newest_notification(&app, &ana).await;
    let delivery = Delivery {
        id: Uuid::new_v4(),
        channel: Channel::Push,
        kind: "room_invitation".to_owned(),
        recipient_id: Some(Uuid::parse_str(&ana.id).expect("a uuid")),
        address: None,
        notification_id: None,
        payload: notification["payload"].clone(),
        event_id: Uuid::new_v4(),
        created_at: chrono::Utc::now(),
        enqueued_at: chrono::Utc::now(),
        attempts: 1,
    };
    let nats = rapat_commands::connect(&app.nats_url).await.expect("NATS");
    let strict = rapat_delivery::push::PushConfig { allow_insecure: false, ..push_config() };
    let sender = rapat_delivery::push::PushSender::open(nats, app.event_store.clone(), app.db.clone(), strict)
        .await
        .expect("opens");
    match sender.send(&delivery).await {
        Err(SendError::Retry(reason)) => assert!(reason.contains("unreachable"), "{reason}"),
        other => panic!("a private address is not reached, got {other:?}"),
    }
    assert!(service.received("laptop").is_empty());
    push_sender(&app).await.send(&delivery).await.expect("reached where allowed");
    assert_eq!(service.received("laptop").len(), 1);
}
