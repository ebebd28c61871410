//! Active speakers end to end: real webrtc-rs publishers send the RFC 6464
//! audio level, the SFU ranks them and every peer of the room hears the list
//! over the gateway's NATS subjects.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, harness};
use rapat_sfu::loopback_client::{ClientOptions, ClientStats};

const CONNECT: Duration = Duration::from_secs(15);

/// The latest list a client was sent: (userId, level), loudest first.
fn latest(stats: &ClientStats) -> Vec<(String, f64)> {
    let speakers = stats.speakers.lock().expect("lock");
    let Some((_, payload)) = speakers.last() else { return Vec::new() };
    payload["speakers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| (s["userId"].as_str().unwrap_or_default().to_string(), s["level"].as_f64().unwrap_or(-1.0)))
                .collect()
        })
        .unwrap_or_default()
}

fn users(stats: &ClientStats) -> Vec<String> {
    latest(stats).into_iter().map(|(user, _)| user).collect()
}

fn count(stats: &Arc<ClientStats>) -> usize {
    stats.speakers.lock().expect("lock").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_louder_publisher_is_listed_first_and_the_list_follows_a_swap() {
    let h = harness().await;
    h.join(h.host).await;
    let (one, two) = (h.host, h.participant().await);
    let first = h.connect(one, ClientOptions::publisher()).await;
    let second = h.connect(two, ClientOptions::publisher()).await;
    let listener = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let (one, two) = (one.to_string(), two.to_string());
    let stats = listener.stats();
    let started = Instant::now();

    // Without the extension nobody is a speaker, however much audio flows.
    eventually("audio flowing", CONNECT, || {
        stats.tracks().iter().filter(|t| t.kind == Some(rapat_sfu::loopback_client::RtpCodecKind::Audio)).count() == 2
            && stats.tracks().iter().all(|t| t.packets > 25)
    })
    .await;
    assert_eq!(count(&stats), 0, "no list without audio levels: {:?}", stats.speakers.lock().expect("lock"));

    first.peer.set_audio_level(Some(10));
    second.peer.set_audio_level(Some(30));
    eventually("the louder first", CONNECT, || users(&stats) == [one.clone(), two.clone()]).await;
    let levels: Vec<f64> = latest(&stats).into_iter().map(|(_, level)| level).collect();
    assert!(levels[0] > levels[1], "levels {levels:?}");
    let publisher = first.stats();
    eventually("the publishers hear it too", Duration::from_secs(2), || {
        users(&publisher) == [one.clone(), two.clone()]
    })
    .await;

    first.peer.set_audio_level(Some(30));
    second.peer.set_audio_level(Some(10));
    let swapped = Instant::now();
    eventually("the order swaps", Duration::from_secs(5), || users(&stats) == [two.clone(), one.clone()]).await;
    println!("swap seen {:?} after the levels changed", swapped.elapsed());

    // Steady levels: once the window has settled, no more messages.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = count(&stats);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&stats), settled, "a steady room sends nothing new");

    // Silence empties the list, once.
    first.peer.set_audio_level(Some(127));
    second.peer.set_audio_level(Some(127));
    eventually("the list empties", Duration::from_secs(5), || count(&stats) > settled && users(&stats).is_empty())
        .await;

    // Sent at most every 300 ms: never more lists than 300 ms periods.
    let lists = count(&stats);
    assert!(lists as u128 <= started.elapsed().as_millis() / 300 + 1, "{lists} lists in {:?}", started.elapsed());
    println!("{lists} lists in {:?}", started.elapsed());
}
