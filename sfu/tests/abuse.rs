//! What one user or an anonymous sender on the network can make the SFU hold:
//! peers per user and room, and routes from spoofed STUN. Real webrtc-rs peers
//! and real UDP against an SFU on a real NATS.

mod common;

use std::time::Duration;

use common::{eventually, harness};
use rapat_sfu::loopback_client::{ClientOptions, RtpCodecKind};

const CONNECT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_newer_peers_replace_their_oldest_beyond_the_per_user_cap() {
    let h = harness().await;
    assert_eq!(rapat_sfu::SfuConfig::DEFAULT_MAX_PEERS_PER_USER, 3);
    h.join(h.host).await;
    let _publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let user = h.participant().await;
    let stream = h.host.to_string();

    let mut connections = Vec::new();
    for _ in 0..6 {
        let connection = h.connect(user, ClientOptions::subscriber()).await;
        let stats = connection.stats();
        eventually("media at the user's newest connection", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > 10).await;
        connections.push(connection);
        // The host's peer and at most three of the user's.
        eventually("the user's oldest peer closed", Duration::from_secs(5), || h.sfu.handle().peers() <= 4).await;
    }

    let codes = |index: usize| -> Vec<String> {
        let errors = connections[index].stats().errors.lock().expect("errors").clone();
        errors.iter().map(|error| error["code"].as_str().unwrap_or_default().to_string()).collect()
    };
    for replaced in 0..3 {
        assert_eq!(codes(replaced), ["peer_replaced"], "connection {replaced} was told why its media stopped");
    }
    for kept in 3..6 {
        assert!(codes(kept).is_empty(), "connection {kept}: {:?}", codes(kept));
        let stats = connections[kept].stats();
        let before = stats.packets_from(&stream, RtpCodecKind::Video);
        eventually("media keeps flowing to the newest three", Duration::from_secs(5), || stats.packets_from(&stream, RtpCodecKind::Video) > before + 30).await;
    }
    let oldest = connections[0].stats();
    let frozen = oldest.packets_from(&stream, RtpCodecKind::Video);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(oldest.packets_from(&stream, RtpCodecKind::Video), frozen, "no media to a replaced peer");
    assert!(!oldest.errors.lock().expect("errors").is_empty());
}
