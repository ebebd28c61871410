//! The fold on its own. The last test checks that folding a history in batches of
//! any size leaves the same tables as folding it one event at a time, each batch
//! given only the rows `mod.rs` would load for it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use uuid::Uuid;

use super::fold::{
    Change, DayDelta, Event, Folded, Loaded, OpenMeeting, fold, rooms_to_load, split_by_day, stays_to_load,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a timestamp").with_timezone(&Utc)
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

#[test]
fn a_stay_is_split_at_each_utc_midnight() {
    let hour = TimeDelta::hours(1).num_microseconds().expect("fits");
    assert_eq!(
        split_by_day(at("2024-05-01T10:00:00Z"), at("2024-05-01T12:00:00Z")),
        vec![(day("2024-05-01"), 2 * hour)]
    );
    assert_eq!(
        split_by_day(at("2024-05-01T23:00:00Z"), at("2024-05-03T01:00:00Z")),
        vec![(day("2024-05-01"), hour), (day("2024-05-02"), 24 * hour), (day("2024-05-03"), hour)]
    );
    assert_eq!(split_by_day(at("2024-05-01T23:00:00Z"), at("2024-05-02T00:00:00Z")), vec![(day("2024-05-01"), hour)]);
    assert_eq!(split_by_day(at("2024-05-01T10:00:00Z"), at("2024-05-01T09:00:00Z")), vec![(day("2024-05-01"), 0)]);
}

fn user(n: u128) -> Uuid {
    Uuid::from_u128(1000 + n)
}

#[test]
fn a_room_that_ends_or_crosses_a_day_loads_all_its_open_stays() {
    let (quiet, ends, crosses, carried) =
        (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
    let events = vec![
        Event { room: quiet, at: at("2024-05-01T10:00:00Z"), change: Change::Join(user(1)) },
        Event { room: ends, at: at("2024-05-01T10:00:00Z"), change: Change::End },
        Event { room: crosses, at: at("2024-05-01T23:59:00Z"), change: Change::Join(user(2)) },
        Event { room: crosses, at: at("2024-05-02T00:01:00Z"), change: Change::Leave(user(2)) },
        Event { room: carried, at: at("2024-05-02T10:00:00Z"), change: Change::Leave(user(3)) },
    ];
    let meeting = OpenMeeting { started_at: at("2024-05-01T09:00:00Z"), concurrency: 2, last_day: day("2024-05-01") };
    let meetings = BTreeMap::from([(carried, meeting)]);
    let load = stays_to_load(&events, &meetings);
    assert_eq!(load.whole_rooms, vec![ends, crosses, carried]);
    assert_eq!((load.rooms_of_pairs, load.users_of_pairs), (vec![quiet], vec![user(1)]));
}

#[test]
fn a_stay_left_and_joined_again_in_one_batch_is_one_row_replaced() {
    let room = Uuid::from_u128(1);
    let meeting = OpenMeeting { started_at: at("2024-05-01T09:00:00Z"), concurrency: 1, last_day: day("2024-05-01") };
    let loaded = Loaded {
        meetings: BTreeMap::from([(room, meeting)]),
        stays: BTreeMap::from([(room, BTreeMap::from([(user(1), at("2024-05-01T09:00:00Z"))]))]),
    };
    let events = vec![
        Event { room, at: at("2024-05-01T10:00:00Z"), change: Change::Leave(user(1)) },
        Event { room, at: at("2024-05-01T11:00:00Z"), change: Change::Join(user(1)) },
    ];
    let folded = fold(loaded, &events);
    assert!(folded.stays_closed.is_empty());
    assert_eq!(folded.stays_opened, vec![(room, user(1), at("2024-05-01T11:00:00Z"))]);
    assert!(folded.meetings_ended.is_empty(), "the row is replaced, not deleted");
    let second = OpenMeeting { started_at: at("2024-05-01T11:00:00Z"), concurrency: 1, last_day: day("2024-05-01") };
    assert_eq!(folded.meetings_saved, vec![(room, second)]);
    let hour = TimeDelta::hours(1).num_microseconds().expect("fits");
    let delta = DayDelta { meetings: 1, meetings_ended: 1, meeting_micros: hour, participant_micros: hour, peak: 1 };
    assert_eq!(folded.days, BTreeMap::from([((room, day("2024-05-01")), delta)]));
}

/// The tables as rows by key, written the way `mod.rs` writes a fold's result.
#[derive(Default, Debug, PartialEq)]
struct Tables {
    meetings: BTreeMap<Uuid, OpenMeeting>,
    stays: BTreeMap<(Uuid, Uuid), DateTime<Utc>>,
    days: BTreeMap<(Uuid, NaiveDate), DayDelta>,
    present: BTreeSet<(Uuid, NaiveDate, Uuid)>,
}

impl Tables {
    fn load(&self, events: &[Event]) -> Loaded {
        let rooms = rooms_to_load(events);
        let meetings: BTreeMap<Uuid, OpenMeeting> =
            self.meetings.iter().filter(|(room, _)| rooms.contains(room)).map(|(r, m)| (*r, *m)).collect();
        let wanted = stays_to_load(events, &meetings);
        let mut stays: BTreeMap<Uuid, BTreeMap<Uuid, DateTime<Utc>>> = BTreeMap::new();
        for (&(room, user), &joined_at) in &self.stays {
            if wanted.wants(room, user) {
                stays.entry(room).or_default().insert(user, joined_at);
            }
        }
        Loaded { meetings, stays }
    }

    fn write(&mut self, folded: Folded) {
        for pair in folded.stays_closed {
            assert!(self.stays.remove(&pair).is_some(), "a closed stay was open");
        }
        for (room, user, joined_at) in folded.stays_opened {
            self.stays.insert((room, user), joined_at);
        }
        for room in folded.meetings_ended {
            assert!(self.meetings.remove(&room).is_some(), "an ended meeting was open");
        }
        for (room, meeting) in folded.meetings_saved {
            self.meetings.insert(room, meeting);
        }
        for (key, delta) in folded.days {
            let row = self.days.entry(key).or_default();
            row.meetings += delta.meetings;
            row.meetings_ended += delta.meetings_ended;
            row.meeting_micros += delta.meeting_micros;
            row.participant_micros += delta.participant_micros;
            row.peak = row.peak.max(delta.peak);
        }
        self.present.extend(folded.present);
    }

    fn apply(&mut self, events: &[Event]) {
        let folded = fold(self.load(events), events);
        self.write(folded);
    }
}

/// Four rooms interleaved over three days, an event every 37 minutes: joins (some
/// twice), leaves (some without a stay), removals, rejoins, a clock step back,
/// meetings that run over midnight, and ends.
fn history() -> Vec<Event> {
    let rooms = [Uuid::from_u128(11), Uuid::from_u128(12), Uuid::from_u128(13), Uuid::from_u128(14)];
    let start = Utc.with_ymd_and_hms(2024, 5, 1, 20, 0, 0).single().expect("valid time");
    let mut events = Vec::new();
    let mut minutes = 0;
    for step in 0..120u128 {
        for (r, room) in rooms.iter().enumerate() {
            minutes += 37;
            let who = user((step * 7 + r as u128) % 4);
            let change = match (step + r as u128) % 11 {
                0 if step % 2 == 0 => Change::End,
                0..=4 => Change::Join(who),
                5..=9 => Change::Leave(who),
                _ => Change::Join(user(r as u128)),
            };
            // Now and then a gateway's clock behind the others.
            let skew = if step % 13 == 5 { TimeDelta::hours(3) } else { TimeDelta::zero() };
            events.push(Event { room: *room, at: start + TimeDelta::minutes(minutes) - skew, change });
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
    let days: BTreeSet<NaiveDate> = one_by_one.days.keys().map(|(_, day)| *day).collect();
    assert!(days.len() > 10, "the history runs over many days: {days:?}");
    assert!(one_by_one.days.values().any(|day| day.peak > 2), "meetings of several people");
    assert!(one_by_one.days.values().any(|day| day.meetings_ended > 1), "rooms meet more than once a day");
    for size in [2, 3, 7, 50, events.len()] {
        let mut batched = Tables::default();
        for batch in events.chunks(size) {
            batched.apply(batch);
        }
        assert_eq!(batched, one_by_one, "batches of {size}");
    }
}
