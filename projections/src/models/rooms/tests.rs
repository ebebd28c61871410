//! The fold on its own: given rows and events, the rows it leaves. The last test
//! checks that folding a history in batches of any size leaves the same tables as
//! folding it one event at a time (what the live projector does).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use uuid::Uuid;

use super::fold::{Event, Folded, Loaded, RoomRow, Stay, fold, rooms_to_load, stays_to_load};
use crate::models::ApplyError;

fn at(second: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).single().expect("valid time") + Duration::seconds(second)
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(1000 + n))
}

fn created(host: UserId) -> RoomEvent {
    RoomEvent::RoomCreated {
        host_id: host,
        name: RoomName::parse("Standup".into()).expect("valid name"),
        description: RoomDescription::parse(String::new()).expect("valid description"),
        password_hash: None,
        max_users: MaxUsers::parse(10).expect("valid max users"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

fn event(room: Uuid, second: i64, event: RoomEvent) -> Event {
    Event { room, at: at(second), event }
}

fn joined(n: u128) -> RoomEvent {
    RoomEvent::ParticipantJoined { user_id: user(n) }
}

fn audio(n: u128, muted: bool) -> RoomEvent {
    RoomEvent::ParticipantAudioChanged { user_id: user(n), muted }
}

fn room_row(room: Uuid, second: i64) -> RoomRow {
    RoomRow {
        id: room,
        host_id: user(0).as_uuid(),
        name: "Standup".into(),
        description: String::new(),
        has_password: false,
        max_users: 10,
        scheduled_at: None,
        status: "active".into(),
        participant_count: 0,
        created_at: at(second),
        updated_at: at(second),
        ended_at: None,
        duration_minutes: None,
        schedule_sequence: 0,
        started_at: None,
        cancelled_at: None,
        recording: false,
    }
}

fn stay(id: Option<i64>, room: Uuid, n: u128, second: i64) -> Stay {
    Stay { id, ..Stay::opened(room, user(n).as_uuid(), at(second)) }
}

#[test]
fn a_room_created_filled_and_toggled_in_one_batch_is_one_insert_per_table() {
    let room = Uuid::from_u128(1);
    let events = vec![
        event(room, 0, created(user(0))),
        event(room, 1, joined(0)),
        event(room, 2, joined(1)),
        event(room, 3, audio(1, true)),
        event(room, 4, audio(0, true)),
        event(room, 5, audio(1, false)),
    ];
    assert!(rooms_to_load(&events).is_empty(), "a room created by the batch is not loaded");
    let pairs = stays_to_load(&events);
    assert!(pairs.rooms.is_empty(), "no room ends: only the stays named are loaded");
    assert_eq!(pairs.rooms_of_pairs, vec![room, room]);
    assert_eq!(pairs.users_of_pairs, vec![user(0).as_uuid(), user(1).as_uuid()]);
    let folded = fold(Loaded::default(), &events).expect("folds");
    let expected_room =
        RoomRow { participant_count: 2, updated_at: at(2), started_at: Some(at(1)), ..room_row(room, 0) };
    let first = Stay { audio_muted: true, ..stay(None, room, 0, 1) };
    let second = stay(None, room, 1, 2);
    assert_eq!(
        folded,
        Folded { created: vec![expected_room], opened: vec![Some(first), Some(second)], ..Folded::default() }
    );
}

#[test]
fn a_loaded_stay_left_and_joined_again_is_closed_and_a_new_one_opened() {
    let room = Uuid::from_u128(2);
    let loaded = Loaded {
        rooms: vec![RoomRow { participant_count: 1, started_at: Some(at(1)), ..room_row(room, 0) }],
        open_stays: vec![Stay { video_on: true, ..stay(Some(7), room, 3, 1) }],
    };
    let events = vec![
        event(room, 10, RoomEvent::ParticipantLeft { user_id: user(3) }),
        event(room, 11, joined(3)),
        event(room, 12, RoomEvent::ParticipantVideoChanged { user_id: user(3), on: true }),
    ];
    assert_eq!(rooms_to_load(&events), vec![room]);
    let folded = fold(loaded, &events).expect("folds");
    let closed =
        Stay { left_at: Some(at(10)), left_reason: Some("left".into()), video_on: true, ..stay(Some(7), room, 3, 1) };
    let reopened = Stay { video_on: true, ..stay(None, room, 3, 11) };
    let room_after = RoomRow { participant_count: 1, updated_at: at(11), started_at: Some(at(1)), ..room_row(room, 0) };
    assert_eq!(
        folded,
        Folded { updated: vec![room_after], opened: vec![Some(reopened)], changed: vec![closed], ..Folded::default() }
    );
}

#[test]
fn the_host_mute_holds_against_muting_oneself_and_ends_with_unmuting() {
    let room = Uuid::from_u128(3);
    let loaded = Loaded { rooms: vec![], open_stays: vec![stay(Some(1), room, 1, 0)] };
    let muted_by_host = RoomEvent::ParticipantMutedByHost { user_id: user(1), muted_by: user(0) };
    let mute_then_self_mute = vec![event(room, 1, muted_by_host.clone()), event(room, 2, audio(1, true))];
    let folded = fold(loaded.clone(), &mute_then_self_mute).expect("folds");
    assert_eq!(folded.changed, vec![Stay { audio_muted: true, muted_by_host: true, ..stay(Some(1), room, 1, 0) }]);
    let mute_then_unmute = vec![event(room, 1, muted_by_host), event(room, 2, audio(1, false))];
    let folded = fold(loaded, &mute_then_unmute).expect("folds");
    assert_eq!(folded.changed, vec![stay(Some(1), room, 1, 0)]);
    assert!(folded.updated.is_empty(), "stay events leave the room's row alone");
}

#[test]
fn ending_the_room_closes_loaded_and_new_stays_and_zeroes_the_count() {
    let room = Uuid::from_u128(4);
    let loaded = Loaded {
        rooms: vec![RoomRow { participant_count: 1, ..room_row(room, 0) }],
        open_stays: vec![stay(Some(3), room, 1, 0)],
    };
    let events = vec![event(room, 5, joined(2)), event(room, 6, RoomEvent::RoomEnded {})];
    let wanted = stays_to_load(&events);
    assert_eq!((wanted.rooms, wanted.rooms_of_pairs), (vec![room], vec![]), "every open stay of an ending room");
    let folded = fold(loaded, &events).expect("folds");
    let ended = |stay: Stay| Stay { left_at: Some(at(6)), left_reason: Some("room_ended".into()), ..stay };
    assert_eq!(folded.changed, vec![ended(stay(Some(3), room, 1, 0))]);
    assert_eq!(folded.opened, vec![Some(ended(stay(None, room, 2, 5)))]);
    let room_after = RoomRow {
        status: "ended".into(),
        ended_at: Some(at(6)),
        participant_count: 0,
        updated_at: at(6),
        started_at: Some(at(5)),
        ..room_row(room, 0)
    };
    assert_eq!(folded.updated, vec![room_after]);
    assert!(folded.unmatched.is_empty());
}

#[test]
fn a_second_join_opens_nothing_but_keeps_its_place_in_the_id_order() {
    let room = Uuid::from_u128(5);
    let events = vec![
        event(room, 0, created(user(0))),
        event(room, 1, joined(1)),
        event(room, 2, joined(1)),
        event(room, 3, joined(2)),
    ];
    let folded = fold(Loaded::default(), &events).expect("folds");
    assert_eq!(folded.opened, vec![Some(stay(None, room, 1, 1)), None, Some(stay(None, room, 2, 3))]);
    assert_eq!(folded.created[0].participant_count, 2);
    assert_eq!(folded.unmatched, vec![2], "the second join found no row to update, as before");
}

#[test]
fn events_of_a_room_without_a_row_change_no_room_and_are_reported() {
    let room = Uuid::from_u128(6);
    let rescheduled = RoomEvent::RoomRescheduled {
        scheduled_at: at(100),
        duration_minutes: None,
        schedule_sequence: 1,
        rescheduled_by: user(0),
    };
    let events = vec![event(room, 1, rescheduled), event(room, 2, joined(1)), event(room, 3, audio(2, true))];
    let folded = fold(Loaded::default(), &events).expect("folds");
    assert!(folded.created.is_empty() && folded.updated.is_empty());
    // Stays have no foreign key: the join still opens one.
    assert_eq!(folded.opened, vec![Some(stay(None, room, 1, 2))]);
    assert_eq!(folded.unmatched, vec![0, 1, 2]);
}

#[test]
fn a_room_created_twice_is_poison() {
    let room = Uuid::from_u128(7);
    let events = vec![event(room, 0, created(user(0))), event(room, 1, created(user(0)))];
    assert!(matches!(fold(Loaded::default(), &events), Err(ApplyError::Poison(_))));
    let loaded = Loaded { rooms: vec![room_row(room, 0)], open_stays: vec![] };
    let events =
        vec![event(room, 1, RoomEvent::RecordingStarted { started_by: user(0) }), event(room, 2, created(user(0)))];
    assert!(matches!(fold(loaded, &events), Err(ApplyError::Poison(_))));
}

/// The tables as rows by key, written the way `mod.rs` writes a fold's result.
#[derive(Default, Debug, PartialEq)]
struct Tables {
    rooms: BTreeMap<Uuid, RoomRow>,
    stays: BTreeMap<i64, Stay>,
    next_id: i64,
}

impl Tables {
    fn load(&self, events: &[Event]) -> Loaded {
        let rooms = rooms_to_load(events).iter().filter_map(|id| self.rooms.get(id).cloned()).collect();
        let wanted = stays_to_load(events);
        let open_stays =
            self.stays.values().filter(|stay| stay.left_at.is_none() && wanted.wants(stay)).cloned().collect();
        Loaded { rooms, open_stays }
    }

    fn write(&mut self, folded: Folded) {
        for row in folded.created {
            assert!(self.rooms.insert(row.id, row).is_none(), "a created room existed");
        }
        for row in folded.updated {
            assert!(self.rooms.insert(row.id, row).is_some(), "an updated room did not exist");
        }
        for stay in folded.changed {
            assert!(self.stays.insert(stay.id.expect("a loaded stay"), stay).is_some());
        }
        for opened in folded.opened {
            self.next_id += 1;
            if let Some(stay) = opened {
                self.stays.insert(self.next_id, Stay { id: Some(self.next_id), ..stay });
            }
        }
    }

    fn apply(&mut self, events: &[Event]) {
        let folded = fold(self.load(events), events).expect("folds");
        self.write(folded);
    }
}

/// Three rooms interleaved: joins (one twice), leaves and rejoins, host mutes, every
/// toggle, settings, recording, a removal, and an end.
fn history() -> Vec<Event> {
    let rooms = [Uuid::from_u128(11), Uuid::from_u128(12), Uuid::from_u128(13)];
    let mut events = Vec::new();
    let mut second = 0;
    for step in 0..40u128 {
        for (r, room) in rooms.iter().enumerate() {
            second += 1;
            let who = (step + r as u128) % 5;
            let change = match step {
                0 => created(user(0)),
                1..=5 => joined(step - 1),
                6 => joined(2),
                38 if r == 0 => RoomEvent::RoomEnded {},
                _ => match (step + r as u128) % 9 {
                    0 => RoomEvent::ParticipantLeft { user_id: user(who) },
                    1 => joined(who),
                    2 => RoomEvent::ParticipantMutedByHost { user_id: user(who), muted_by: user(0) },
                    3 => RoomEvent::ParticipantUnmuteAllowed { user_id: user(who), allowed_by: user(0) },
                    4 => audio(who, step % 2 == 0),
                    5 => RoomEvent::ParticipantVideoChanged { user_id: user(who), on: step % 3 == 0 },
                    6 => RoomEvent::ParticipantScreenShareChanged { user_id: user(who), sharing: step % 4 == 0 },
                    7 => RoomEvent::ParticipantRemoved { user_id: user(who), removed_by: user(0) },
                    _ => RoomEvent::RoomSettingsUpdated {
                        name: Some(RoomName::parse(format!("Room {step}")).expect("valid name")),
                        description: None,
                        password_hash: None,
                        password_cleared: step % 2 == 0,
                        max_users: None,
                    },
                },
            };
            events.push(event(*room, second, change));
        }
    }
    events
}

#[test]
fn folding_in_batches_of_any_size_equals_folding_one_event_at_a_time() {
    let events = history();
    let mut one_by_one = Tables::default();
    for event in events.chunks(1) {
        one_by_one.apply(event);
    }
    assert!(one_by_one.rooms.values().any(|room| room.status == "ended"));
    assert!(one_by_one.stays.values().any(|stay| stay.left_reason.as_deref() == Some("removed")));
    assert!(one_by_one.stays.len() > 15, "rejoins open new stays");
    for size in [2, 7, 50, events.len()] {
        let mut batched = Tables::default();
        for batch in events.chunks(size) {
            batched.apply(batch);
        }
        assert_eq!(batched, one_by_one, "batches of {size}");
    }
}
