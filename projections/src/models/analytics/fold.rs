//! Folding a batch of room events into what the analytics tables gain, in memory
//! and without SQL. Each event does to the running state (open stays, open
//! meetings) what its statements did when every event was applied alone; the
//! batch starts from the rows `mod.rs` loads and ends with the rows to write.
//!
//! What has to be loaded: the open meeting of every room the batch counts in, and
//! the open stays its joins and leaves name. A room whose every open stay may be
//! read (the room ends, or a day passes under a meeting, whose open stays are then
//! carried over) has all its open stays loaded ([`stays_to_load`]).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// What an event does to the counts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Change {
    Join(Uuid),
    Leave(Uuid),
    End,
}

/// A room event that counts, with its room and time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Event {
    pub(super) room: Uuid,
    pub(super) at: DateTime<Utc>,
    pub(super) change: Change,
}

/// A meeting under way: the room's row in `analytics_open_meetings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OpenMeeting {
    pub(super) started_at: DateTime<Utc>,
    pub(super) concurrency: i32,
    pub(super) last_day: NaiveDate,
}

/// What one room-day row gains: sums, and a peak that only rises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DayDelta {
    pub(super) meetings: i32,
    pub(super) meetings_ended: i32,
    pub(super) meeting_micros: i64,
    pub(super) participant_micros: i64,
    pub(super) peak: i32,
}

/// Open stays by room, then user: when each joined.
pub(super) type OpenStays = BTreeMap<Uuid, BTreeMap<Uuid, DateTime<Utc>>>;

/// The rows the batch starts from.
#[derive(Clone, Debug, Default)]
pub(super) struct Loaded {
    pub(super) meetings: BTreeMap<Uuid, OpenMeeting>,
    pub(super) stays: OpenStays,
}

/// The open stays to load: every one of `whole_rooms`, and the named pairs.
#[derive(Debug, Default)]
pub(super) struct StaysToLoad {
    pub(super) whole_rooms: Vec<Uuid>,
    pub(super) rooms_of_pairs: Vec<Uuid>,
    pub(super) users_of_pairs: Vec<Uuid>,
}

impl StaysToLoad {
    pub(super) fn is_empty(&self) -> bool {
        self.whole_rooms.is_empty() && self.rooms_of_pairs.is_empty()
    }

    /// Whether the stay of `user` in `room` is one to load.
    #[cfg(test)]
    pub(super) fn wants(&self, room: Uuid, user: Uuid) -> bool {
        self.whole_rooms.contains(&room)
            || self.rooms_of_pairs.iter().zip(&self.users_of_pairs).any(|pair| pair == (&room, &user))
    }
}

/// What the batch leaves to write.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Folded {
    /// Open stays that are no more: (room, user).
    pub(super) stays_closed: Vec<(Uuid, Uuid)>,
    /// Open stays that are new, or were closed and opened again: (room, user, joined at).
    pub(super) stays_opened: Vec<(Uuid, Uuid, DateTime<Utc>)>,
    /// Rooms whose meeting ended.
    pub(super) meetings_ended: Vec<Uuid>,
    /// Meetings that started or changed.
    pub(super) meetings_saved: Vec<(Uuid, OpenMeeting)>,
    /// What each room-day gains.
    pub(super) days: BTreeMap<(Uuid, NaiveDate), DayDelta>,
    /// Who was in the room on a day: (room, day, user).
    pub(super) present: BTreeSet<(Uuid, NaiveDate, Uuid)>,
}

