//! What one user or an anonymous sender on the network can make the SFU hold:
//! peers per user and room, and routes from spoofed STUN. Real webrtc-rs peers
//! and real UDP against an SFU on a real NATS.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Client, Harness, eventually, harness, harness_with_port_range};
use rand::distr::Alphanumeric;
use rand::{Rng, RngCore};
use rapat_domain::room::RoomCommand;
use rapat_sfu::loopback_client::{ClientOptions, RtpCodecKind};
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
use rtc::stun::textattrs::Username;

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
        eventually("media at the user's newest connection", CONNECT, || {
            stats.packets_from(&stream, RtpCodecKind::Video) > 10
        })
        .await;
        connections.push(connection);
        // The host's peer and at most three of the user's.
        eventually("the user's oldest peer closed", Duration::from_secs(5), || h.sfu.handle().peers() <= 4).await;
    }

    let codes = |connection: &Client| -> Vec<String> {
        let errors = connection.stats().errors.lock().expect("errors").clone();
        errors.iter().map(|error| error["code"].as_str().unwrap_or_default().to_string()).collect()
    };
    let (replaced, kept) = connections.split_at(3);
    for (index, connection) in replaced.iter().enumerate() {
        assert_eq!(codes(connection), ["peer_replaced"], "connection {index} was told why its media stopped");
    }
    for (index, connection) in kept.iter().enumerate() {
        assert!(codes(connection).is_empty(), "connection {}: {:?}", index + 3, codes(connection));
        let stats = connection.stats();
        let before = stats.packets_from(&stream, RtpCodecKind::Video);
        eventually("media keeps flowing to the newest three", Duration::from_secs(5), || {
            stats.packets_from(&stream, RtpCodecKind::Video) > before + 30
        })
        .await;
    }
    let oldest = replaced[0].stats();
    let frozen = oldest.packets_from(&stream, RtpCodecKind::Video);
    // Media flowing to the newest peer meanwhile is how long the oldest had to get any.
    let newest = kept[2].stats();
    let flowing = newest.packets_from(&stream, RtpCodecKind::Video);
    eventually("media at the newest peer", Duration::from_secs(5), || {
        newest.packets_from(&stream, RtpCodecKind::Video) > flowing + 60
    })
    .await;
    assert_eq!(oldest.packets_from(&stream, RtpCodecKind::Video), frozen, "no media to a replaced peer");
}

fn random_text(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// A STUN binding request as a client sends it; `password: None` leaves out MESSAGE-INTEGRITY.
fn binding_request(username: &str, password: Option<&str>) -> Vec<u8> {
    let provider = rtc::crypto::default_provider().expect("a crypto provider");
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(ATTR_USERNAME, username.to_string())),
    ];
    if let Some(password) = password {
        setters.push(Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            password.to_string(),
            provider.crypto(),
        )));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut message = Message::new();
    message.build(&setters).expect("a binding request");
    message.raw
}

/// Spoofed datagrams: binding requests with random usernames, with usernames
/// shaped like the SFU's (peer number, separator, random), with real peers'
/// ufrags and a wrong password or none, and random bytes.
fn spoofs(real_ufrags: &[String], count: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    (0..count)
        .map(|n| match n % 5 {
            0 => binding_request(&format!("{}:{}", random_text(12), random_text(4)), Some(&random_text(24))),
            1 => binding_request(
                &format!("{:x}z{}:{}", rng.random_range(1..64u32), random_text(8), random_text(4)),
                Some(&random_text(24)),
            ),
            2 => binding_request(
                &format!("{}:{}", real_ufrags[n % real_ufrags.len()], random_text(4)),
                Some(&random_text(24)),
            ),
            3 => binding_request(&format!("{}:{}", real_ufrags[n % real_ufrags.len()], random_text(4)), None),
            _ => {
                let mut bytes = vec![0u8; rng.random_range(1..1200)];
                rng.fill_bytes(&mut bytes);
                bytes
            }
        })
        .collect()
}

