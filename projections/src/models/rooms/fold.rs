//! What a batch of room events does to the `rooms` and `participants` rows, worked
//! out in memory, without SQL: the rows the batch starts from go in, the rows it
//! leaves come out, and `write.rs` writes them set-based.
//!
//! Each event does exactly what its statement per event used to do, in stream
//! order: an event only ever touches its own room's row and that room's stays, so
//! folding room by room keeps the order that matters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rapat_domain::room::RoomEvent;
use uuid::Uuid;

use super::super::ApplyError;

/// One decoded event of the batch.
#[derive(Clone, Debug)]
pub(super) struct Event {
    pub(super) room: Uuid,
    pub(super) at: DateTime<Utc>,
    pub(super) event: RoomEvent,
}

/// A `rooms` row, every column.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RoomRow {
    pub(super) id: Uuid,
    pub(super) host_id: Uuid,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) has_password: bool,
    pub(super) max_users: i32,
    pub(super) scheduled_at: Option<DateTime<Utc>>,
    pub(super) status: String,
    pub(super) participant_count: i32,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) ended_at: Option<DateTime<Utc>>,
    pub(super) duration_minutes: Option<i32>,
    pub(super) schedule_sequence: i64,
    pub(super) started_at: Option<DateTime<Utc>>,
    pub(super) cancelled_at: Option<DateTime<Utc>>,
    pub(super) recording: bool,
}

/// A `participants` row: one stay. `id` is `None` for a stay the batch opens (the
/// insert draws it from the column's sequence).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Stay {
    pub(super) id: Option<i64>,
    pub(super) room_id: Uuid,
    pub(super) user_id: Uuid,
    pub(super) joined_at: DateTime<Utc>,
    pub(super) left_at: Option<DateTime<Utc>>,
    pub(super) left_reason: Option<String>,
    pub(super) audio_muted: bool,
    pub(super) video_on: bool,
    pub(super) screen_sharing: bool,
    pub(super) muted_by_host: bool,
}

impl Stay {
    /// A stay that `user` opened in `room` at `joined_at`, before its row has an id.
    pub(super) fn opened(room_id: Uuid, user_id: Uuid, joined_at: DateTime<Utc>) -> Self {
        Self {
            id: None,
            room_id,
            user_id,
            joined_at,
            left_at: None,
            left_reason: None,
            audio_muted: false,
            video_on: false,
            screen_sharing: false,
            muted_by_host: false,
        }
    }
}

/// The rows the batch starts from: the rooms of [`rooms_to_load`] and the open
/// stays of [`stays_to_load`], as the database has them.
#[derive(Clone, Debug, Default)]
pub(super) struct Loaded {
    pub(super) rooms: Vec<RoomRow>,
    pub(super) open_stays: Vec<Stay>,
}

/// What the batch leaves.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Folded {
    /// Rooms the batch creates (a plain insert, so a room created twice is refused
    /// by the database as before), in the order they were created.
    pub(super) created: Vec<RoomRow>,
    /// Loaded rooms the batch changed, as they end up.
    pub(super) updated: Vec<RoomRow>,
    /// Every join that found no open stay, in stream order, with the stay as the
    /// batch leaves it; `None` for a join that found its stay already open, which
    /// drew an id from the sequence and inserted nothing (`ON CONFLICT DO
    /// NOTHING`), so the ids the others get stay the same.
    pub(super) opened: Vec<Option<Stay>>,
    /// Loaded stays the batch changed, as they end up.
    pub(super) changed: Vec<Stay>,
    /// Indexes of the events that touch `track_recordings`, in order: their
    /// statements run one by one, as before.
    pub(super) recordings: Vec<usize>,
    /// Indexes of the events whose statement found no row to update (logged).
    pub(super) unmatched: Vec<usize>,
}

/// Whether the event changes its room's row (as opposed to its stays only, the
/// recordings table, or nothing).
fn touches_room_row(event: &RoomEvent) -> bool {
    use RoomEvent::*;
    match event {
        RoomCreated { .. }
        | RoomRescheduled { .. }
        | RoomCancelled { .. }
        | RecordingStarted { .. }
        | RecordingStopped { .. }
        | RoomSettingsUpdated { .. }
        | ParticipantJoined { .. }
        | ParticipantLeft { .. }
        | ParticipantRemoved { .. }
        | RoomEnded {} => true,
        MeetingReminderDue { .. }
        | TrackRecordingFinished { .. }
        | TrackRecordingExpired { .. }
        | ParticipantMutedByHost { .. }
        | ParticipantUnmuteAllowed { .. }
        | ParticipantAudioChanged { .. }
        | ParticipantVideoChanged { .. }
        | ParticipantScreenShareChanged { .. } => false,
    }
}