/// The rooms whose open meeting the batch reads, in order.
pub(super) fn rooms_to_load(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|event| event.room).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The open stays the batch reads, given the open meetings loaded for it. A
/// meeting's open stays are all carried over when an event comes on a later day
/// than the meeting's last one; that day is at least the earliest of the batch's
/// days of the room (a meeting the batch starts) or the loaded one, so a room whose
/// latest day is later than either has all its open stays loaded, as has a room
/// that ends.
pub(super) fn stays_to_load(events: &[Event], meetings: &BTreeMap<Uuid, OpenMeeting>) -> StaysToLoad {
    #[derive(Default)]
    struct Seen {
        first_day: Option<NaiveDate>,
        last_day: Option<NaiveDate>,
        ends: bool,
        users: BTreeSet<Uuid>,
    }
    let mut rooms: BTreeMap<Uuid, Seen> = BTreeMap::new();
    for event in events {
        let seen = rooms.entry(event.room).or_default();
        let day = event.at.date_naive();
        seen.first_day = Some(seen.first_day.map_or(day, |first| first.min(day)));
        seen.last_day = Some(seen.last_day.map_or(day, |last| last.max(day)));
        match event.change {
            Change::Join(user) | Change::Leave(user) => {
                seen.users.insert(user);
            }
            Change::End => seen.ends = true,
        }
    }
    let mut load = StaysToLoad::default();
    for (room, seen) in rooms {
        let (Some(first_day), Some(last_day)) = (seen.first_day, seen.last_day) else { continue };
        let earliest_meeting_day = meetings.get(&room).map_or(first_day, |meeting| meeting.last_day.min(first_day));
        if seen.ends || last_day > earliest_meeting_day {
            load.whole_rooms.push(room);
        } else {
            for user in seen.users {
                load.rooms_of_pairs.push(room);
                load.users_of_pairs.push(user);
            }
        }
    }
    load
}

/// Applies `events` in order to `loaded`, and gives what changed.
pub(super) fn fold(loaded: Loaded, events: &[Event]) -> Folded {
    let mut meetings = loaded.meetings.clone();
    let mut stays = loaded.stays.clone();
    let mut folded = Folded::default();
    for event in events {
        apply(&mut meetings, &mut stays, &mut folded, event);
    }
    diff(&loaded, &meetings, &stays, &mut folded);
    folded
}

/// One event, as its statements applied it alone.
fn apply(meetings: &mut BTreeMap<Uuid, OpenMeeting>, stays: &mut OpenStays, folded: &mut Folded, event: &Event) {
    let Event { room, at, change } = *event;
    let today = at.date_naive();
    let meeting = meetings.get(&room).copied();
    let mut changes = Changes { room, folded };
    if let Some(meeting) = meeting
        && today > meeting.last_day
    {
        carry_over(stays.get(&room), meeting, today, &mut changes);
    }
    // A timestamp older than the room's last one (clocks of two gateways) must not
    // move the room's day back: those days were already carried over.
    let last_day = meeting.map_or(today, |meeting| meeting.last_day.max(today));

    let next = match change {
        Change::Join(user) => {
            if let Entry::Vacant(stay) = stays.entry(room).or_default().entry(user) {
                stay.insert(at);
                let (started_at, concurrency) = match meeting {
                    Some(meeting) => (meeting.started_at, meeting.concurrency + 1),
                    None => {
                        changes.day(today).meetings += 1;
                        (at, 1)
                    }
                };
                changes.peak(today, concurrency);
                changes.present(today, user);
                Some(OpenMeeting { started_at, concurrency, last_day })
            } else {
                // Already in: changes nothing but the room's day.
                meeting.map(|meeting| OpenMeeting { last_day, ..meeting })
            }
        }
        Change::Leave(user) => {
            let joined_at = stays.get_mut(&room).and_then(|room_stays| room_stays.remove(&user));
            match (joined_at, meeting) {
                (None, meeting) => meeting.map(|meeting| OpenMeeting { last_day, ..meeting }),
                (Some(joined_at), Some(meeting)) => {
                    changes.stay_closed(joined_at, at);
                    if meeting.concurrency <= 1 {
                        changes.meeting_ended(meeting.started_at, at);
                        None
                    } else {
                        Some(OpenMeeting { concurrency: meeting.concurrency - 1, last_day, ..meeting })
                    }
                }
                // An open stay always has its meeting; should the state ever
                // disagree, the stay still counts.
                (Some(joined_at), None) => {
                    changes.stay_closed(joined_at, at);
                    None
                }
            }
        }
        Change::End => {
            for joined_at in stays.remove(&room).unwrap_or_default().into_values() {
                changes.stay_closed(joined_at, at);
            }
            if let Some(meeting) = meeting {
                changes.meeting_ended(meeting.started_at, at);
            }
            None
        }
    };
    match next {
        Some(meeting) => meetings.insert(room, meeting),
        None => meetings.remove(&room),
    };
}

