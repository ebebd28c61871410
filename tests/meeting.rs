//! Two webrtc-rs clients hold a meeting through `rapat serve`: REST to register,
//! create and join, the WebSocket for signaling, the SFU for media (ICE, DTLS,
//! SRTP over loopback UDP). Then the host ends the room and the media stops.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rapat_sfu::loopback_client::{ClientOptions, LoopbackClient, RtpCodecKind, Signal};
use rapat_testkit::eventually;
use serde_json::{Value, json};
use support::{Served, User};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// One socket of a participant and the loopback peer that negotiates over it.
struct Attendee {
    peer: LoopbackClient,
    /// `(type, userId)` of every message the socket received, in order.
    seen: Arc<Mutex<Vec<(String, String)>>>,
    /// Dropping it closes the socket as a network drop would (no leave).
    _hang_up: oneshot::Sender<()>,
}

impl Attendee {
    fn saw(&self, kind: &str, user: &str) -> usize {
        let seen = self.seen.lock().expect("seen");
        seen.iter().filter(|(seen_kind, seen_user)| seen_kind == kind && seen_user == user).count()
    }
}

/// Opens the user's WebSocket and a loopback peer whose SFU negotiation goes over it.
async fn attend(served: &Served, room: &str, user: &User) -> Attendee {
    let url = format!("ws://{}/ws?roomId={room}&token={}", served.address, user.token);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket upgrade");
    let (mut write, mut read) = socket.split();
    let (to_sfu, mut from_client) = unbounded_channel::<Signal>();
    let (to_client, from_sfu) = unbounded_channel::<Signal>();
    let (hang_up, mut hung_up) = oneshot::channel::<()>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = read.next().await {
            let Message::Text(text) = frame else { continue };
            let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
            let kind = message["type"].as_str().unwrap_or_default();
            let user = message["userId"].as_str().unwrap_or_default();
            log.lock().expect("seen").push((kind.to_string(), user.to_string()));
            let from_sfu = message.get("targetUserId").is_none() && message["username"] == "sfu";
            if from_sfu && matches!(kind, "offer" | "answer" | "ice-candidate" | "error") {
                let _ = to_client.send((kind.to_string(), message["payload"].clone()));
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                signal = from_client.recv() => {
                    let Some((kind, payload)) = signal else { break };
                    let text = json!({ "type": kind, "payload": payload }).to_string();
                    if write.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                _ = &mut hung_up => break,
            }
        }
        // Both halves go away without a close frame, as when a network drops.
        reader.abort();
    });
    let peer = LoopbackClient::start(ClientOptions::publisher(), to_sfu, from_sfu).await.expect("peer starts");
    Attendee { peer, seen, _hang_up: hang_up }
}

