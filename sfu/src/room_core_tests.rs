//! Every room rule against the room core, with several simulated peers and no
//! sockets, threads or clock: inputs in, the core's requests out.

use std::collections::HashSet;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::source::SourceId;

const WORKERS: usize = 2;
const ADMITTED: Admitted = Admitted { audio_muted: false, max_users: 10, as_of: 0 };

fn users(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

fn message(kind: SfuRequestKind, key: &PeerKey, payload: serde_json::Value) -> CoreInput {
    CoreInput::Signal(SfuRequest {
        kind,
        room_id: key.room,
        user_id: key.user,
        username: String::new(),
        connection_id: key.connection,
        payload,
    })
}

fn offer(key: &PeerKey) -> CoreInput {
    message(SfuRequestKind::Offer, key, json!({ "sdp": "v=0" }))
}

fn key(room: Uuid, user: Uuid) -> PeerKey {
    PeerKey { room, user, connection: Uuid::new_v4() }
}

fn drain(core: &mut RoomCore) -> Vec<CoreOutput> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// The worker requests among `outputs`, as (peer, what).
fn requests(outputs: &[CoreOutput]) -> Vec<(u64, String)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            CoreOutput::ToWorker { input, .. } => Some(input),
            _ => None,
        })
        .map(|input| {
            let peer = match input {
                WorkerInput::Create { peer, .. }
                | WorkerInput::Offer { peer, .. }
                | WorkerInput::Answer { peer, .. }
                | WorkerInput::Candidate { peer, .. }
                | WorkerInput::Subscribe { peer, .. }
                | WorkerInput::Unsubscribe { peer, .. }
                | WorkerInput::BlockAudio { peer, .. }
                | WorkerInput::Keyframe { peer, .. }
                | WorkerInput::Close { peer }
                | WorkerInput::Datagram { peer, .. } => *peer,
                WorkerInput::LayerKeyframe { peer, .. }
                | WorkerInput::VideoConstraint { peer, .. }
                | WorkerInput::PublisherLayers { peer, .. }
                | WorkerInput::Record { peer, .. }
                | WorkerInput::RoomWorkers { peer, .. } => *peer,
                WorkerInput::Rtp { .. } | WorkerInput::Stop => 0,
            };
            (peer, format!("{input:?}"))
        })
        .collect()
}

fn errors(outputs: &[CoreOutput]) -> Vec<(Uuid, String)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            CoreOutput::Signal(outgoing) => {
                Some((outgoing.to.connection, outgoing.payload["code"].as_str().unwrap_or_default().to_string()))
            }
            _ => None,
        })
        .collect()
}

/// Offers for `key`, answers the admission check with `result`, and returns the
/// new peer's id (if one was created) and everything the core asked for.
fn join_with(core: &mut RoomCore, key: &PeerKey, result: Result<Admitted, Refused>) -> (Option<u64>, Vec<CoreOutput>) {
    core.handle_input(offer(key));
    let asked = drain(core);
    assert!(
        matches!(asked.as_slice(), [CoreOutput::CheckAdmission(asked)] if asked == key),
        "an offer asks for admission: {asked:?}"
    );
    core.handle_input(CoreInput::Checked { key: key.clone(), result });
    let outputs = drain(core);
    let created = outputs.iter().find_map(|output| match output {
        CoreOutput::ToWorker { input: WorkerInput::Create { peer, .. }, .. } => Some(*peer),
        _ => None,
    });
    (created, outputs)
}

fn join(core: &mut RoomCore, key: &PeerKey) -> u64 {
    join_with(core, key, Ok(ADMITTED)).0.expect("the peer is admitted")
}

fn track(peer: u64, n: u64, user: Uuid) -> Subscription {
    Subscription {
        source: SourceId(peer << SOURCE_BITS | n),
        publisher_user: user,
        kind: RtpCodecKind::Video,
        codec: Default::default(),
        parameters: Default::default(),
    }
}

fn closed(outputs: &[CoreOutput]) -> HashSet<u64> {
    requests(outputs).into_iter().filter(|(_, what)| what == "Close").map(|(peer, _)| peer).collect()
}

