//! The analytics projection against an independent count: a generated history of
//! more than 100,000 room events, written through the command bus, is replayed
//! into the read model, exported from the stream as JSON Lines, and recounted
//! here in memory by a separate, plain implementation of the definitions in
//! `models/analytics/mod.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rapat_commands::generate::{HistoryConfig, MAX_WINDOW, plan_history, run_plan};
use rapat_commands::{Argon2idHasher, CommandBus, EventStoreConfig, JetStreamEventStore};
use rapat_domain::ids::RoomId;
use rapat_domain::room::Room as RoomAggregate;
use rapat_domain::services::DomainServices;
use rapat_projections::export::{ExportFilter, export_jsonl};
use rapat_projections::queries::analytics::{self, AnalyticsDay};
use rapat_projections::{Projection, rebuild};
use serde::Deserialize;
use uuid::Uuid;

use crate::support::TestEnv;

/// 200 rooms over 30 days give about 105,000 events (measured; asserted below).
const ROOMS: u32 = 200;
const DAYS: u32 = 30;

/// What the test reads of an exported line.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    stream_sequence: u64,
    aggregate_id: Uuid,
    event_type: String,
    timestamp: DateTime<Utc>,
    payload: serde_json::Value,
}

/// One room-day as this test counts it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Day {
    meetings: u64,
    meetings_ended: u64,
    meeting_micros: i64,
    participant_micros: i64,
    peak: u32,
    users: BTreeSet<Uuid>,
}

/// A closed stay.
struct Stay {
    user: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(Default)]