/// Ayu's room, which Ayu and Bima have joined over REST.
async fn two_in_a_room(served: &Served) -> (User, User, String) {
    let (ayu, bima) = (served.new_user("Ayu").await, served.new_user("Bima").await);
    let room = served.post("/api/v1/rooms", Some(&ayu.token), None, json!({ "name": "Standup", "maxUsers": 5 })).await;
    let room = room["id"].as_str().expect("room id").to_string();
    for who in [&ayu, &bima] {
        served.post(&format!("/api/v1/rooms/{room}/join"), Some(&who.token), None, json!({})).await;
    }
    (ayu, bima, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_media_through_rapat_serve_until_the_room_ends() {
    let served = Served::start(&[
        ("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"),
        ("RAPAT_ICE_SERVERS", r#"[{"urls":"stun:stun.example.org:3478"}]"#),
    ])
    .await;
    let (ayu, bima, room) = two_in_a_room(&served).await;

    let ayu_socket = attend(&served, &room, &ayu).await;
    let bima_socket = attend(&served, &room, &bima).await;
    let (ayu_stats, bima_stats) = (ayu_socket.peer.stats(), bima_socket.peer.stats());
    eventually("each receives the other's video and audio", Duration::from_secs(20), || {
        ayu_stats.packets_from(&bima.id, RtpCodecKind::Video) > 100
            && ayu_stats.packets_from(&bima.id, RtpCodecKind::Audio) > 30
            && bima_stats.packets_from(&ayu.id, RtpCodecKind::Video) > 100
            && bima_stats.packets_from(&ayu.id, RtpCodecKind::Audio) > 30
    })
    .await;
    for track in ayu_stats.tracks().iter().chain(bima_stats.tracks().iter()) {
        assert_eq!(track.out_of_order, 0, "in order on loopback: {track:?}");
    }

    served.post(&format!("/api/v1/rooms/{room}/end"), Some(&ayu.token), None, json!({})).await;
    let ended = Instant::now();
    let received = || {
        ayu_stats.packets_from(&bima.id, RtpCodecKind::Video) + bima_stats.packets_from(&ayu.id, RtpCodecKind::Video)
    };
    let mut last = received();
    let mut changed = Instant::now();
    while changed.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if received() != last {
            last = received();
            changed = Instant::now();
        }
        assert!(ended.elapsed() < Duration::from_secs(5), "media kept flowing after the room ended");
    }
    let took = changed.saturating_duration_since(ended);
    assert!(took <= Duration::from_secs(1), "media stopped {took:?} after the room ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_sfu_peer_per_user_a_second_socket_takes_the_media_over() {
    let served = Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"), ("RAPAT_SFU_MAX_PEERS_PER_USER", "1")]).await;
    let ayu = served.new_user("Ayu").await;
    let room = served.post("/api/v1/rooms", Some(&ayu.token), None, json!({ "name": "Standup", "maxUsers": 5 })).await;
    let room = room["id"].as_str().expect("room id").to_string();
    served.post(&format!("/api/v1/rooms/{room}/join"), Some(&ayu.token), None, json!({})).await;

    let first = attend(&served, &room, &ayu).await;
    let first_stats = first.peer.stats();
    eventually("the first socket's peer connects", Duration::from_secs(20), || {
        first_stats.connected.load(Ordering::Relaxed)
    })
    .await;
    let second = attend(&served, &room, &ayu).await;
    let second_stats = second.peer.stats();
    eventually("the second socket's peer connects", Duration::from_secs(20), || {
        second_stats.connected.load(Ordering::Relaxed)
    })
    .await;
    eventually("the first socket is told its peer was replaced", Duration::from_secs(5), || {
        first_stats.errors.lock().is_ok_and(|errors| errors.iter().any(|error| error["code"] == "peer_replaced"))
    })
    .await;
    assert!(second_stats.errors.lock().expect("errors").is_empty());

    // Operators see it: one peer, routed from one verified address (reported every few seconds).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(served.url("/metrics")).await.expect("metrics").text().await.expect("text");
        if metrics.lines().any(|line| line == "rapat_sfu_peers 1")
            && metrics.lines().any(|line| line == "rapat_sfu_routes 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no rapat_sfu_peers 1 and rapat_sfu_routes 1 in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SPEC §9: a socket that drops and comes back within 30 s keeps its place. The
/// others see no `user_left` / `user_joined`, and media flows again over a new
/// peer connection (the SFU's peer belongs to the socket that negotiated it; a
/// new socket, on any gateway, negotiates a new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_that_comes_back_resumes_media_without_leaving() {
    let served = Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0")]).await;
    let (ayu, bima, room) = two_in_a_room(&served).await;
    let ayu_socket = attend(&served, &room, &ayu).await;
    let bima_socket = attend(&served, &room, &bima).await;
    let ayu_stats = ayu_socket.peer.stats();
    eventually("Ayu receives Bima's video and audio", Duration::from_secs(20), || {
        ayu_stats.packets_from(&bima.id, RtpCodecKind::Video) > 100
            && ayu_stats.packets_from(&bima.id, RtpCodecKind::Audio) > 30
    })
    .await;

    drop(bima_socket);
    let dropped = Instant::now();
    // The SFU closes the dropped socket's peer: Bima's media stops.
    let mut last = ayu_stats.packets_from(&bima.id, RtpCodecKind::Video);
    let mut changed = Instant::now();
    while changed.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = ayu_stats.packets_from(&bima.id, RtpCodecKind::Video);
        if now != last {
            (last, changed) = (now, Instant::now());
        }
        assert!(dropped.elapsed() < Duration::from_secs(10), "Bima's media kept flowing without a socket");
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let bima_again = attend(&served, &room, &bima).await;
    let before = ayu_stats.packets_from(&bima.id, RtpCodecKind::Video);
    eventually("Bima's media reaches Ayu again after the reconnect", Duration::from_secs(20), || {
        ayu_stats.packets_from(&bima.id, RtpCodecKind::Video) > before + 100
    })
    .await;
    let bima_stats = bima_again.peer.stats();
    eventually("Bima receives Ayu again on the new peer connection", Duration::from_secs(20), || {
        bima_stats.packets_from(&ayu.id, RtpCodecKind::Video) > 100
    })
    .await;
    assert!(dropped.elapsed() < Duration::from_secs(30), "the resume took {:?}", dropped.elapsed());
    assert_eq!(ayu_socket.saw("user_left", &bima.id), 0, "no user_left for a dropped socket");
    assert_eq!(ayu_socket.saw("user_joined", &bima.id), 0, "no user_joined for a socket that came back");
    let participants = reqwest::Client::new()
        .get(served.url(&format!("/api/v1/rooms/{room}/participants")))
        .bearer_auth(&ayu.token)
        .send()
        .await
        .expect("participants")
        .json::<Value>()
        .await
        .expect("json");
    assert!(participants.to_string().contains(&bima.id), "Bima is still a participant: {participants}");
}