#[test]
fn an_admitted_offer_creates_a_peer_opens_the_room_and_reaches_the_worker() {
    let mut core = RoomCore::new(WORKERS, 3);
    let alice = key(Uuid::new_v4(), Uuid::new_v4());
    let (peer, outputs) = join_with(&mut core, &alice, Ok(ADMITTED));
    let peer = peer.expect("created");
    assert!(matches!(outputs.first(), Some(CoreOutput::RoomOpened(room)) if *room == alice.room));
    assert_eq!(requests(&outputs), vec![(peer, "Create".to_string()), (peer, "Offer".to_string())]);
    assert_eq!(core.peer_count(), 1);
    // Later messages of the connection go straight to its peer.
    core.handle_input(message(
        SfuRequestKind::IceCandidate,
        &alice,
        json!({ "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host" }),
    ));
    core.handle_input(message(SfuRequestKind::Answer, &alice, json!({ "sdp": "v=0" })));
    assert_eq!(requests(&drain(&mut core)), vec![(peer, "Candidate".to_string()), (peer, "Answer".to_string())]);
}

#[test]
fn a_refused_offer_is_told_why_and_creates_nothing() {
    for (refused, code) in [
        (Refused::NotParticipant, "not_a_participant"),
        (Refused::RoomEnded, "room_ended"),
        (Refused::Unavailable("down".into()), "sfu_unavailable"),
    ] {
        let mut core = RoomCore::new(WORKERS, 3);
        let bob = key(Uuid::new_v4(), Uuid::new_v4());
        let (peer, outputs) = join_with(&mut core, &bob, Err(refused));
        assert_eq!(peer, None);
        assert_eq!(errors(&outputs), vec![(bob.connection, code.to_string())]);
        assert_eq!(core.peer_count(), 0);
    }
}

#[test]
fn a_room_takes_peers_of_at_most_max_users_users() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(3);
    let small = Admitted { audio_muted: false, max_users: 2, as_of: 0 };
    assert!(join_with(&mut core, &key(room, u[0]), Ok(small)).0.is_some());
    assert!(join_with(&mut core, &key(room, u[1]), Ok(small)).0.is_some());
    let third = key(room, u[2]);
    let (peer, outputs) = join_with(&mut core, &third, Ok(small));
    assert_eq!(peer, None);
    assert_eq!(errors(&outputs), vec![(third.connection, "room_full".to_string())]);
    // A second connection of a present user still fits.
    assert!(join_with(&mut core, &key(room, u[1]), Ok(small)).0.is_some());
}

#[test]
fn a_user_removed_while_their_offer_is_checked_gets_no_peer() {
    let mut core = RoomCore::new(WORKERS, 3);
    let carol = key(Uuid::new_v4(), Uuid::new_v4());
    core.handle_input(offer(&carol));
    drain(&mut core);
    core.handle_input(CoreInput::Room {
        change: RoomChange::UserGone { room: carol.room, user: carol.user },
        sequence: 1,
    });
    // The check read the room before the removal and still says yes.
    core.handle_input(CoreInput::Checked { key: carol.clone(), result: Ok(ADMITTED) });
    let outputs = drain(&mut core);
    assert!(requests(&outputs).is_empty(), "{outputs:?}");
    assert_eq!(errors(&outputs), vec![(carol.connection, "not_a_participant".to_string())]);
}

#[test]
fn a_leave_the_check_already_saw_does_not_refuse_a_rejoined_users_offer() {
    let mut core = RoomCore::new(WORKERS, 3);
    let erin = key(Uuid::new_v4(), Uuid::new_v4());
    core.handle_input(offer(&erin));
    drain(&mut core);
    // Erin left (sequence 5) and joined again (6); the check decided on both.
    core.handle_input(CoreInput::Room {
        change: RoomChange::UserGone { room: erin.room, user: erin.user },
        sequence: 5,
    });
    core.handle_input(CoreInput::Checked { key: erin.clone(), result: Ok(Admitted { as_of: 6, ..ADMITTED }) });
    let outputs = drain(&mut core);
    assert!(errors(&outputs).is_empty(), "{outputs:?}");
    assert!(requests(&outputs).iter().any(|(_, request)| request == "Create"), "{outputs:?}");
}