/// Stays open since before `today` were in the room on every day in between, at the
/// room's concurrency: those days get their presence and peak now.
fn carry_over(
    room_stays: Option<&BTreeMap<Uuid, DateTime<Utc>>>,
    meeting: OpenMeeting,
    today: NaiveDate,
    changes: &mut Changes<'_>,
) {
    let mut day = meeting.last_day;
    while day < today {
        let Some(next) = day.succ_opt() else { break };
        day = next;
        changes.peak(day, meeting.concurrency);
        for user in room_stays.into_iter().flat_map(BTreeMap::keys) {
            changes.present(day, *user);
        }
    }
}

/// The rows that differ between what was loaded and what the events left.
fn diff(loaded: &Loaded, meetings: &BTreeMap<Uuid, OpenMeeting>, stays: &OpenStays, folded: &mut Folded) {
    let flat = |stays: &OpenStays| -> BTreeMap<(Uuid, Uuid), DateTime<Utc>> {
        stays.iter().flat_map(|(room, users)| users.iter().map(move |(user, at)| ((*room, *user), *at))).collect()
    };
    let (before, after) = (flat(&loaded.stays), flat(stays));
    for pair in before.keys().filter(|pair| !after.contains_key(pair)) {
        folded.stays_closed.push(*pair);
    }
    for (&(room, user), &joined_at) in &after {
        if before.get(&(room, user)) != Some(&joined_at) {
            folded.stays_opened.push((room, user, joined_at));
        }
    }
    for room in loaded.meetings.keys().filter(|room| !meetings.contains_key(room)) {
        folded.meetings_ended.push(*room);
    }
    for (room, meeting) in meetings {
        if loaded.meetings.get(room) != Some(meeting) {
            folded.meetings_saved.push((*room, *meeting));
        }
    }
}

/// What events add to the per-day rows of one room.
struct Changes<'a> {
    room: Uuid,
    folded: &'a mut Folded,
}

impl Changes<'_> {
    fn day(&mut self, day: NaiveDate) -> &mut DayDelta {
        self.folded.days.entry((self.room, day)).or_default()
    }

    fn peak(&mut self, day: NaiveDate, concurrency: i32) {
        let delta = self.day(day);
        delta.peak = delta.peak.max(concurrency);
    }

    fn present(&mut self, day: NaiveDate, user: Uuid) {
        self.folded.present.insert((self.room, day, user));
    }

    fn stay_closed(&mut self, joined_at: DateTime<Utc>, left_at: DateTime<Utc>) {
        for (day, micros) in split_by_day(joined_at, left_at) {
            self.day(day).participant_micros += micros;
        }
    }

    fn meeting_ended(&mut self, started_at: DateTime<Utc>, ended_at: DateTime<Utc>) {
        let delta = self.day(started_at.date_naive());
        delta.meetings_ended += 1;
        delta.meeting_micros += micros_between(started_at, ended_at);
    }
}

/// Microseconds from `from` to `to`; 0 if `to` is not later (a clock step back
/// must not subtract time).
fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX).max(0)
}

/// The time from `from` to `to` cut at UTC midnights: `(day, microseconds)` for
/// every day it touches, in order.
pub(super) fn split_by_day(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, i64)> {
    let mut parts = Vec::new();
    let mut start = from;
    while start < to {
        let day = start.date_naive();
        let next_midnight = day.succ_opt().and_then(|next| next.and_hms_opt(0, 0, 0)).map(|naive| naive.and_utc());
        let end = match next_midnight {
            Some(midnight) if midnight < to => midnight,
            _ => to,
        };
        parts.push((day, micros_between(start, end)));
        start = end;
    }
    if parts.is_empty() {
        // A zero-length stay still touched its day.
        parts.push((from.date_naive(), 0));
    }
    parts
}
