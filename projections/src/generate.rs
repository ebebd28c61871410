//! A deterministic, realistic history of room events, for analytics replays, tests
//! and benchmarks (`rapat events generate`).
//!
//! [`generate_history`] yields stored room events in time order across rooms: each
//! room is created, holds meetings (participants join, toggle microphone, camera
//! and screen share, get muted or removed by the host, leave, sometimes come back)
//! and is ended by its host, all before the history's last day is over. Every event
//! obeys the room aggregate's rules and carries a correct aggregate version, so the
//! write side could load these rooms too. The same [`HistoryConfig`] always gives
//! the same events, ids included: each room draws from its own seeded generator.
//! [`publish_history`] appends them to JetStream, one message per event.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapat_domain::envelope::{StoredCommit, StoredEvent, schema_version_of, split_event};
use rapat_domain::ids::UserId;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use uuid::Uuid;

/// What history to generate. The same value always yields the same events.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    pub seed: u64,
    pub rooms: u32,
    /// The history lies in `[start, start + days)`.
    pub days: u32,
    pub start: DateTime<Utc>,
}

impl HistoryConfig {
    /// A history of the `days` UTC days before today.
    pub fn ending_today(seed: u64, rooms: u32, days: u32) -> Self {
        let today = Utc::now().date_naive();
        let start = (today - TimeDelta::days(i64::from(days))).and_time(NaiveTime::MIN).and_utc();
        Self { seed, rooms, days, start }
    }
}

/// The room events of the history, in time order across rooms.
pub fn generate_history(config: &HistoryConfig) -> History {
    let mut users_rng = StdRng::seed_from_u64(config.seed);
    // People meet in several rooms: a shared pool makes "unique participants"
    // across rooms differ from the sum of each room's.
    let pool_size = (config.rooms as usize * 4).max(20);
    let users: Arc<[Uuid]> = (0..pool_size).map(|_| random_uuid(&mut users_rng)).collect();
    let end = config.start + TimeDelta::days(i64::from(config.days));
    let mut rooms = Vec::with_capacity(config.rooms as usize);
    let mut next = BinaryHeap::with_capacity(config.rooms as usize);
    for index in 0..config.rooms {
        // Seeds far apart per room, so rooms do not mirror each other.
        let seed = config.seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut room = RoomSim::new(index, StdRng::seed_from_u64(seed), users.clone(), config.start, end);
        if let Some(at) = room.peek() {
            next.push(Reverse((at, index)));
        }
        rooms.push(room);
    }
    History { rooms, next }
}

/// Iterator over a generated history; see [`generate_history`].
pub struct History {
    rooms: Vec<RoomSim>,
    /// Each room's next event time; ties go to the lower room index.
    next: BinaryHeap<Reverse<(DateTime<Utc>, u32)>>,
}

impl Iterator for History {
    type Item = StoredEvent;

    fn next(&mut self) -> Option<StoredEvent> {
        let Reverse((_, index)) = self.next.pop()?;
        let room = &mut self.rooms[index as usize];
        let event = room.pop();
        if let Some(at) = room.peek() {
            self.next.push(Reverse((at, index)));
        }
        event
    }
}

/// An event decided but not yet stored.
struct Planned {
    at: DateTime<Utc>,
    actor: Uuid,
    event: RoomEvent,
}

/// One room's life, planned a meeting at a time.
struct RoomSim {
    rng: StdRng,
    id: Uuid,
    host: Uuid,
    max_users: u32,
    users: Arc<[Uuid]>,
    version: u64,
    pending: VecDeque<Planned>,
    /// When the next meeting may start.
    clock: DateTime<Utc>,
    /// Time of the latest event planned so far.
    last_at: DateTime<Utc>,
    end: DateTime<Utc>,
    ended: bool,
}

impl RoomSim {
    fn new(index: u32, mut rng: StdRng, users: Arc<[Uuid]>, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        let id = random_uuid(&mut rng);
        let host = users[rng.random_range(0..users.len())];
        let max_users = rng.random_range(8..=20);
        // Rooms appear during the first third of the history.
        let span = (end - start).num_milliseconds().max(3);
        let created_at = start + TimeDelta::milliseconds(rng.random_range(0..span / 3));
        let name = RoomName::parse(format!("Generated room {index}")).expect("a short name is valid");
        let description = RoomDescription::parse(String::new()).expect("an empty description is valid");
        let created = RoomEvent::RoomCreated {
            host_id: UserId::from_uuid(host),
            name,
            description,
            password_hash: None,
            max_users: MaxUsers::parse(max_users).expect("within the limit"),
            scheduled_at: None,
        };
        let mut pending = VecDeque::new();
        pending.push_back(Planned { at: created_at, actor: host, event: created });
        let clock = created_at + minutes(rng.random_range(5..240));
        Self { rng, id, host, max_users, users, version: 0, pending, clock, last_at: created_at, end, ended: false }
    }

