//! Sending: signatures and rotation, stream order through an outage, give-up and
//! manual retry, and two workers on one database.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rapat_testkit::eventually_async;
use serde_json::json;

use super::receiver::{Received, Receiver};
use super::{Worker, app_and_admin, create_rooms, deliveries, queued_in_order, quick, register};

/// The ids a receiver accepted (answered 2xx), in the order it accepted them.
fn accepted(received: &[Received]) -> Vec<String> {
    received.iter().filter(|r| (200..300).contains(&r.answered)).map(|r| r.webhook_id.clone()).collect()
}

/// [`accepted`] with repeats dropped (at least once: an attempt whose answer was
/// lost is sent again, with the same id), keeping the first of each.
fn first_accepted(received: &[Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    accepted(received).into_iter().filter(|id| seen.insert(id.clone())).collect()
}

#[tokio::test]
async fn events_arrive_signed_with_the_body_of_the_spec_and_a_rotation_signs_with_both_secrets() {
    let (app, admin) = app_and_admin().await;
    let receiver = Receiver::start().await;
    let (id, secret) = register(&app, &admin, &receiver.url(), json!(["RoomCreated"])).await;
    receiver.verify_with(&[&secret]);
    let _worker = Worker::start(&app, quick(Duration::from_secs(60)));
    let room = create_rooms(&app, &admin, 1).await.remove(0);
    eventually_async("the first delivery", Duration::from_secs(20), async || receiver.received().len() == 1).await;
    let first = receiver.received().remove(0);
    assert!(first.verified && first.answered == 204, "{first:?}");
    assert_eq!(first.body["type"], json!("RoomCreated"));
    assert_eq!(first.body["aggregateType"], json!("room"));
    assert_eq!(first.body["aggregateId"], json!(room));
    assert_eq!(first.body["actor"], json!(admin.id));
    assert_eq!(first.body["id"], json!(first.webhook_id));
    assert!(first.body["occurredAt"].is_string() && first.body["data"]["name"] == json!("Standup 0"), "{first:?}");
    assert_eq!(first.signature.split(' ').count(), 1);

    let rotated = app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), Some(&admin.token), json!({})).await;
    rotated.expect(200);
    let new_secret = rotated.data()["secret"].as_str().expect("secret").to_owned();
    // A receiver still on the old secret, and one already on the new: both verify.
    receiver.verify_with(&[&secret, &new_secret]);
    create_rooms(&app, &admin, 1).await;
    eventually_async("the delivery after the rotation", Duration::from_secs(20), async || {
        receiver.received().len() == 2
    })
    .await;
    let second = receiver.received().remove(1);
    assert!(second.verified && second.answered == 204, "{second:?}");
    assert_eq!(second.signature.split(' ').count(), 2, "{}", second.signature);
    let delivered = deliveries(&app, &admin, &id, "?status=delivered").await;
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0]["lastStatusCode"], json!(204));
}

#[tokio::test]
async fn a_receiver_down_for_30_seconds_then_back_gets_every_event_in_stream_order() {
    let (app, admin) = app_and_admin().await;
    let mut receiver = Receiver::start().await;
    let (id, secret) = register(&app, &admin, &receiver.url(), json!(["room.*"])).await;
    receiver.verify_with(&[&secret]);
    let _worker = Worker::start(&app, quick(Duration::from_secs(3600)));
    create_rooms(&app, &admin, 3).await;
    eventually_async("the first deliveries", Duration::from_secs(20), async || receiver.received().len() >= 3).await;

    receiver.stop().await;
    let down_since = Instant::now();
    create_rooms(&app, &admin, 20).await;
    // Down for 30 s while the worker keeps trying the oldest one.
    eventually_async("30 s of outage with retries", Duration::from_secs(60), async || {
        let retried = deliveries(&app, &admin, &id, "?status=pending")
            .await
            .iter()
            .any(|delivery| delivery["attempts"].as_u64() >= Some(3));
        retried && down_since.elapsed() >= Duration::from_secs(30)
    })
    .await;
    receiver.restart().await;

    let expected = queued_in_order(&app, &id).await;
    assert_eq!(expected.len(), 23);
    eventually_async("every event delivered", Duration::from_secs(60), async || {
        first_accepted(&receiver.received()).len() >= expected.len()
    })
    .await;
    let received = receiver.received();
    assert!(received.iter().all(|r| r.verified), "a signature did not verify");
    assert_eq!(first_accepted(&received), expected, "accepted out of stream order, or one missing");
    let repeats = accepted(&received).len() - expected.len();
    assert!(repeats <= 1, "{repeats} events accepted twice: only one can be in flight when the receiver stops");
    let distinct: HashSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(distinct.len(), expected.len());
    assert!(deliveries(&app, &admin, &id, "?status=pending").await.is_empty());
}