/// Sends `total` spoofed datagrams to `targets`, from a new source port every ten,
/// for at most `limit`; returns how many went.
fn flood(targets: Vec<SocketAddr>, real_ufrags: Vec<String>, total: usize, limit: Duration) -> usize {
    let pool = spoofs(&real_ufrags, 2_000);
    let started = Instant::now();
    let mut sent = 0;
    let mut socket = UdpSocket::bind("127.0.0.1:0").expect("a source socket");
    while sent < total && started.elapsed() < limit {
        if sent % 10 == 0 {
            socket = UdpSocket::bind("127.0.0.1:0").expect("a source socket");
        }
        // Loopback drops what the receiver has no room for; a short pause now and
        // then lets most of the flood reach the SFU.
        if sent % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = socket.send_to(&pool[sent % pool.len()], targets[sent % targets.len()]);
        sent += 1;
    }
    sent
}

/// Polls the SFU's route count until the flood is over; returns the highest seen.
async fn highest_route_count_during(h: &Harness, flood: &tokio::task::JoinHandle<usize>) -> usize {
    let mut highest = 0;
    while !flood.is_finished() {
        highest = highest.max(h.sfu.handle().routes());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    highest.max(h.sfu.handle().routes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_stun_adds_no_route_while_real_peers_connect_and_media_flows() {
    let h = harness().await;
    h.join(h.host).await;
    let publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let listener = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let (stream, stats) = (h.host.to_string(), listener.stats());
    eventually("media before the flood", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > 30).await;
    assert_eq!(h.sfu.handle().routes(), 2, "one verified address per peer");
    let real_ufrags: Vec<String> = [&publisher, &listener]
        .iter()
        .map(|c| c.stats().remote_ice_credentials().expect("the SFU's ICE credentials").0)
        .collect();
    let unrouted = h.sfu.handle().unrouted_datagrams();

    let target = h.sfu.local_addr();
    let flooding =
        tokio::task::spawn_blocking(move || flood(vec![target], real_ufrags, 100_000, Duration::from_secs(30)));
    let video = stats.packets_from(&stream, RtpCodecKind::Video);
    // A peer that starts connecting during the flood: its checks are verified and routed.
    let _newcomer = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let highest = highest_route_count_during(&h, &flooding).await;
    let sent = flooding.await.expect("the flood");

    assert_eq!(sent, 100_000, "the whole flood went out in time");
    // What reached the SFU was counted as dropped (loopback dropped the rest).
    eventually("the flood counted", Duration::from_secs(5), || h.sfu.handle().unrouted_datagrams() - unrouted >= 5_000)
        .await;
    assert!(highest <= 3, "{highest} routes during the flood, with three peers of one address each");
    eventually("the newcomer's verified address", CONNECT, || h.sfu.handle().routes() == 3).await;
    eventually("media kept flowing", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > video + 100).await;

    let late_user = h.participant().await;
    let late = h.connect(late_user, ClientOptions::subscriber()).await;
    let late_stats = late.stats();
    eventually("media at a peer that connects after the flood", CONNECT, || {
        late_stats.packets_from(&stream, RtpCodecKind::Video) > 30
    })
    .await;
    assert_eq!(h.sfu.handle().routes(), 4, "one address per peer, nothing left from the flood");
    h.command(RoomCommand::Leave { user: late_user }).await;
    eventually("a closed peer's route goes with it", Duration::from_secs(5), || h.sfu.handle().routes() == 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_port_range_spoofed_stun_on_every_port_adds_no_route() {
    let (h, ports) = harness_with_port_range(3).await;
    h.join(h.host).await;
    let publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let listeners = [
        h.connect(h.participant().await, ClientOptions::subscriber()).await,
        h.connect(h.participant().await, ClientOptions::subscriber()).await,
    ];
    let stream = h.host.to_string();
    for listener in &listeners {
        let stats = listener.stats();
        eventually("media through the port range", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > 30)
            .await;
    }
    assert_eq!(h.sfu.handle().routes(), 3, "each peer verified on its own port");
    let real_ufrags: Vec<String> = listeners
        .iter()
        .chain([&publisher])
        .map(|c| c.stats().remote_ice_credentials().expect("the SFU's ICE credentials").0)
        .collect();
    let targets: Vec<SocketAddr> = ports.map(|port| SocketAddr::from(([127, 0, 0, 1], port))).collect();
    let unrouted = h.sfu.handle().unrouted_datagrams();

    let flooding = tokio::task::spawn_blocking(move || flood(targets, real_ufrags, 30_000, Duration::from_secs(20)));
    let highest = highest_route_count_during(&h, &flooding).await;
    assert_eq!(flooding.await.expect("the flood"), 30_000);
    eventually("the flood counted", Duration::from_secs(5), || h.sfu.handle().unrouted_datagrams() - unrouted >= 3_000)
        .await;
    assert_eq!((highest, h.sfu.handle().routes()), (3, 3), "routes during and after the flood");
    for listener in &listeners {
        let stats = listener.stats();
        let before = stats.packets_from(&stream, RtpCodecKind::Video);
        eventually("media still flows on every port", CONNECT, || {
            stats.packets_from(&stream, RtpCodecKind::Video) > before + 50
        })
        .await;
    }
}

/// Random datagrams shaped like each protocol that shares the port (RFC 7983):
/// STUN (with the magic cookie), DTLS records, RTP and RTCP, and plain noise.
fn junk(count: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    (0..count)
        .map(|n| {
            let mut bytes = vec![0u8; rng.random_range(1..1400)];
            rng.fill_bytes(&mut bytes);
            match n % 5 {
                0 if bytes.len() >= 20 => {
                    bytes[0] &= 0x3f;
                    bytes[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
                }
                1 => bytes[0] = rng.random_range(20..=63),
                2 => bytes[0] = rng.random_range(128..=191),
                3 if bytes.len() >= 2 => {
                    bytes[0] = rng.random_range(128..=191);
                    bytes[1] = rng.random_range(192..=223);
                }
                _ => {}
            }
            bytes
        })
        .collect()
}

/// A client that has its peer's ICE password routes from a bounded number of
/// addresses, and the garbage it sends from one of them (whatever webrtc-rs makes
/// of it) neither stops its worker nor the media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_password_gets_few_addresses_and_its_garbage_stops_nothing() {
    let h = harness().await;
    h.join(h.host).await;
    let _publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let listener = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let (stream, stats) = (h.host.to_string(), listener.stats());
    eventually("media before the garbage", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > 30).await;
    let (ufrag, password) = stats.remote_ice_credentials().expect("the SFU's ICE credentials");

    let target = h.sfu.local_addr();
    let hostile = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    hostile.send_to(&binding_request(&format!("{ufrag}:evil"), Some(&password)), target).expect("send");
    eventually("the hostile address is verified", Duration::from_secs(5), || h.sfu.handle().routes() == 3).await;
    // Even with the password, one peer routes from at most its first eight addresses.
    let more: Vec<UdpSocket> = (0..20).map(|_| UdpSocket::bind("127.0.0.1:0").expect("a socket")).collect();
    let unrouted = h.sfu.handle().unrouted_datagrams();
    for socket in &more {
        socket.send_to(&binding_request(&format!("{ufrag}:evil"), Some(&password)), target).expect("send");
    }
    let cap = rapat_sfu::SfuConfig::DEFAULT_MAX_ADDRESSES_PER_PEER;
    // The listener's peer routes two addresses already (its client's and the hostile one):
    // of the 20 more, all but the cap's remaining ones are turned away.
    let refused = (20 - (cap - 2)) as u64;
    eventually("every request beyond the cap turned away", Duration::from_secs(5), || {
        h.sfu.handle().unrouted_datagrams() - unrouted >= refused
    })
    .await;
    assert_eq!(h.sfu.handle().routes(), 1 + cap, "the publisher's address and the listener's first {cap}");
    let garbage = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for (n, datagram) in junk(20_000).iter().enumerate() {
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
            if n % 200 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = hostile.send_to(datagram, target);
        }
    });
    garbage.await.expect("the garbage went out");

    let video = stats.packets_from(&stream, RtpCodecKind::Video);
    eventually("media still flows to the peer the garbage was routed to", CONNECT, || {
        stats.packets_from(&stream, RtpCodecKind::Video) > video + 100
    })
    .await;
    let late = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let late_stats = late.stats();
    eventually("every worker still serves new peers", CONNECT, || {
        late_stats.packets_from(&stream, RtpCodecKind::Video) > 30
    })
    .await;
}
