//! Signaling order and room placement on a real NATS: messages that arrive in an
//! order a load driver (or a slow gateway) produces are still answered, and a
//! message the SFU cannot handle gets an `error`, not silence.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Harness, eventually, harness};
use rapat_sfu::loopback_client::ClientOptions;
use rapat_wire::signal::{SfuRequest, SfuRequestKind};
use serde_json::json;
use uuid::Uuid;

/// Well under the 5 s for which a node believes another node owns a room.
const AT_ONCE: Duration = Duration::from_secs(3);

/// An ICE candidate for the harness's room from a connection with no peer.
async fn stray_candidate(h: &Harness) {
    let request = SfuRequest {
        kind: SfuRequestKind::IceCandidate,
        room_id: h.room,
        user_id: h.host.as_uuid(),
        username: "host".into(),
        connection_id: Uuid::new_v4(),
        payload: json!({ "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0" }),
    };
    let body = serde_json::to_vec(&request).expect("writes");
    h.nats.publish(h.namespace.sfu_inbound_subject(h.room), body.into()).await.expect("publish");
    h.nats.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_candidate_ahead_of_the_first_offer_does_not_stop_the_offer() {
    let h = harness().await;
    h.join(h.host).await;
    stray_candidate(&h).await;
    let started = Instant::now();
    let client = h.connect(h.host, ClientOptions::publisher()).await;
    let stats = client.stats();
    eventually("the SFU's answer", AT_ONCE, || stats.answers_received.load(Ordering::Relaxed) == 1).await;
    println!("answered {:?} after the offer", started.elapsed());
    assert!(stats.errors.lock().expect("errors").is_empty(), "errors: {:?}", stats.errors.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_nodes_a_room_claimed_by_a_candidate_is_answered_once() {
    let h = harness().await;
    let _second = h.another_sfu_node().await;
    h.join(h.host).await;
    stray_candidate(&h).await;
    let client = h.connect(h.host, ClientOptions::publisher()).await;
    let stats = client.stats();
    eventually("the SFU's answer", AT_ONCE, || stats.answers_received.load(Ordering::Relaxed) == 1).await;
    // A second answer (or an error from the node that does not own the room) would come within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.answers_received.load(Ordering::Relaxed), 1, "one node answered");
    assert!(stats.errors.lock().expect("errors").is_empty(), "errors: {:?}", stats.errors.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_the_sfu_cannot_place_gets_an_error() {
    let h = harness().await;
    h.join(h.host).await;
    // Without its placement bucket no node can tell who owns a room.
    let jetstream = async_nats::jetstream::new(h.nats.clone());
    jetstream.delete_key_value(h.namespace.sfu_rooms_bucket()).await.expect("bucket deleted");
    let client = h.connect(h.host, ClientOptions::publisher()).await;
    let stats = client.stats();
    // The claim's JetStream publish finds no stream and fails on its ack timeout (5 s).
    eventually("an error for the offer", Duration::from_secs(15), || stats.errors.lock().is_ok_and(|e| !e.is_empty()))
        .await;
    let errors = stats.errors.lock().expect("errors").clone();
    assert_eq!(errors[0]["code"], "sfu_unavailable");
    assert_eq!(stats.answers_received.load(Ordering::Relaxed), 0);
}