#[test]
fn an_offer_in_a_room_that_ends_while_it_is_checked_gets_no_peer() {
    let mut core = RoomCore::new(WORKERS, 3);
    let dave = key(Uuid::new_v4(), Uuid::new_v4());
    core.handle_input(offer(&dave));
    drain(&mut core);
    core.handle_input(CoreInput::Room { change: RoomChange::Ended { room: dave.room }, sequence: 1 });
    core.handle_input(CoreInput::Checked { key: dave.clone(), result: Ok(ADMITTED) });
    assert!(requests(&drain(&mut core)).is_empty());
}

#[test]
fn leaving_or_being_removed_closes_every_peer_of_that_user_only() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let first = join(&mut core, &key(room, u[0]));
    let second = join(&mut core, &key(room, u[0]));
    let other = join(&mut core, &key(room, u[1]));
    // The same user in another room keeps their peer there.
    let elsewhere = join(&mut core, &key(Uuid::new_v4(), u[0]));
    core.handle_input(CoreInput::Room { change: RoomChange::UserGone { room, user: u[0] }, sequence: 1 });
    let outputs = drain(&mut core);
    assert_eq!(closed(&outputs), HashSet::from([first, second]));
    assert!(!closed(&outputs).contains(&other) && !closed(&outputs).contains(&elsewhere));
}

#[test]
fn a_mute_blocks_and_an_unmute_unblocks_audio_of_that_user_only() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let muted_joiner = key(room, u[0]);
    let (peer, outputs) =
        join_with(&mut core, &muted_joiner, Ok(Admitted { audio_muted: true, max_users: 10, as_of: 0 }));
    let peer = peer.expect("created");
    let starts_blocked = outputs.iter().any(|output| {
        matches!(output, CoreOutput::ToWorker { input: WorkerInput::Create { audio_blocked: true, .. }, .. })
    });
    assert!(starts_blocked, "a participant admitted muted starts with audio blocked");
    join(&mut core, &key(room, u[1]));
    // Self-mute and host mute arrive as the same change (see `room_events.rs`).
    for blocked in [false, true, false] {
        core.handle_input(CoreInput::Room {
            change: RoomChange::AudioBlocked { room, user: u[0], blocked },
            sequence: 1,
        });
        let outputs = drain(&mut core);
        assert_eq!(requests(&outputs), vec![(peer, "BlockAudio".to_string())]);
        assert!(
            matches!(&outputs[0], CoreOutput::ToWorker { input: WorkerInput::BlockAudio { blocked: b, .. }, .. } if *b == blocked)
        );
    }
}

#[test]
fn an_ended_room_closes_all_its_peers_and_no_other_room() {
    let mut core = RoomCore::new(WORKERS, 3);
    let (room, other_room) = (Uuid::new_v4(), Uuid::new_v4());
    let u = users(3);
    let peers: HashSet<u64> = u.iter().map(|user| join(&mut core, &key(room, *user))).collect();
    let bystander = join(&mut core, &key(other_room, u[0]));
    core.handle_input(CoreInput::Room { change: RoomChange::Ended { room }, sequence: 1 });
    let outputs = drain(&mut core);
    assert_eq!(closed(&outputs), peers);
    assert!(!closed(&outputs).contains(&bystander));
    // The workers report the peers gone; the room closes with the last one.
    for peer in peers {
        core.handle_input(CoreInput::FromPeer { peer, output: PeerOutput::Closed });
    }
    let outputs = drain(&mut core);
    assert!(matches!(outputs.as_slice(), [CoreOutput::RoomClosed(closed)] if *closed == room), "{outputs:?}");
    assert_eq!(core.peer_count(), 1);
}

#[test]
fn a_published_track_is_offered_to_other_users_and_withdrawn_when_it_goes() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let publisher = join(&mut core, &key(room, u[0]));
    let own_second = join(&mut core, &key(room, u[0]));
    let viewer = join(&mut core, &key(room, u[1]));
    let camera = track(publisher, 1, u[0]);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Published(camera.clone()) });
    assert_eq!(requests(&drain(&mut core)), vec![(viewer, "Subscribe".to_string())]);
    // Someone joining later gets the tracks already published.
    let late = join_with(&mut core, &key(room, users(1)[0]), Ok(ADMITTED));
    let late_peer = late.0.expect("created");
    assert!(requests(&late.1).contains(&(late_peer, "Subscribe".to_string())));
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Unpublished(camera.source) });
    let unsubscribed: HashSet<u64> = requests(&drain(&mut core)).into_iter().map(|(peer, _)| peer).collect();
    assert_eq!(unsubscribed, HashSet::from([own_second, viewer, late_peer]));
}