#[tokio::test]
async fn a_receiver_answering_500_forever_ends_failed_without_blocking_later_events_and_a_manual_retry_resends() {
    let (app, admin) = app_and_admin().await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (id, _) = register(&app, &admin, &receiver.url(), json!(["RoomCreated"])).await;
    let _worker = Worker::start(&app, quick(Duration::from_secs(2)));
    create_rooms(&app, &admin, 2).await;
    eventually_async("both deliveries failed", Duration::from_secs(30), async || {
        deliveries(&app, &admin, &id, "?status=failed").await.len() == 2
    })
    .await;
    let failed = deliveries(&app, &admin, &id, "?status=failed").await;
    for delivery in &failed {
        assert!(delivery["attempts"].as_u64() >= Some(2), "{delivery}");
        assert_eq!(delivery["lastStatusCode"], json!(500));
        assert!(delivery["lastError"].as_str().is_some_and(|error| error.contains("500")), "{delivery}");
        assert!(delivery["nextAttemptAt"].is_null());
    }
    let tries_before = receiver.received().len();

    receiver.answer(200);
    let retried = &failed[1];
    let delivery_id = retried["id"].as_str().expect("id");
    let answer =
        app.post(&format!("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"), Some(&admin.token), json!({})).await;
    answer.expect(200);
    assert_eq!(answer.data()["status"], json!("pending"));
    eventually_async("the retried delivery delivered", Duration::from_secs(20), async || {
        deliveries(&app, &admin, &id, "?status=delivered").await.len() == 1
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), tries_before + 1);
    assert_eq!(received.last().map(|r| r.webhook_id.as_str()), retried["eventId"].as_str());
    app.post(&format!("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"), Some(&admin.token), json!({}))
        .await
        .expect_error(409, "delivery_not_failed");
    let audit = app.get("/api/v1/audit/events?eventType=WebhookDeliveryRetried", &admin.token).await;
    assert_eq!(audit.data().as_array().map(Vec::len), Some(1), "{}", audit.body);
}

#[tokio::test]
async fn two_workers_on_one_database_deliver_each_event_once_per_endpoint_in_order() {
    let (app, admin) = app_and_admin().await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let (first_id, first_secret) = register(&app, &admin, &first.url(), json!(["room.*"])).await;
    let (second_id, second_secret) = register(&app, &admin, &second.url(), json!(["*"])).await;
    first.verify_with(&[&first_secret]);
    second.verify_with(&[&second_secret]);
    let _workers =
        [Worker::start(&app, quick(Duration::from_secs(60))), Worker::start(&app, quick(Duration::from_secs(60)))];
    create_rooms(&app, &admin, 25).await;
    for (receiver, endpoint) in [(&first, &first_id), (&second, &second_id)] {
        eventually_async("every event queued", Duration::from_secs(30), async || {
            queued_in_order(&app, endpoint).await.len() >= 25
        })
        .await;
        let expected = queued_in_order(&app, endpoint).await;
        eventually_async("every event delivered", Duration::from_secs(60), async || {
            receiver.received().len() >= expected.len()
        })
        .await;
        let received = receiver.received();
        assert!(received.iter().all(|r| r.verified));
        // Every attempt was answered 2xx, so there is no reason for a second one.
        assert_eq!(accepted(&received), expected, "an event twice, missing or out of order");
    }
}