/// Rooms whose row the batch changes but does not create first: their rows must
/// be loaded. A room whose first row event is its creation is not loaded: the
/// insert finds out whether it already exists.
pub(super) fn rooms_to_load(events: &[Event]) -> Vec<Uuid> {
    let mut first_is_creation: HashMap<Uuid, bool> = HashMap::new();
    let mut rooms = Vec::new();
    for event in events.iter().filter(|event| touches_room_row(&event.event)) {
        first_is_creation.entry(event.room).or_insert_with(|| {
            let creation = matches!(event.event, RoomEvent::RoomCreated { .. });
            if !creation {
                rooms.push(event.room);
            }
            creation
        });
    }
    rooms
}

/// The open stays the batch starts from: every open stay of a room the batch ends
/// (ending closes them all), and the open stay, if any, of each (room, user) that an
/// event of another room is about. Only those: a room may hold thousands of open
/// stays, and one toggle must not load them all.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct StaysToLoad {
    pub(super) rooms: Vec<Uuid>,
    pub(super) rooms_of_pairs: Vec<Uuid>,
    pub(super) users_of_pairs: Vec<Uuid>,
}

impl StaysToLoad {
    pub(super) fn is_empty(&self) -> bool {
        self.rooms.is_empty() && self.rooms_of_pairs.is_empty()
    }

    /// Whether `stay`, if open, is one to load (what the query selects).
    #[cfg(test)]
    pub(super) fn wants(&self, stay: &Stay) -> bool {
        self.rooms.contains(&stay.room_id)
            || self.rooms_of_pairs.iter().zip(&self.users_of_pairs).any(|pair| pair == (&stay.room_id, &stay.user_id))
    }
}

pub(super) fn stays_to_load(events: &[Event]) -> StaysToLoad {
    let mut load = StaysToLoad::default();
    for event in events {
        if matches!(event.event, RoomEvent::RoomEnded {}) && !load.rooms.contains(&event.room) {
            load.rooms.push(event.room);
        }
    }
    let mut pairs = std::collections::HashSet::new();
    for event in events {
        let Some(user) = stay_user(&event.event) else { continue };
        if !load.rooms.contains(&event.room) && pairs.insert((event.room, user)) {
            load.rooms_of_pairs.push(event.room);
            load.users_of_pairs.push(user);
        }
    }
    load
}