    fn peek(&mut self) -> Option<DateTime<Utc>> {
        if self.pending.is_empty() && !self.ended {
            self.plan_meeting();
        }
        self.pending.front().map(|planned| planned.at)
    }

    fn pop(&mut self) -> Option<StoredEvent> {
        let planned = self.pending.pop_front()?;
        self.version += 1;
        Some(self.store(planned))
    }

    fn store(&mut self, planned: Planned) -> StoredEvent {
        let (event_type, payload) = split_event(&planned.event).expect("room events are struct variants");
        let schema_version = schema_version_of(&planned.event).expect("room event versions are numbers");
        let command_id = random_uuid(&mut self.rng).to_string();
        StoredEvent {
            event_id: random_uuid(&mut self.rng),
            aggregate_type: "room".to_owned(),
            aggregate_id: self.id.to_string(),
            aggregate_version: self.version,
            event_type,
            schema_version,
            timestamp: planned.at,
            actor: Some(planned.actor.to_string()),
            correlation_id: Some(command_id.clone()),
            command_id,
            payload,
        }
    }

    /// Plans the next meeting (and the room's end after the last one).
    fn plan_meeting(&mut self) {
        let start = self.clock;
        if start + TimeDelta::hours(3) >= self.end {
            // No time for another meeting: the host closes the room soon after the last.
            let at = (self.last_at + minutes(self.rng.random_range(1..30))).min(self.end - minutes(1)).max(self.last_at);
            self.pending.push_back(Planned { at, actor: self.host, event: RoomEvent::RoomEnded {} });
            self.ended = true;
            return;
        }
        // The last meeting when no long one would fit any more; some rooms close early.
        let last = start + TimeDelta::hours(6) >= self.end || self.rng.random_ratio(1, 40);
        let mut plan = Vec::new();
        let count = self.rng.random_range(2..=8u32).min(self.max_users) as usize;
        let mut people: Vec<Uuid> = Vec::with_capacity(count);
        if self.rng.random_ratio(4, 5) {
            people.push(self.host);
        }
        while people.len() < count {
            let user = self.users[self.rng.random_range(0..self.users.len())];
            if !people.contains(&user) {
                people.push(user);
            }
        }
        for user in people {
            let mut join = start + millis(self.rng.random_range(0..900_000));
            // A fifth come back once after leaving.
            let stays = if self.rng.random_ratio(1, 5) { 2 } else { 1 };
            for _ in 0..stays {
                let leave = join + millis(self.rng.random_range(300_000..7_200_000));
                self.plan_stay(&mut plan, user, join, leave);
                join = leave + millis(self.rng.random_range(60_000..900_000));
            }
        }
        plan.sort_by_key(|planned| planned.at);
        let finish = plan.last().map_or(start, |planned| planned.at);
        if last {
            // Half the time the host ends the room while people are still in it.
            let end_at = if self.rng.random_bool(0.5) {
                let length = (finish - start).num_milliseconds().max(600_001);
                start + millis(self.rng.random_range(600_000..length))
            } else {
                finish + millis(self.rng.random_range(1_000..600_000))
            };
            // Every room ends inside the history.
            let end_at = end_at.min(self.end - minutes(1));
            plan.retain(|planned| planned.at < end_at);
            plan.push(Planned { at: end_at, actor: self.host, event: RoomEvent::RoomEnded {} });
            self.ended = true;
        }
        self.last_at = plan.last().map_or(self.last_at, |planned| planned.at);
        self.pending.extend(plan);
        // The next meeting: later that day or on another one.
        self.clock = finish + minutes(self.rng.random_range(30..36 * 60));
    }

