//! The plan of a generated history: a pure, deterministic sequence of room
//! commands, each with the simulated time it happens at.
//!
//! [`plan_history`] yields the commands in time order across rooms: each room is
//! created, holds meetings (participants join, toggle microphone, camera and
//! screen share, get muted or removed by the host, are allowed to unmute, leave,
//! sometimes come back) and is ended by its host, all before the history's last
//! day is over. The plan follows the room aggregate's rules, so every command is
//! accepted and changes something (a test checks this against `Room`). The same
//! [`HistoryConfig`] always gives the same commands, command ids included: each
//! room draws from its own seeded generator.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::{MaxUsers, RoomCommand, RoomDescription, RoomName};
use uuid::Uuid;

use crate::metadata::CommandMetadata;

/// What history to generate. The same value always yields the same commands.
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

/// One command of the plan. Its metadata carries a deterministic command id, the
/// acting user and the simulated time ([`CommandMetadata::simulated_at`]).
#[derive(Clone, Debug)]
pub struct PlannedCommand {
    pub room: RoomId,
    pub command: RoomCommand,
    pub metadata: CommandMetadata,
}

impl PlannedCommand {
    /// When the command happens in the simulated history.
    pub fn at(&self) -> DateTime<Utc> {
        self.metadata.simulated_at.unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// The commands of the history, in time order across rooms.
pub fn plan_history(config: &HistoryConfig) -> HistoryPlan {
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
    HistoryPlan { rooms, next }
}

/// Iterator over a planned history; see [`plan_history`].
pub struct HistoryPlan {
    rooms: Vec<RoomSim>,
    /// Each room's next command time; ties go to the lower room index.
    next: BinaryHeap<Reverse<(DateTime<Utc>, u32)>>,
}

impl Iterator for HistoryPlan {
    type Item = PlannedCommand;

    fn next(&mut self) -> Option<PlannedCommand> {
        let Reverse((_, index)) = self.next.pop()?;
        let room = &mut self.rooms[index as usize];
        let command = room.pop();
        if let Some(at) = room.peek() {
            self.next.push(Reverse((at, index)));
        }
        command
    }
}

/// A command decided but not yet given its id.
struct Planned {
    at: DateTime<Utc>,
    actor: Uuid,
    command: RoomCommand,
}

/// One room's life, planned a meeting at a time.
struct RoomSim {
    rng: StdRng,
    id: Uuid,
    host: Uuid,
    max_users: u32,
    users: Arc<[Uuid]>,
    /// Muted by the host and not yet allowed to unmute: the room keeps this
    /// across stays, and such a user cannot unmute themselves.
    muted_by_host: HashSet<Uuid>,
    pending: VecDeque<Planned>,
    /// When the next meeting may start.
    clock: DateTime<Utc>,
    /// Time of the latest command planned so far.
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
        let create = RoomCommand::Create {
            host: UserId::from_uuid(host),
            name: RoomName::parse(format!("Generated room {index}")).expect("a short name is valid"),
            description: RoomDescription::parse(String::new()).expect("an empty description is valid"),
            password: None,
            max_users: MaxUsers::parse(max_users).expect("within the limit"),
            scheduled_at: None,
            duration_minutes: None,
        };
        let mut pending = VecDeque::new();
        pending.push_back(Planned { at: created_at, actor: host, command: create });
        let clock = created_at + minutes(rng.random_range(5..240));
        Self {
            rng,
            id,
            host,
            max_users,
            users,
            muted_by_host: HashSet::new(),
            pending,
            clock,
            last_at: created_at,
            end,
            ended: false,
        }
    }

    fn peek(&mut self) -> Option<DateTime<Utc>> {
        if self.pending.is_empty() && !self.ended {
            self.plan_meeting();
        }
        self.pending.front().map(|planned| planned.at)
    }

    fn pop(&mut self) -> Option<PlannedCommand> {
        let planned = self.pending.pop_front()?;
        let command_id = random_uuid(&mut self.rng);
        let metadata = CommandMetadata::by(planned.actor.to_string())
            .with_command_id(command_id)
            .with_correlation_id(command_id.to_string())
            .simulated_at(planned.at);
        Some(PlannedCommand { room: RoomId::from_uuid(self.id), command: planned.command, metadata })
    }

    /// Plans the next meeting (and the room's end after the last one).
    fn plan_meeting(&mut self) {
        let start = self.clock;
        let end_room = RoomCommand::End { actor: UserId::from_uuid(self.host) };
        if start + TimeDelta::hours(3) >= self.end {
            // No time for another meeting: the host closes the room soon after the last.
            let at =
                (self.last_at + minutes(self.rng.random_range(1..30))).min(self.end - minutes(1)).max(self.last_at);
            self.pending.push_back(Planned { at, actor: self.host, command: end_room });
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
        // Stable: a user's commands at the same instant keep their order.
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
            plan.push(Planned { at: end_at, actor: self.host, command: end_room });
            self.ended = true;
        }
        self.last_at = plan.last().map_or(self.last_at, |planned| planned.at);
        self.pending.extend(plan);
        // The next meeting: later that day or on another one.
        self.clock = finish + minutes(self.rng.random_range(30..36 * 60));
    }

    /// One stay of `user` from `join` to `leave`, with media toggles in between.
    /// Every command changes something: a toggle flips what the user has now.
    fn plan_stay(&mut self, plan: &mut Vec<Planned>, user: Uuid, join: DateTime<Utc>, leave: DateTime<Utc>) {
        let user_id = UserId::from_uuid(user);
        let host_id = UserId::from_uuid(self.host);
        plan.push(Planned {
            at: join,
            actor: user,
            command: RoomCommand::Join { user: user_id, password: None, invited: false },
        });
        let length = (leave - join).num_milliseconds();
        let mut times: Vec<i64> = (0..self.rng.random_range(0..=5)).map(|_| self.rng.random_range(1..length)).collect();
        times.sort_unstable();
        // Someone the host muted comes back muted.
        let (mut muted, mut video, mut sharing) = (self.muted_by_host.contains(&user), false, false);
        for offset in times {
            let at = join + TimeDelta::milliseconds(offset);
            let (actor, command) = match self.rng.random_range(0..10) {
                // Muted by the host: they ask, and the host allows them to unmute
                // (their microphone stays off until they turn it on).
                0..=3 if self.muted_by_host.remove(&user) => {
                    (self.host, RoomCommand::AllowUnmute { actor: host_id, target: user_id })
                }
                0..=3 => {
                    muted = !muted;
                    (user, RoomCommand::SetAudio { user: user_id, muted })
                }
                4..=6 => {
                    video = !video;
                    (user, RoomCommand::SetVideo { user: user_id, on: video })
                }
                7..=8 => {
                    sharing = !sharing;
                    (user, RoomCommand::SetScreenShare { user: user_id, sharing })
                }
                // The host mutes someone whose microphone is on.
                _ if !muted && user != self.host => {
                    muted = true;
                    self.muted_by_host.insert(user);
                    (self.host, RoomCommand::MuteParticipant { actor: host_id, target: user_id })
                }
                _ => continue,
            };
            plan.push(Planned { at, actor, command });
        }
        let (actor, command) = if user != self.host && self.rng.random_ratio(1, 10) {
            (self.host, RoomCommand::RemoveParticipant { actor: host_id, target: user_id })
        } else {
            (user, RoomCommand::Leave { user: user_id })
        };
        plan.push(Planned { at: leave, actor, command });
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use cqrs_es::Aggregate;
    use cqrs_es::event_sink::EventSink;
    use rapat_domain::room::Room;
    use rapat_domain::services::DomainServices;

    use super::*;
    use crate::password::Argon2idHasher;

    fn config(seed: u64) -> HistoryConfig {
        let start = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z").expect("a time").with_timezone(&Utc);
        HistoryConfig { seed, rooms: 5, days: 7, start }
    }

    /// Commands hold no `PartialEq`; their debug form says everything they carry.
    fn described(config: &HistoryConfig) -> Vec<String> {
        plan_history(config).map(|planned| format!("{planned:?}")).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let first = described(&config(7));
        assert!(first.len() > 100, "{} commands", first.len());
        assert_eq!(first, described(&config(7)));
        assert_ne!(first, described(&config(8)));
    }

    #[test]
    fn commands_are_in_time_order_inside_the_history_from_creation_to_end() {
        let config = config(3);
        let end = config.start + TimeDelta::days(i64::from(config.days));
        let plan: Vec<PlannedCommand> = plan_history(&config).collect();
        assert!(plan.windows(2).all(|pair| pair[0].at() <= pair[1].at()));
        let mut rooms: HashMap<RoomId, Vec<&RoomCommand>> = HashMap::new();
        for planned in &plan {
            assert!(planned.at() >= config.start && planned.at() < end, "{planned:?}");
            rooms.entry(planned.room).or_default().push(&planned.command);
        }
        assert_eq!(rooms.len(), 5);
        for commands in rooms.values() {
            assert!(matches!(commands.first(), Some(RoomCommand::Create { .. })));
            assert!(matches!(commands.last(), Some(RoomCommand::End { .. })), "every room ends inside the history");
            let ends = commands.iter().filter(|command| matches!(command, RoomCommand::End { .. })).count();
            assert_eq!(ends, 1);
        }
    }

    /// The plan keeps the room's rules: run on the aggregate itself, every command
    /// is accepted and changes something.
    #[tokio::test]
    async fn every_planned_command_is_accepted_by_the_room_and_changes_it() {
        let services = DomainServices::new(Arc::new(Argon2idHasher::new()));
        let mut rooms: HashMap<RoomId, Room> = HashMap::new();
        let (mut commands, mut unmutes_allowed) = (0, 0);
        for planned in plan_history(&config(11)) {
            unmutes_allowed += usize::from(matches!(planned.command, RoomCommand::AllowUnmute { .. }));
            let room = rooms.entry(planned.room).or_default();
            let sink = EventSink::default();
            let description = format!("{:?}", planned.command);
            room.handle(planned.command, &services, &sink)
                .await
                .unwrap_or_else(|error| panic!("{description}: {error}"));
            assert!(!sink.collect().await.is_empty(), "{description} changed nothing");
            commands += 1;
        }
        assert!(commands > 100);
        assert!(unmutes_allowed > 0, "the host's mutes and their lifting are part of the plan");
        assert!(rooms.values().all(Room::is_ended));
    }
}
