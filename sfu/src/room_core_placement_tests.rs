//! Which worker a new peer goes to: a small room's peers share one, a new room
//! goes to the least-loaded worker, a big room spreads (`place`,
//! `ROOM_ON_ONE_WORKER_BELOW`), and each peer's worker is told which other
//! workers its packets must reach.

use super::*;

const MANY: Admitted = Admitted { audio_muted: false, max_users: 500, as_of: 0 };

/// Admits a peer of a new user to `room`: its id, the worker it was created on
/// and everything the core asked for.
fn admit(core: &mut RoomCore, room: Uuid) -> (u64, usize, Vec<CoreOutput>) {
    let (peer, outputs) = join_with(core, &key(room, Uuid::new_v4()), Ok(MANY));
    let peer = peer.expect("admitted");
    let worker = outputs
        .iter()
        .find_map(|output| match output {
            CoreOutput::ToWorker { worker, input: WorkerInput::Create { .. } } => Some(*worker),
            _ => None,
        })
        .expect("created");
    assert_eq!((peer % WORKERS as u64) as usize, worker, "the receive loops find a peer's worker from its id");
    (peer, worker, outputs)
}

/// The `RoomWorkers` requests among `outputs`: (peer, the other workers named).
fn room_workers(outputs: &[CoreOutput]) -> Vec<(u64, Vec<usize>)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            CoreOutput::ToWorker { input: WorkerInput::RoomWorkers { peer, others }, .. } => {
                Some((*peer, others.to_vec()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_small_rooms_peers_share_one_worker_and_a_new_room_goes_to_the_least_loaded() {
    let mut core = RoomCore::new(WORKERS, 3);
    let meeting = Uuid::new_v4();
    let (_, first, _) = admit(&mut core, meeting);
    for _ in 1..10 {
        let (_, worker, outputs) = admit(&mut core, meeting);
        assert_eq!(worker, first, "a 10-person meeting stays on one worker");
        assert_eq!(room_workers(&outputs), [], "its packets stay there: no other worker to tell");
    }
    let other = Uuid::new_v4();
    let (_, second, _) = admit(&mut core, other);
    assert_ne!(second, first, "the next room goes to the worker without the meeting");
    for _ in 1..5 {
        assert_eq!(admit(&mut core, other).1, second);
    }
    // 10 peers against 5: a third room goes where the 5 are.
    assert_eq!(admit(&mut core, Uuid::new_v4()).1, second);
}

#[test]
fn a_big_room_spreads_past_the_threshold_and_its_peers_learn_where_their_packets_go() {
    let mut core = RoomCore::new(WORKERS, 3);
    let room = Uuid::new_v4();
    let mut placed: Vec<(u64, usize)> = Vec::new();
    for _ in 0..ROOM_ON_ONE_WORKER_BELOW {
        let (peer, worker, _) = admit(&mut core, room);
        placed.push((peer, worker));
    }
    let first = placed[0].1;
    assert!(placed.iter().all(|(_, worker)| *worker == first), "below the threshold the room is on one worker");

    let (spread, worker, outputs) = admit(&mut core, room);
    assert_ne!(worker, first, "at the threshold the next peer goes to the least-loaded worker");
    let mut told = room_workers(&outputs);
    told.sort_unstable();
    let mut expected: Vec<(u64, Vec<usize>)> = placed.iter().map(|(peer, _)| (*peer, vec![worker])).collect();
    expected.push((spread, vec![first]));
    assert_eq!(told, expected, "every peer of the room learns the other worker, the new one the first");
    placed.push((spread, worker));

    for _ in placed.len()..40 {
        let (peer, worker, outputs) = admit(&mut core, room);
        assert_eq!(room_workers(&outputs), [(peer, vec![1 - worker])], "only the newcomer needs telling");
        placed.push((peer, worker));
    }
    let on_first = placed.iter().filter(|(_, worker)| *worker == first).count();
    assert_eq!((on_first, placed.len() - on_first), (20, 20), "40 peers end up even over the two workers");

    // Every peer on the second worker goes: the first stops handing packets to it.
    let leaving: Vec<u64> = placed.iter().filter(|(_, worker)| *worker != first).map(|(peer, _)| *peer).collect();
    let mut last = Vec::new();
    for peer in leaving {
        core.handle_input(CoreInput::FromPeer { peer, output: PeerOutput::Closed });
        last = drain(&mut core);
    }
    let told = room_workers(&last);
    assert_eq!(told.len(), 20, "{told:?}");
    assert!(told.iter().all(|(_, others)| others.is_empty()), "{told:?}");
}

#[test]
fn place_keeps_a_room_where_most_of_it_is_and_spreads_a_big_one() {
    assert_eq!(place(&[], &[3, 1, 2]), 1, "a new room: the least-loaded worker");
    assert_eq!(place(&[2, 2, 0], &[1, 9, 9]), 2, "a small room: its worker, however loaded");
    assert_eq!(place(&[0, 2], &[5, 1, 4]), 2, "a tie in the room: the less loaded of the two");
    let big = vec![0; ROOM_ON_ONE_WORKER_BELOW];
    assert_eq!(place(&big, &[16, 0]), 1, "a big room: the least-loaded worker");
}