    /// One stay of `user` from `join` to `leave`, with media toggles in between.
    fn plan_stay(&mut self, plan: &mut Vec<Planned>, user: Uuid, join: DateTime<Utc>, leave: DateTime<Utc>) {
        let user_id = UserId::from_uuid(user);
        plan.push(Planned { at: join, actor: user, event: RoomEvent::ParticipantJoined { user_id } });
        let length = (leave - join).num_milliseconds();
        let mut times: Vec<i64> = (0..self.rng.random_range(0..=5)).map(|_| self.rng.random_range(1..length)).collect();
        times.sort_unstable();
        let (mut muted, mut video, mut sharing) = (false, false, false);
        for offset in times {
            let at = join + TimeDelta::milliseconds(offset);
            let (actor, event) = match self.rng.random_range(0..10) {
                0..=3 => {
                    muted = !muted;
                    (user, RoomEvent::ParticipantAudioChanged { user_id, muted })
                }
                4..=6 => {
                    video = !video;
                    (user, RoomEvent::ParticipantVideoChanged { user_id, on: video })
                }
                7..=8 => {
                    sharing = !sharing;
                    (user, RoomEvent::ParticipantScreenShareChanged { user_id, sharing })
                }
                // The host mutes someone who is not muted (a no-op otherwise).
                _ if !muted && user != self.host => {
                    muted = true;
                    let muted_by = UserId::from_uuid(self.host);
                    (self.host, RoomEvent::ParticipantMutedByHost { user_id, muted_by })
                }
                _ => continue,
            };
            plan.push(Planned { at, actor, event });
        }
        let (actor, event) = if user != self.host && self.rng.random_ratio(1, 10) {
            (self.host, RoomEvent::ParticipantRemoved { user_id, removed_by: UserId::from_uuid(self.host) })
        } else {
            (user, RoomEvent::ParticipantLeft { user_id })
        };
        plan.push(Planned { at: leave, actor, event });
    }
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn millis(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// What [`publish_history`] did.
#[derive(Clone, Debug)]
pub struct PublishReport {
    pub events: u64,
    /// Stream sequence of the last message published (0 if none).
    pub last_sequence: u64,
    pub elapsed: Duration,
}

impl PublishReport {
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.events as f64 / seconds } else { 0.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("encoding an event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Most publishes awaiting their acknowledgement at once.
pub const MAX_WINDOW: usize = 1000;

/// Appends `events` to the stream, one message (a [`StoredCommit`] of one event)
/// each, on `<subject_prefix>.<aggregate type>.<aggregate id>`. Publishes are
/// plain (no expected-sequence header): the generator already numbered the
/// versions, and a fresh history has nobody to race. Acks are awaited in windows of
/// at most `window` (capped at [`MAX_WINDOW`]) so a fast producer cannot run away
/// from the server. `progress` is called with the count after each window.
pub async fn publish_history(
    jetstream: &jetstream::Context,
    subject_prefix: &str,
    events: impl IntoIterator<Item = StoredEvent>,
    window: usize,
    mut progress: impl FnMut(u64),
) -> Result<PublishReport, PublishError> {
    let window = window.clamp(1, MAX_WINDOW);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(window);
    let (mut published, mut last_sequence) = (0u64, 0u64);
    // Subjects repeat for every event of a room: build each once.
    let mut subjects: HashMap<(String, String), String> = HashMap::new();
    for event in events {
        let subject = subjects
            .entry((event.aggregate_type.clone(), event.aggregate_id.clone()))
            .or_insert_with(|| format!("{subject_prefix}.{}.{}", event.aggregate_type, event.aggregate_id))
            .clone();
        let body = serde_json::to_vec(&StoredCommit { events: vec![event] })?;
        let ack = jetstream
            .publish(subject, body.into())
            .await
            .map_err(|error| PublishError::Nats(format!("publishing: {error}")))?;
        pending.push(ack);
        published += 1;
        if pending.len() >= window {
            last_sequence = await_acks(&mut pending).await?.max(last_sequence);
            progress(published);
        }
    }
    last_sequence = await_acks(&mut pending).await?.max(last_sequence);
    progress(published);
    Ok(PublishReport { events: published, last_sequence, elapsed: started.elapsed() })
}

/// Waits for every pending ack; returns the highest stream sequence among them.
async fn await_acks(pending: &mut Vec<jetstream::context::PublishAckFuture>) -> Result<u64, PublishError> {
    let mut highest = 0;
    for ack in pending.drain(..) {
        let ack = ack.await.map_err(|error| PublishError::Nats(format!("awaiting an ack: {error}")))?;
        highest = highest.max(ack.sequence);
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> HistoryConfig {
        let start = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z").expect("a time").with_timezone(&Utc);
        HistoryConfig { seed, rooms: 5, days: 7, start }
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let first: Vec<StoredEvent> = generate_history(&config(7)).collect();
        let again: Vec<StoredEvent> = generate_history(&config(7)).collect();
        let other: Vec<StoredEvent> = generate_history(&config(8)).collect();
        assert!(first.len() > 100, "{} events", first.len());
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn events_are_in_time_order_with_gap_free_versions_inside_the_history() {
        let config = config(3);
        let end = config.start + TimeDelta::days(i64::from(config.days));
        let events: Vec<StoredEvent> = generate_history(&config).collect();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let mut ended = 0;
        for pair in events.windows(2) {
            assert!(pair[0].timestamp <= pair[1].timestamp);
        }
        for event in &events {
            assert!(event.timestamp >= config.start && event.timestamp < end, "{event:?}");
            let version = versions.entry(&event.aggregate_id).or_insert(0);
            *version += 1;
            assert_eq!(event.aggregate_version, *version);
            assert_eq!(event.event_type == "RoomCreated", *version == 1);
            ended += usize::from(event.event_type == "RoomEnded");
        }
        assert_eq!(versions.len(), 5);
        assert_eq!(ended, 5, "every room ends inside the history");
    }
}