#[test]
fn a_closed_publishers_tracks_are_withdrawn_from_everyone() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let publisher = join(&mut core, &key(room, u[0]));
    let viewer = join(&mut core, &key(room, u[1]));
    core.handle_input(CoreInput::FromPeer {
        peer: publisher,
        output: PeerOutput::Published(track(publisher, 1, u[0])),
    });
    core.handle_input(CoreInput::FromPeer {
        peer: publisher,
        output: PeerOutput::Published(track(publisher, 2, u[0])),
    });
    drain(&mut core);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Closed });
    assert_eq!(
        requests(&drain(&mut core)),
        vec![(viewer, "Unsubscribe".to_string()), (viewer, "Unsubscribe".to_string())]
    );
}

#[test]
fn a_keyframe_request_reaches_the_publishers_worker() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let publisher = join(&mut core, &key(room, u[0]));
    join(&mut core, &key(room, u[1]));
    let camera = track(publisher, 3, u[0]);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Published(camera.clone()) });
    drain(&mut core);
    core.handle_input(CoreInput::FromPeer { peer: publisher + 1, output: PeerOutput::KeyframeWanted(camera.source) });
    let outputs = drain(&mut core);
    assert!(
        matches!(outputs.as_slice(), [CoreOutput::ToWorker { worker, input: WorkerInput::Keyframe { peer, source } }]
            if *peer == publisher && *source == camera.source && *worker == (publisher % WORKERS as u64) as usize),
        "{outputs:?}"
    );
}

#[test]
fn a_newer_connection_beyond_the_cap_replaces_the_oldest_and_a_disconnect_closes() {
    let mut core = RoomCore::new(WORKERS, 2);
    let room = Uuid::new_v4();
    let user = Uuid::new_v4();
    let oldest_key = key(room, user);
    let oldest = join(&mut core, &oldest_key);
    let middle_key = key(room, user);
    let middle = join(&mut core, &middle_key);
    let (newest, outputs) = join_with(&mut core, &key(room, user), Ok(ADMITTED));
    assert!(newest.is_some());
    assert_eq!(closed(&outputs), HashSet::from([oldest]));
    assert_eq!(errors(&outputs), vec![(oldest_key.connection, "peer_replaced".to_string())]);
    core.handle_input(message(SfuRequestKind::Disconnect, &middle_key, json!(null)));
    assert_eq!(closed(&drain(&mut core)), HashSet::from([middle]));
}

#[test]
fn messages_for_no_peer_are_dropped_and_bad_payloads_are_told() {
    let mut core = RoomCore::new(WORKERS, 3);
    let stranger = key(Uuid::new_v4(), Uuid::new_v4());
    core.handle_input(message(SfuRequestKind::Answer, &stranger, json!({ "sdp": "v=0" })));
    core.handle_input(message(SfuRequestKind::IceCandidate, &stranger, json!({})));
    assert!(drain(&mut core).is_empty());
    let eve = key(Uuid::new_v4(), Uuid::new_v4());
    join(&mut core, &eve);
    core.handle_input(message(SfuRequestKind::Answer, &eve, json!({ "sdp": 5 })));
    assert_eq!(errors(&drain(&mut core)), vec![(eve.connection, "invalid_payload".to_string())]);
}

#[test]
fn a_new_user_beyond_max_users_is_refused_and_a_present_one_is_not() {
    let u = users(3);
    let live = [(1, u[0]), (2, u[1]), (3, u[1])];
    assert_eq!(make_room(&live, u[2], 2, 3), Err(Refused::RoomFull));
    assert_eq!(make_room(&live, u[1], 2, 3), Ok(vec![]));
    assert_eq!(make_room(&live, u[2], 3, 3), Ok(vec![]));
    assert_eq!(make_room(&[], u[0], 1, 3), Ok(vec![]));
}