struct Room {
    open: HashMap<Uuid, DateTime<Utc>>,
    meeting_started: Option<DateTime<Utc>>,
    stays: Vec<Stay>,
    /// Concurrency right after each join, with the join's day.
    joins: Vec<(NaiveDate, u32)>,
    /// (start, end) of each meeting; `None` while under way.
    meetings: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Room {
    fn close(&mut self, user: Uuid, at: DateTime<Utc>) {
        if let Some(from) = self.open.remove(&user) {
            self.stays.push(Stay { user, from, to: at });
            if self.open.is_empty() {
                self.end_meeting(at);
            }
        }
    }

    fn end_meeting(&mut self, at: DateTime<Utc>) {
        if let Some(start) = self.meeting_started.take() {
            self.meetings.push((start, Some(at)));
        }
    }
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// Walks the exported events in stream order and counts every room-day.
fn count(lines: &[Line]) -> BTreeMap<(Uuid, NaiveDate), Day> {
    let mut rooms: BTreeMap<Uuid, Room> = BTreeMap::new();
    for line in lines {
        let room = rooms.entry(line.aggregate_id).or_default();
        let user = || Uuid::parse_str(line.payload["userId"].as_str().expect("a userId")).expect("a UUID");
        match line.event_type.as_str() {
            "ParticipantJoined" => {
                let user = user();
                if room.open.contains_key(&user) {
                    continue;
                }
                if room.open.is_empty() {
                    room.meeting_started = Some(line.timestamp);
                }
                room.open.insert(user, line.timestamp);
                room.joins.push((line.timestamp.date_naive(), room.open.len() as u32));
            }
            "ParticipantLeft" | "ParticipantRemoved" => room.close(user(), line.timestamp),
            "RoomEnded" => {
                let users: Vec<Uuid> = room.open.keys().copied().collect();
                for user in users {
                    room.close(user, line.timestamp);
                }
                room.end_meeting(line.timestamp);
            }
            _ => {}
        }
    }

    let mut days: BTreeMap<(Uuid, NaiveDate), Day> = BTreeMap::new();
    for (id, room) in &rooms {
        assert!(room.open.is_empty(), "every generated room ends, closing its stays");
        for (start, end) in &room.meetings {
            let day = days.entry((*id, start.date_naive())).or_default();
            day.meetings += 1;
            if let Some(end) = end {
                day.meetings_ended += 1;
                day.meeting_micros += (*end - *start).num_microseconds().expect("fits").max(0);
            }
        }
        for (day, concurrency) in &room.joins {
            let day = days.entry((*id, *day)).or_default();
            day.peak = day.peak.max(*concurrency);
        }
        for stay in &room.stays {
            let mut day = stay.from.date_naive();
            while day <= stay.to.date_naive() {
                let next = day.succ_opt().expect("a next day");
                // The part of the stay inside this day.
                let from = stay.from.max(day_start(day));
                let to = stay.to.min(day_start(next));
                let entry = days.entry((*id, day)).or_default();
                entry.participant_micros += (to - from).num_microseconds().expect("fits").max(0);
                entry.users.insert(stay.user);
                // Stays open when the day began were all in the room at midnight.
                if stay.from < day_start(day) {
                    let carried = room.stays.iter().filter(|s| s.from < day_start(day) && s.to >= day_start(day));
                    entry.peak = entry.peak.max(carried.count() as u32);
                }
                day = next;
            }
        }
    }
    days
}

#[tokio::test]
async fn analytics_equal_an_independent_count_of_the_exported_stream() {
    let env = TestEnv::new().await;
    let start = DateTime::parse_from_rfc3339("2024-02-20T00:00:00Z").expect("a time").with_timezone(&Utc);
    let history = HistoryConfig { seed: 20240220, rooms: ROOMS, days: DAYS, start };
    // The test's own stream, written the way `rapat events generate` writes.
    let event_store =
        EventStoreConfig { snapshot_every: 0, ..EventStoreConfig::for_namespace(env.config.namespace.clone()) };
    let store =
        JetStreamEventStore::<RoomAggregate>::open(env.jetstream.client(), event_store).await.expect("opens the store");
    let bus = Arc::new(CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new()))));
    let published = run_plan(bus, plan_history(&history), MAX_WINDOW, |_| {}).await.expect("runs the plan");
    eprintln!(
        "generated {} events from {} commands in {:?} ({:.0} events/s)",
        published.events,
        published.commands,
        published.elapsed,
        published.events_per_second()
    );
    assert!(published.events >= 100_000, "only {} events", published.events);

    // The analytics projection alone, in big batches, as `rapat rebuild analytics` does.
    let mut config = env.config.clone();
    config.batch_size = 2000;
    let replay = rebuild(&env.pool, &env.jetstream, &config, Projection::Analytics, |_| {}).await.expect("replays");
    eprintln!(
        "analytics caught up: {} events in {:?} ({:.0} events/s)",
        replay.events, replay.elapsed, replay.events_per_second
    );
    assert_eq!(replay.events, published.events);

    let exporting = Instant::now();
    let mut jsonl = Vec::new();
    let filter = ExportFilter { aggregate_type: Some("room".into()), ..Default::default() };
    export_jsonl(&env.jetstream, &env.config.namespace, &filter, &mut jsonl, |_| {}).await.expect("exports");
    let lines: Vec<Line> = jsonl
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("an exported event"))
        .collect();
    assert_eq!(lines.len() as u64, published.events);
    // A command's events share its message (a rejoin of someone the host muted).
    assert!(lines.windows(2).all(|pair| pair[0].stream_sequence <= pair[1].stream_sequence));
    let expected = count(&lines);
    eprintln!("exported and counted independently in {:?}", exporting.elapsed());

    // Per room and day: every row of the read model, through the REST queries.
    let rooms: BTreeSet<Uuid> = expected.keys().map(|(room, _)| *room).collect();
    assert_eq!(rooms.len(), ROOMS as usize);
    let mut meetings = 0;
    for room in &rooms {
        let got: BTreeMap<NaiveDate, AnalyticsDay> = analytics::room_days(&env.pool, RoomId::from_uuid(*room))
            .await
            .expect("reads")
            .into_iter()
            .map(|row| (row.day, row))
            .collect();
        let want: BTreeMap<NaiveDate, &Day> =
            expected.range((*room, NaiveDate::MIN)..=(*room, NaiveDate::MAX)).map(|((_, day), d)| (*day, d)).collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "days of room {room}");
        for (day, want) in want {
            let got = &got[&day];
            let got = (
                got.meetings,
                got.meetings_ended,
                got.meeting_micros,
                got.participant_micros,
                got.peak_concurrency,
                got.unique_participants,
            );
            let want_tuple = (
                want.meetings,
                want.meetings_ended,
                want.meeting_micros,
                want.participant_micros,
                want.peak,
                want.users.len() as u64,
            );
            assert_eq!(
                got, want_tuple,
                "room {room} on {day}: (meetings, ended, meeting µs, participant µs, peak, unique)"
            );
            meetings += want.meetings;
        }
        let totals = analytics::room_totals(&env.pool, RoomId::from_uuid(*room)).await.expect("reads");
        let users: BTreeSet<Uuid> = expected
            .range((*room, NaiveDate::MIN)..=(*room, NaiveDate::MAX))
            .flat_map(|(_, d)| d.users.iter().copied())
            .collect();
        assert_eq!(totals.unique_participants, users.len() as u64);
    }
    assert!(meetings > 1000, "a realistic history holds many meetings: {meetings}");

    // Per day across rooms.
    let last = start + TimeDelta::days(i64::from(DAYS));
    let daily = analytics::daily(&env.pool, start.date_naive(), last.date_naive()).await.expect("reads");
    let mut by_day: BTreeMap<NaiveDate, (u64, i64, u32, BTreeSet<Uuid>)> = BTreeMap::new();
    for ((_, day), d) in &expected {
        let entry = by_day.entry(*day).or_default();
        entry.0 += d.meetings;
        entry.1 += d.participant_micros;
        entry.2 = entry.2.max(d.peak);
        entry.3.extend(d.users.iter().copied());
    }
    assert_eq!(daily.len(), by_day.len());
    for row in daily {
        let (meetings, micros, peak, users) = &by_day[&row.day];
        assert_eq!(
            (row.meetings, row.participant_micros, row.peak_concurrency, row.unique_participants),
            (*meetings, *micros, *peak, users.len() as u64),
            "all rooms on {}",
            row.day
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM analytics_open_stays").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM analytics_open_meetings").await, 0);
}