/// The user whose stay the event opens, changes or closes.
fn stay_user(event: &RoomEvent) -> Option<Uuid> {
    use RoomEvent::*;
    match event {
        ParticipantJoined { user_id }
        | ParticipantLeft { user_id }
        | ParticipantRemoved { user_id, .. }
        | ParticipantMutedByHost { user_id, .. }
        | ParticipantUnmuteAllowed { user_id, .. }
        | ParticipantAudioChanged { user_id, .. }
        | ParticipantVideoChanged { user_id, .. }
        | ParticipantScreenShareChanged { user_id, .. } => Some(user_id.as_uuid()),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Loaded,
    Created,
}

/// The batch's working state.
struct State {
    rooms: Vec<(RoomRow, Origin, bool)>,
    room_index: HashMap<Uuid, usize>,
    /// Loaded stays first, then opened ones; the flag says "changed".
    stays: Vec<(Stay, bool)>,
    /// Open stays: room → user → index in `stays`.
    open: HashMap<Uuid, HashMap<Uuid, usize>>,
    /// Joins in order: the opened stay's index, or `None`.
    opened: Vec<Option<usize>>,
}

impl State {
    fn room(&mut self, room: Uuid) -> Option<&mut RoomRow> {
        let index = *self.room_index.get(&room)?;
        let (row, _, changed) = &mut self.rooms[index];
        *changed = true;
        Some(row)
    }

    fn open_stay(&mut self, room: Uuid, user: Uuid) -> Option<&mut Stay> {
        let index = *self.open.get(&room)?.get(&user)?;
        let (stay, changed) = &mut self.stays[index];
        *changed = true;
        Some(stay)
    }

    /// Closes the open stay, if any; says whether there was one.
    fn close(&mut self, room: Uuid, user: Uuid, reason: &str, at: DateTime<Utc>) -> bool {
        let Some(index) = self.open.get_mut(&room).and_then(|users| users.remove(&user)) else { return false };
        let (stay, changed) = &mut self.stays[index];
        stay.left_at = Some(at);
        stay.left_reason = Some(reason.to_owned());
        *changed = true;
        true
    }

    /// Moves the room's count by `step` after a stay was opened or closed; says
    /// whether the room's row exists.
    fn adjust_count(&mut self, room: Uuid, step: i32, at: DateTime<Utc>) -> Result<bool, ApplyError> {
        let Some(row) = self.room(room) else { return Ok(false) };
        row.participant_count = row
            .participant_count
            .checked_add(step)
            .ok_or_else(|| ApplyError::Poison(format!("participant count of room {room} out of range")))?;
        row.updated_at = at;
        Ok(true)
    }
}

/// The rows `events` lead to from `loaded`. Errors are what the statements per
/// event would have met: a value that does not fit its column, a room created twice.
pub(super) fn fold(loaded: Loaded, events: &[Event]) -> Result<Folded, ApplyError> {
    let mut state = State {
        rooms: Vec::new(),
        room_index: HashMap::new(),
        stays: Vec::new(),
        open: HashMap::new(),
        opened: Vec::new(),
    };
    for row in loaded.rooms {
        state.room_index.insert(row.id, state.rooms.len());
        state.rooms.push((row, Origin::Loaded, false));
    }
    for stay in loaded.open_stays {
        state.open.entry(stay.room_id).or_default().insert(stay.user_id, state.stays.len());
        state.stays.push((stay, false));
    }
    let mut recordings = Vec::new();
    let mut unmatched = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let (room, at) = (event.room, event.at);
        let found = match &event.event {
            RoomEvent::RoomCreated {
                host_id,
                name,
                description,
                password_hash,
                max_users,
                scheduled_at,
                duration_minutes,
            } => {
                if state.room_index.contains_key(&room) {
                    return Err(ApplyError::Poison(format!("room {room} created twice")));
                }
                let row = RoomRow {
                    id: room,
                    host_id: host_id.as_uuid(),
                    name: name.as_str().to_owned(),
                    description: description.as_str().to_owned(),
                    has_password: password_hash.is_some(),
                    max_users: max_users_column(max_users.get())?,
                    scheduled_at: *scheduled_at,
                    status: "active".to_owned(),
                    participant_count: 0,
                    created_at: at,
                    updated_at: at,
                    ended_at: None,
                    duration_minutes: duration_minutes.map(|minutes| i32::from(minutes.get())),
                    schedule_sequence: 0,
                    started_at: None,
                    cancelled_at: None,
                    recording: false,
                };
                state.room_index.insert(room, state.rooms.len());
                state.rooms.push((row, Origin::Created, false));
                true
            }
            RoomEvent::RoomRescheduled { scheduled_at, duration_minutes, schedule_sequence, .. } => {
                state.room(room).map(|row| {
                    row.scheduled_at = Some(*scheduled_at);
                    row.duration_minutes = duration_minutes.map(|minutes| i32::from(minutes.get()));
                    row.schedule_sequence = i64::from(*schedule_sequence);
                    row.updated_at = at;
                })
            }
            .is_some(),
            // `RoomEnded` follows in the same commit and ends the room.
            RoomEvent::RoomCancelled { .. } => state
                .room(room)
                .map(|row| {
                    row.cancelled_at = Some(at);
                    row.updated_at = at;
                })
                .is_some(),
            // A notification's business (SPEC §6), not the room's row.
            RoomEvent::MeetingReminderDue { .. } => true,
            RoomEvent::RecordingStarted { .. } => set_recording(&mut state, room, true, at),
            RoomEvent::RecordingStopped { .. } => set_recording(&mut state, room, false, at),
            // Their statements run in order, and check their own rows.
            RoomEvent::TrackRecordingFinished { .. } | RoomEvent::TrackRecordingExpired { .. } => {
                recordings.push(index);
                true
            }
            RoomEvent::RoomSettingsUpdated { name, description, password_hash, password_cleared, max_users } => {
                // A new password arrives as a hash; `passwordCleared` removes it.
                let has_password = match (password_hash.is_some(), password_cleared) {
                    (true, _) => Some(true),
                    (false, true) => Some(false),
                    (false, false) => None,
                };
                let max_users = max_users.map(|max| max_users_column(max.get())).transpose()?;
                state
                    .room(room)
                    .map(|row| {
                        if let Some(name) = name {
                            row.name = name.as_str().to_owned();
                        }
                        if let Some(description) = description {
                            row.description = description.as_str().to_owned();
                        }
                        if let Some(has_password) = has_password {
                            row.has_password = has_password;
                        }
                        if let Some(max_users) = max_users {
                            row.max_users = max_users;
                        }
                        row.updated_at = at;
                    })
                    .is_some()
            }
            RoomEvent::ParticipantJoined { user_id } => {
                // The aggregate never lets someone join twice; a join that finds the
                // stay open changes nothing (and the count stays right).
                let user = user_id.as_uuid();
                let already_open = state.open.get(&room).is_some_and(|users| users.contains_key(&user));
                if already_open {
                    state.opened.push(None);
                } else {
                    let stay = Stay::opened(room, user, at);
                    state.open.entry(room).or_default().insert(user, state.stays.len());
                    state.opened.push(Some(state.stays.len()));
                    state.stays.push((stay, true));
                }
                // The first join starts the meeting, whether or not it opened a stay.
                if let Some(row) = state.room(room) {
                    row.started_at.get_or_insert(at);
                }
                !already_open && state.adjust_count(room, 1, at)?
            }
            RoomEvent::ParticipantLeft { user_id } => close_stay(&mut state, room, user_id.as_uuid(), "left", at)?,
            RoomEvent::ParticipantRemoved { user_id, .. } => {
                close_stay(&mut state, room, user_id.as_uuid(), "removed", at)?
            }
            RoomEvent::ParticipantMutedByHost { user_id, .. } => state
                .open_stay(room, user_id.as_uuid())
                .map(|stay| {
                    stay.audio_muted = true;
                    stay.muted_by_host = true;
                })
                .is_some(),
            // The microphone stays as it is: they unmute themselves.
            RoomEvent::ParticipantUnmuteAllowed { user_id, .. } => {
                state.open_stay(room, user_id.as_uuid()).map(|stay| stay.muted_by_host = false).is_some()
            }
            // Unmuting ends the host's mute (the room refuses it while the host's
            // mute holds, but histories from before it held have it); muting
            // themselves keeps whatever the host did.
            RoomEvent::ParticipantAudioChanged { user_id, muted } => state
                .open_stay(room, user_id.as_uuid())
                .map(|stay| {
                    stay.audio_muted = *muted;
                    stay.muted_by_host = stay.muted_by_host && *muted;
                })
                .is_some(),
            RoomEvent::ParticipantVideoChanged { user_id, on } => {
                state.open_stay(room, user_id.as_uuid()).map(|stay| stay.video_on = *on).is_some()
            }
            RoomEvent::ParticipantScreenShareChanged { user_id, sharing } => {
                state.open_stay(room, user_id.as_uuid()).map(|stay| stay.screen_sharing = *sharing).is_some()
            }
            RoomEvent::RoomEnded {} => {
                // Ending disconnects everyone still in the room.
                let users: Vec<Uuid> =
                    state.open.get(&room).map(|users| users.keys().copied().collect()).unwrap_or_default();
                for user in users {
                    state.close(room, user, "room_ended", at);
                }
                state
                    .room(room)
                    .map(|row| {
                        row.status = "ended".to_owned();
                        row.ended_at = Some(at);
                        row.participant_count = 0;
                        row.updated_at = at;
                    })
                    .is_some()
            }
        };
        if !found {
            unmatched.push(index);
        }
    }
    Ok(finish(state, recordings, unmatched))
}