#[test]
fn a_user_at_the_cap_loses_their_oldest_peers() {
    let u = users(2);
    let live = [(9, u[0]), (4, u[0]), (5, u[1]), (7, u[0])];
    assert_eq!(make_room(&live, u[0], 5, 3), Ok(vec![4]));
    assert_eq!(make_room(&live, u[0], 5, 1), Ok(vec![4, 7, 9]));
    assert_eq!(make_room(&live, u[1], 5, 3), Ok(vec![]));
    // A cap of zero would lock everyone out; it means one.
    assert_eq!(make_room(&live, u[1], 5, 0), Ok(vec![5]));
}

#[test]
fn peers_in_a_room_stay_within_max_users_times_the_cap() {
    let u = users(8);
    let mut live: Vec<(u64, Uuid)> = Vec::new();
    for id in 1..=400u64 {
        let user = u[(id as usize * 7) % u.len()];
        if let Ok(replaced) = make_room(&live, user, 5, 3) {
            live.retain(|(peer, _)| !replaced.contains(peer));
            live.push((id, user));
        }
        let distinct: HashSet<Uuid> = live.iter().map(|(_, owner)| *owner).collect();
        assert!(distinct.len() <= 5 && live.len() <= 15, "{} users, {} peers", distinct.len(), live.len());
    }
}

#[test]
fn video_constraints_reach_the_subscribers_worker_and_a_layer_keyframe_request_its_publisher() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let (publisher_key, viewer_key) = (key(room, Uuid::new_v4()), key(room, Uuid::new_v4()));
    let publisher = join(&mut core, &publisher_key);
    let viewer = join(&mut core, &viewer_key);
    let shown = json!({ "publisherId": publisher_key.user, "maxHeight": 240 });
    core.handle_input(message(SfuRequestKind::VideoConstraints, &viewer_key, shown));
    let outputs = drain(&mut core);
    assert!(
        matches!(
            outputs.as_slice(),
            [CoreOutput::ToWorker { input: WorkerInput::VideoConstraint { peer, publisher: user, max_height: 240 }, .. }]
                if *peer == viewer && *user == publisher_key.user
        ),
        "{outputs:?}"
    );
    for bad in [json!({ "publisherId": "someone", "maxHeight": 240 }), json!({ "publisherId": publisher_key.user })] {
        core.handle_input(message(SfuRequestKind::VideoConstraints, &viewer_key, bad));
        assert_eq!(errors(&drain(&mut core)), vec![(viewer_key.connection, "invalid_payload".to_string())]);
    }

    let camera = track(publisher, 1, publisher_key.user);
    let wanted = PeerOutput::LayerKeyframeWanted { source: camera.source, layer: 0 };
    core.handle_input(CoreInput::FromPeer { peer: viewer, output: wanted });
    let outputs = drain(&mut core);
    assert!(
        matches!(
            outputs.as_slice(),
            [CoreOutput::ToWorker { input: WorkerInput::LayerKeyframe { peer, source, layer: 0 }, .. }]
                if *peer == publisher && *source == camera.source
        ),
        "{outputs:?}"
    );
}

