//! Real webrtc-rs peers (ICE, DTLS, SRTP over loopback UDP) through the SFU,
//! which takes its signaling and room events from a real NATS.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{OnAir, eventually, harness, harness_with_port_range, stopped_at};
use rapat_domain::room::RoomCommand;
use rapat_sfu::loopback_client::ClientOptions;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

const CONNECT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reaches_two_subscribers_in_order_under_its_user_id() {
    let h = harness().await;
    h.join(h.host).await;
    let publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let first = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let second = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stream = h.host.to_string();

    for subscriber in [&first, &second] {
        let stats = subscriber.stats();
        eventually("video and audio from the publisher", CONNECT, || {
            stats.packets_from(&stream, RtpCodecKind::Video) >= 150
                && stats.packets_from(&stream, RtpCodecKind::Audio) >= 50
        })
        .await;
        for track in stats.tracks() {
            assert_eq!(track.stream_id, stream, "forwarded tracks carry the publisher's user id as stream id");
            assert_eq!(track.out_of_order, 0, "packets arrive in order on loopback");
        }
    }
    assert!(publisher.stats().sent_packets.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(h.sfu.handle().counters().datagrams_out > 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_an_sfu_offer_and_then_the_media() {
    let h = harness().await;
    h.join(h.host).await;
    let _publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let early = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stream = h.host.to_string();
    let early_stats = early.stats();
    eventually("media at the first subscriber", CONNECT, || {
        early_stats.packets_from(&stream, RtpCodecKind::Video) > 50
    })
    .await;

    let late = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let late_stats = late.stats();
    eventually("media at the late subscriber", CONNECT, || late_stats.packets_from(&stream, RtpCodecKind::Video) > 50)
        .await;
    assert!(
        late_stats.offers_received.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the SFU offered the existing tracks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_joins_after_the_subscriber_is_offered_to_it() {
    let h = harness().await;
    let subscriber = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stats = subscriber.stats();
    eventually("the subscriber connects", CONNECT, || stats.connected.load(std::sync::atomic::Ordering::Relaxed)).await;

    let publisher = h.participant().await;
    let _publishing = h.connect(publisher, ClientOptions::publisher()).await;
    let stream = publisher.to_string();
    eventually("media from the new publisher", CONNECT, || {
        stats.packets_from(&stream, RtpCodecKind::Video) > 50 && stats.packets_from(&stream, RtpCodecKind::Audio) > 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_participant_stops_their_media_within_a_second() {
    let h = harness().await;
    let on_air = h.speaker_and_listening_host(ClientOptions::subscriber()).await;
    h.remove_speaker_and_expect_silence(&on_air).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_mute_stops_audio_until_the_host_allows_and_the_user_unmutes() {
    let h = harness().await;
    let OnAir { speaker, stream, listener, publisher: _publisher } =
        h.speaker_and_listening_host(ClientOptions::subscriber()).await;
    let stats = listener.stats();

    h.command(RoomCommand::MuteParticipant { actor: h.host, target: speaker }).await;
    let muted = Instant::now();
    let stopped = stopped_at(Duration::from_secs(5), Duration::from_millis(400), || {
        stats.packets_from(&stream, RtpCodecKind::Audio)
    })
    .await;
    assert!(
        stopped.saturating_duration_since(muted) <= Duration::from_secs(1),
        "audio stopped {:?} after the mute",
        stopped - muted
    );
    let video = stats.packets_from(&stream, RtpCodecKind::Video);
    eventually("video keeps flowing while muted", Duration::from_secs(2), || {
        stats.packets_from(&stream, RtpCodecKind::Video) > video + 30
    })
    .await;

    // The host's allow lifts the lock but leaves the microphone off.
    let allowed = h.command(RoomCommand::AllowUnmute { actor: h.host, target: speaker }).await;
    let audio = stats.packets_from(&stream, RtpCodecKind::Audio);
    eventually("the SFU applied the allow", Duration::from_secs(5), || h.rosters.applied() >= allowed).await;
    // Video flowing for a while after the allow is how long audio had to resume.
    let video = stats.packets_from(&stream, RtpCodecKind::Video);
    eventually("video after the allow", Duration::from_secs(2), || {
        stats.packets_from(&stream, RtpCodecKind::Video) > video + 60
    })
    .await;
    assert_eq!(
        stats.packets_from(&stream, RtpCodecKind::Audio),
        audio,
        "audio flowed after the allow, before the unmute"
    );

    h.command(RoomCommand::SetAudio { user: speaker, muted: false }).await;
    let unmuted = Instant::now();
    eventually("audio after the unmute", Duration::from_secs(1), || {
        stats.packets_from(&stream, RtpCodecKind::Audio) > audio + 5
    })
    .await;
    assert!(unmuted.elapsed() <= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_room_closes_every_peer_within_a_second() {
    let h = harness().await;
    h.join(h.host).await;
    let _host = h.connect(h.host, ClientOptions::publisher()).await;
    let guest = h.participant().await;
    let _guest = h.connect(guest, ClientOptions::publisher()).await;
    let listener = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stats = listener.stats();
    let (host_stream, guest_stream) = (h.host.to_string(), guest.to_string());
    let total = || {
        stats.packets_from(&host_stream, RtpCodecKind::Video) + stats.packets_from(&guest_stream, RtpCodecKind::Video)
    };
    eventually("media from both publishers", CONNECT, || {
        stats.packets_from(&host_stream, RtpCodecKind::Video) > 30
            && stats.packets_from(&guest_stream, RtpCodecKind::Video) > 30
    })
    .await;

    h.command(RoomCommand::End { actor: h.host }).await;
    let ended = Instant::now();
    let stopped = stopped_at(Duration::from_secs(5), Duration::from_millis(400), total).await;
    assert!(
        stopped.saturating_duration_since(ended) <= Duration::from_secs(1),
        "media stopped {:?} after the end",
        stopped - ended
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_from_someone_not_in_the_room_is_refused() {
    let h = harness().await;
    let outsider = rapat_domain::ids::UserId::new_random();
    let client = h.connect(outsider, ClientOptions::publisher()).await;
    let stats = client.stats();
    eventually("an error for the outsider", Duration::from_secs(5), || {
        stats.errors.lock().is_ok_and(|e| !e.is_empty())
    })
    .await;
    let errors = stats.errors.lock().expect("errors").clone();
    assert_eq!(errors[0]["code"], "not_a_participant");
    // The refusal is the SFU's decision: it made no peer, so there is nothing to answer or connect to.
    assert_eq!(h.sfu.handle().peers(), 0, "a peer for an outsider");
    assert_eq!(stats.answers_received.load(std::sync::atomic::Ordering::Relaxed), 0, "an answer for an outsider");
    assert!(!stats.connected.load(std::sync::atomic::Ordering::Relaxed), "no media connection for an outsider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_keyframe_request_reaches_the_publisher() {
    let h = harness().await;
    let OnAir { publisher, listener: subscriber, .. } = h.speaker_and_listening_host(ClientOptions::subscriber()).await;

    let publisher_stats = publisher.stats();
    let before = publisher_stats.keyframe_requests.load(std::sync::atomic::Ordering::Relaxed);
    subscriber.peer.request_keyframes();
    eventually("a PLI at the publisher", Duration::from_secs(2), || {
        publisher_stats.keyframe_requests.load(std::sync::atomic::Ordering::Relaxed) > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_port_range_peers_are_spread_over_its_ports() {
    let (h, _) = harness_with_port_range(4).await;
    h.join(h.host).await;
    let _publisher = h.connect(h.host, ClientOptions::publisher()).await;
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
    let remotes: std::collections::HashSet<_> = listeners.iter().map(|l| l.stats().remote_port()).collect();
    assert_eq!(remotes.len(), 2, "two subscribers on two ports of the range: {remotes:?}");
    assert_eq!(h.sfu.handle().routes(), 3, "each peer routed from its one verified address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sfu_nodes_on_one_namespace_serve_a_room_once() {
    let h = harness().await;
    let second = h.another_sfu_node().await;
    h.join(h.host).await;
    let publisher = h.connect(h.host, ClientOptions::publisher()).await;
    let subscriber = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stream = h.host.to_string();
    let stats = subscriber.stats();
    eventually("media through one of the nodes", CONNECT, || stats.packets_from(&stream, RtpCodecKind::Video) > 50)
        .await;

    for client in [&publisher, &subscriber] {
        assert_eq!(
            client.stats().answers_received.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "one node answered each offer"
        );
    }
    let (first_out, second_out) = (h.sfu.handle().counters().datagrams_out, second.handle().counters().datagrams_out);
    assert!((first_out > 0) != (second_out > 0), "the room lives on one node: {first_out} vs {second_out} datagrams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_video_is_recovered_by_nack_and_sender_reports_arrive() {
    let h = harness().await;
    let lossy = ClientOptions { drop_every: Some(25), ..ClientOptions::subscriber() };
    let OnAir { stream, listener, publisher: _publisher, .. } = h.speaker_and_listening_host(lossy).await;
    let stats = listener.stats();
    eventually("four seconds of video", Duration::from_secs(20), || {
        stats.packets_from(&stream, RtpCodecKind::Video) > 600
    })
    .await;
    let video = || stats.tracks().into_iter().find(|t| t.kind == Some(RtpCodecKind::Video)).expect("a video track");
    // The latest losses are recovered a round trip later.
    eventually("NACKed video retransmitted", Duration::from_secs(5), || video().loss() < 0.01).await;

    let dropped = stats.dropped_on_purpose.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 20, "the network lost {dropped} packets");
    let video = video();
    assert!(
        video.loss() < 0.01,
        "NACKed video was retransmitted: loss {:.2}% with 4% dropped ({video:?})",
        video.loss() * 100.0
    );
    // Opus negotiates no NACK: the same drops stay lost there, so they did happen.
    // Every 25th datagram of both kinds is dropped, so audio's share of the drops
    // follows how the two kinds interleave on a busy machine (2–4% seen).
    let audio = stats.tracks().into_iter().find(|t| t.kind == Some(RtpCodecKind::Audio)).expect("an audio track");
    assert!(audio.loss() > 0.005, "audio lost {:.2}%", audio.loss() * 100.0);
    assert!(
        stats.sender_reports.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the SFU's legs send RTCP sender reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_added_later_is_offered_to_subscribers_and_removed_again() {
    let h = harness().await;
    let OnAir { stream, listener, publisher, .. } = h.speaker_and_listening_host(ClientOptions::subscriber()).await;
    let stats = listener.stats();
    let video_tracks =
        || stats.tracks().iter().filter(|t| t.kind == Some(RtpCodecKind::Video) && t.stream_id == stream).count();
    assert_eq!(video_tracks(), 1);
    let offers = stats.offers_received.load(std::sync::atomic::Ordering::Relaxed);

    publisher.peer.add_screen();
    eventually("a second video track from the publisher", Duration::from_secs(5), || video_tracks() == 2).await;
    assert!(stats.offers_received.load(std::sync::atomic::Ordering::Relaxed) > offers, "the SFU offered the new track");
    let screen =
        || stats.tracks().iter().filter(|t| t.kind == Some(RtpCodecKind::Video)).map(|t| t.packets).min().unwrap_or(0);
    eventually("screen packets", Duration::from_secs(5), || screen() > 30).await;

    let offers = stats.offers_received.load(std::sync::atomic::Ordering::Relaxed);
    publisher.peer.remove_screen();
    eventually("an SFU offer without the screen", Duration::from_secs(5), || {
        stats.offers_received.load(std::sync::atomic::Ordering::Relaxed) > offers
    })
    .await;
    // Panics unless the screen's packets stop rising.
    stopped_at(Duration::from_secs(5), Duration::from_millis(400), screen).await;
    let camera = stats.packets_from(&stream, RtpCodecKind::Video);
    eventually("the camera keeps flowing", Duration::from_secs(2), || {
        stats.packets_from(&stream, RtpCodecKind::Video) > camera + 30
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_types_are_rewritten_for_each_subscriber_leg() {
    let h = harness().await;
    h.join(h.host).await;
    let speaker = h.participant().await;
    // The publisher negotiates VP8 as 120 and Opus as 109; the SFU offers the
    // subscriber webrtc-rs's defaults (96 and 111). A packet forwarded with the
    // publisher's numbers would be refused on the subscriber's leg.
    let unusual = ClientOptions { payload_types: Some((120, 109)), ..ClientOptions::publisher() };
    let _publisher = h.connect(speaker, unusual).await;
    let listener = h.connect(h.host, ClientOptions::subscriber()).await;
    let stream = speaker.to_string();
    let stats = listener.stats();
    eventually("video and audio despite other payload types", CONNECT, || {
        stats.packets_from(&stream, RtpCodecKind::Video) > 50 && stats.packets_from(&stream, RtpCodecKind::Audio) > 20
    })
    .await;
    for track in stats.tracks() {
        let expected = if track.kind == Some(RtpCodecKind::Video) { 96 } else { 111 };
        assert_eq!(track.payload_types.iter().copied().collect::<Vec<_>>(), vec![expected], "{track:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_camera_reaches_a_subscriber_one_layer_at_a_time_switched_by_its_shown_size() {
    let h = harness().await;
    h.join(h.host).await;
    let _publisher = h.connect(h.host, ClientOptions { simulcast: true, ..ClientOptions::publisher() }).await;
    let subscriber = h.connect(h.participant().await, ClientOptions::subscriber()).await;
    let stream = h.host.to_string();
    let stats = subscriber.stats();
    let video = || stats.tracks().into_iter().find(|t| t.stream_id == stream && t.kind == Some(RtpCodecKind::Video));

    eventually("video from the publisher", CONNECT, || video().is_some_and(|track| track.packets >= 100)).await;
    let track = video().expect("the video track");
    assert_eq!(track.layers, [2], "unconstrained, only the full layer, from its first keyframe on");

    // The subscriber shows the video small: the quarter layer, from its keyframe on.
    subscriber.peer.send_video_constraints(&stream, 200);
    eventually("a switch to the quarter layer", CONNECT, || video().is_some_and(|track| track.layers == [2, 0])).await;
    let switched = video().expect("the video track").packets;
    eventually("more of it", CONNECT, || video().is_some_and(|track| track.packets >= switched + 100)).await;
    let track = video().expect("the video track");
    assert_eq!(track.layers, [2, 0], "one switch, and no layer mixed in");
    assert_eq!(track.out_of_order, 0, "sequence numbers run on across the switch");
    assert!(track.loss() < 0.01, "no gap in the numbering: {} of {} expected", track.packets, track.expected);
}

/// A client whose DTLS handshake never finishes after ICE connected (its flight
/// with the keys is lost, as a starved client's was in a connect storm) is
/// failed by the SFU, told `peer_failed` over the gateway's subjects, and
/// starts over with a new peer connection, which connects and gets the media.
/// Before, the SFU kept the dead peer and the client never tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_handshake_never_finishes_is_told_and_connects_again() {
    let h = harness().await;
    h.join(h.host).await;
    let speaker = h.participant().await;
    let _publisher = h.connect(speaker, ClientOptions::publisher()).await;
    let listener = h.connect(h.host, ClientOptions { lose_first_handshake: true, ..ClientOptions::subscriber() }).await;
    let stats = listener.stats();
    let stream = speaker.to_string();
    eventually("the failed peer made again and the video received", Duration::from_secs(30), || {
        stats.restarts.load(Ordering::Relaxed) == 1 && stats.packets_from(&stream, RtpCodecKind::Video) > 30
    })
    .await;
    let errors = stats.errors.lock().expect("errors").clone();
    assert!(errors.iter().all(|error| error["code"] == "peer_failed"), "{errors:?}");
}