fn set_recording(state: &mut State, room: Uuid, recording: bool, at: DateTime<Utc>) -> bool {
    state
        .room(room)
        .map(|row| {
            row.recording = recording;
            row.updated_at = at;
        })
        .is_some()
}

/// Closes the open stay and moves the count; found when both a stay and the room's
/// row were there (the count's update was the statement that was checked).
fn close_stay(state: &mut State, room: Uuid, user: Uuid, reason: &str, at: DateTime<Utc>) -> Result<bool, ApplyError> {
    if !state.close(room, user, reason, at) {
        return Ok(false);
    }
    state.adjust_count(room, -1, at)
}

fn finish(state: State, recordings: Vec<usize>, unmatched: Vec<usize>) -> Folded {
    let mut folded = Folded { recordings, unmatched, ..Folded::default() };
    for (row, origin, changed) in state.rooms {
        match origin {
            Origin::Created => folded.created.push(row),
            Origin::Loaded if changed => folded.updated.push(row),
            Origin::Loaded => {}
        }
    }
    let opened: Vec<Option<Stay>> =
        state.opened.iter().map(|index| index.map(|index| state.stays[index].0.clone())).collect();
    folded.opened = opened;
    folded.changed =
        state.stays.into_iter().filter(|(stay, changed)| *changed && stay.id.is_some()).map(|(stay, _)| stay).collect();
    folded
}

/// `max_users` is an `INTEGER` column; the domain's limit is far below `i32::MAX`.
pub(super) fn max_users_column(max_users: u32) -> Result<i32, ApplyError> {
    i32::try_from(max_users).map_err(|_| ApplyError::Poison(format!("maxUsers {max_users} does not fit the column")))
}