#[test]
fn layers_no_subscriber_wants_are_paused_at_the_publisher_until_wanted_again() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let publisher_key = key(room, Uuid::new_v4());
    let publisher = join(&mut core, &publisher_key);
    let (first, second) = (join(&mut core, &key(room, Uuid::new_v4())), join(&mut core, &key(room, Uuid::new_v4())));
    let camera = track(publisher, 1, publisher_key.user);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Published(camera.clone()) });
    drain(&mut core);
    let want = |core: &mut RoomCore, peer: u64, layer: u8| {
        core.handle_input(CoreInput::FromPeer {
            peer,
            output: PeerOutput::LayerWanted { source: camera.source, layer, forwarded: layer },
        });
        drain(core)
            .into_iter()
            .filter_map(|output| match output {
                CoreOutput::ToWorker { input: WorkerInput::PublisherLayers { peer, source, active }, .. } => {
                    assert_eq!((peer, source), (publisher, camera.source), "to the publisher, for its track");
                    Some(active)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(want(&mut core, first, 2).is_empty(), "every layer is needed, as the publisher sends them");
    assert!(want(&mut core, second, 1).is_empty());
    // The subscriber wanting the full layer leaves: nobody needs it.
    core.handle_input(message(SfuRequestKind::Disconnect, &core_key_of(&core, first), json!(null)));
    drain(&mut core);
    core.handle_input(CoreInput::FromPeer { peer: first, output: PeerOutput::Closed });
    let outputs = drain(&mut core);
    assert!(
        outputs.iter().any(|output| matches!(
            output,
            CoreOutput::ToWorker { input: WorkerInput::PublisherLayers { active: [true, true, false], .. }, .. }
        )),
        "{outputs:?}"
    );
    assert_eq!(want(&mut core, second, 0), vec![[true, false, false]]);
    assert_eq!(want(&mut core, second, 2), vec![[true, true, true]], "and back");
}

fn core_key_of(core: &RoomCore, peer: u64) -> PeerKey {
    core.peers.get(&peer).map(|entry| entry.key.clone()).expect("a live peer")
}

/// The recording thread's orders among `outputs`.
fn record_orders(outputs: &[CoreOutput]) -> Vec<crate::recorder::RecordOrder> {
    outputs
        .iter()
        .filter_map(|output| match output {
            CoreOutput::Record(order) => Some(order.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_recording_room_records_each_publication_until_it_stops_or_the_track_goes() {
    use crate::recorder::RecordOrder;
    use rapat_domain::room::RecordingCodec;

    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let u = users(2);
    let publisher = join(&mut core, &key(room, u[0]));
    let _viewer = join(&mut core, &key(room, u[1]));
    let vp8 = rtc::rtp_transceiver::rtp_sender::RTCRtpCodec { mime_type: "video/VP8".into(), ..Default::default() };
    let camera = Subscription { codec: vp8, ..track(publisher, 1, u[0]) };
    let other = track(publisher, 2, u[0]); // no codec that is recorded
    for published in [&camera, &other] {
        core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Published(published.clone()) });
    }
    assert_eq!(record_orders(&drain(&mut core)), [], "not recording yet");

    core.handle_input(CoreInput::Room { change: RoomChange::Recording { room, on: true }, sequence: 1 });
    let outputs = drain(&mut core);
    let start = RecordOrder::Start { source: camera.source, room, user: u[0], codec: RecordingCodec::Vp8 };
    assert_eq!(record_orders(&outputs), std::slice::from_ref(&start));
    assert_eq!(requests(&outputs), [(publisher, "Record".to_string())], "the publisher's worker hands the packets");

    // The track goes and comes back: a new file.
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Unpublished(camera.source) });
    assert_eq!(record_orders(&drain(&mut core)), [RecordOrder::Stop { source: camera.source }]);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Published(camera.clone()) });
    assert_eq!(record_orders(&drain(&mut core)), [start]);

    core.handle_input(CoreInput::Room { change: RoomChange::Recording { room, on: false }, sequence: 2 });
    assert_eq!(record_orders(&drain(&mut core)), [RecordOrder::Stop { source: camera.source }]);
    core.handle_input(CoreInput::FromPeer { peer: publisher, output: PeerOutput::Closed });
    assert_eq!(record_orders(&drain(&mut core)), [], "stopped once");
}

#[path = "room_core_placement_tests.rs"]
mod placement;

/// A peer whose connection failed (its DTLS handshake never finished) is
/// forgotten and its client told `peer_failed`, after which an offer on the same
/// connection makes a new peer; before, the client was never told, and its
/// offer would have gone to the dead peer. A peer already being closed (here,
/// replaced by a newer one) is not told: its client must not start over.
#[test]
fn a_failed_peer_is_forgotten_and_its_client_told_so_its_next_offer_makes_a_new_peer() {
    let mut core = RoomCore::new(WORKERS, 1);
    let room = Uuid::new_v4();
    let alice = key(room, Uuid::new_v4());
    let first = join(&mut core, &alice);
    core.handle_input(CoreInput::FromPeer {
        peer: first,
        output: PeerOutput::Failed("the DTLS handshake did not finish"),
    });
    let outputs = drain(&mut core);
    assert_eq!(errors(&outputs), vec![(alice.connection, "peer_failed".to_string())]);
    assert_eq!(core.peer_count(), 0);
    let again = join(&mut core, &alice);
    assert_ne!(again, first, "a new peer for the same connection");

    let newer = key(room, alice.user);
    join(&mut core, &newer);
    core.handle_input(CoreInput::FromPeer { peer: again, output: PeerOutput::Failed("the connection failed (ICE)") });
    assert_eq!(errors(&drain(&mut core)), vec![], "a replaced peer that fails is not told to start over");
}
