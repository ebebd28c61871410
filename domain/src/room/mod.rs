//! The room aggregate: who hosts it, who is in it with which media state, and
//! whether it is still running.

mod command;
mod error;
mod event;
mod recording;
mod types;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::RoomCommand;
pub use error::{RoomError, RoomInputError};
pub use event::RoomEvent;
pub use recording::{RecordingCodec, RecordingStopReason, TrackKind, TrackRecording};
pub use types::{DurationMinutes, MaxUsers, MeetingStart, ParticipantState, PasswordChange, RoomDescription, RoomName};

use crate::credentials::{Password, PasswordHash};
use crate::ids::{TrackRecordingId, UserId};
use crate::services::DomainServices;
use crate::text::Timestamp;

/// A room as its events made it. `Default` is the room before `RoomCreated`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// Set by `RoomCreated`; a room without a host does not exist yet.
    host: Option<UserId>,
    name: Option<RoomName>,
    description: RoomDescription,
    password_hash: Option<PasswordHash>,
    max_users: MaxUsers,
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    duration_minutes: Option<DurationMinutes>,
    /// 0 at creation, one more per reschedule.
    #[serde(default)]
    schedule_sequence: u32,
    /// Someone has joined at least once: the meeting began, and its schedule is
    /// history. (Snapshots from before this existed read `false`; see
    /// [`Room::has_started`].)
    #[serde(default)]
    started: bool,
    /// Who has had the reminder of the current schedule.
    #[serde(default)]
    reminded: BTreeSet<UserId>,
    ended: bool,
    /// A `BTreeMap` so that snapshots serialise the same way every time.
    participants: BTreeMap<UserId, ParticipantState>,
    /// Users the host muted and has not yet allowed to unmute: they cannot unmute
    /// themselves. Kept when they leave, so leaving and joining again does not
    /// lift it. Missing in snapshots from before it existed.
    #[serde(default)]
    muted_by_host: BTreeSet<UserId>,
    /// Recording is on (SPEC §10).
    #[serde(default)]
    recording: bool,
    /// Every track recording finished in this room, `true` once it expired.
    #[serde(default)]
    track_recordings: BTreeMap<TrackRecordingId, bool>,
}

impl Room {
    pub fn is_created(&self) -> bool {
        self.host.is_some()
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn host(&self) -> Option<UserId> {
        self.host
    }

    pub fn name(&self) -> Option<&RoomName> {
        self.name.as_ref()
    }

    pub fn description(&self) -> &RoomDescription {
        &self.description
    }

    pub fn max_users(&self) -> MaxUsers {
        self.max_users
    }

    pub fn scheduled_at(&self) -> Option<DateTime<Utc>> {
        self.scheduled_at
    }

    pub fn duration_minutes(&self) -> Option<DurationMinutes> {
        self.duration_minutes
    }

    pub fn schedule_sequence(&self) -> u32 {
        self.schedule_sequence
    }

    pub fn has_started(&self) -> bool {
        self.started || !self.participants.is_empty()
    }

    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn is_participant(&self, user: UserId) -> bool {
        self.participants.contains_key(&user)
    }

    pub fn participant(&self, user: UserId) -> Option<&ParticipantState> {
        self.participants.get(&user)
    }

    pub fn participants(&self) -> impl Iterator<Item = (UserId, &ParticipantState)> {
        self.participants.iter().map(|(user, state)| (*user, state))
    }

    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// True while the host's mute of `user` holds (they cannot unmute themselves).
    pub fn is_muted_by_host(&self, user: UserId) -> bool {
        self.muted_by_host.contains(&user)
    }

    /// Decides what a command does to this room, without changing it.
    async fn decide(&self, command: RoomCommand, services: &DomainServices) -> Result<Vec<RoomEvent>, RoomError> {
        if let RoomCommand::Create { host, name, description, password, max_users, scheduled_at, duration_minutes } =
            command
        {
            if self.is_created() {
                return Err(RoomError::AlreadyExists);
            }
            let password_hash = match password {
                Some(password) => Some(services.passwords.hash(&password).await?),
                None => None,
            };
            return Ok(vec![RoomEvent::RoomCreated {
                host_id: host,
                name,
                description,
                password_hash,
                max_users,
                scheduled_at: scheduled_at.map(Timestamp::get),
                duration_minutes,
            }]);
        }
        // Every other command needs a room, and all but these two a running one.
        let host = self.host.ok_or(RoomError::NotFound)?;
        match command {
            RoomCommand::FinishTrackRecording { recording } => return Ok(self.finish_track_recording(recording)),
            RoomCommand::ExpireTrackRecording { track_recording_id } => {
                return Ok(self.expire_track_recording(track_recording_id));
            }
            _ => {}
        }
        // This check comes before any other so a client learns first that the room is gone.
        if self.ended {
            return Err(RoomError::Ended);
        }
        let require_host = |actor: UserId| if actor == host { Ok(()) } else { Err(RoomError::NotHost) };

        match command {
            // Answered above; listed so that the match needs no wildcard arm.
            RoomCommand::Create { .. } => Err(RoomError::AlreadyExists),
            RoomCommand::UpdateSettings { actor, name, description, password, max_users } => {
                require_host(actor)?;
                self.update_settings(name, description, password, max_users, services).await
            }
            RoomCommand::Join { user, password, invited } => self.join(user, password, invited, host, services).await,
            RoomCommand::Leave { user } => {
                if !self.participants.contains_key(&user) {
                    return Ok(vec![]);
                }
                let left = RoomEvent::ParticipantLeft { user_id: user };
                if user == host && self.recording {
                    let reason = RecordingStopReason::HostLeft;
                    return Ok(vec![left, RoomEvent::RecordingStopped { stopped_by: Some(user), reason }]);
                }
                Ok(vec![left])
            }
            RoomCommand::MuteParticipant { actor, target } => {
                require_host(actor)?;
                if !self.participants.contains_key(&target) {
                    return Err(RoomError::NotAParticipant);
                }
                // Also when they muted themselves: the host's mute is what keeps
                // them from unmuting.
                let event = RoomEvent::ParticipantMutedByHost { user_id: target, muted_by: actor };
                Ok(unless(self.muted_by_host.contains(&target), event))
            }
            RoomCommand::AllowUnmute { actor, target } => {
                require_host(actor)?;
                if !self.participants.contains_key(&target) {
                    return Err(RoomError::NotAParticipant);
                }
                let event = RoomEvent::ParticipantUnmuteAllowed { user_id: target, allowed_by: actor };
                Ok(unless(!self.muted_by_host.contains(&target), event))
            }
            RoomCommand::RemoveParticipant { actor, target } => {
                require_host(actor)?;
                if target == host {
                    return Err(RoomError::CannotRemoveHost);
                }
                if !self.participants.contains_key(&target) {
                    return Err(RoomError::NotAParticipant);
                }
                Ok(vec![RoomEvent::ParticipantRemoved { user_id: target, removed_by: actor }])
            }
            RoomCommand::SetAudio { user, muted } => {
                let state = self.participants.get(&user).ok_or(RoomError::NotAParticipant)?;
                if !muted && self.muted_by_host.contains(&user) {
                    return Err(RoomError::MutedByHost);
                }
                Ok(unless(state.audio_muted == muted, RoomEvent::ParticipantAudioChanged { user_id: user, muted }))
            }
            RoomCommand::SetVideo { user, on } => {
                let state = self.participants.get(&user).ok_or(RoomError::NotAParticipant)?;
                Ok(unless(state.video_on == on, RoomEvent::ParticipantVideoChanged { user_id: user, on }))
            }
            RoomCommand::SetScreenShare { user, sharing } => {
                let state = self.participants.get(&user).ok_or(RoomError::NotAParticipant)?;
                let event = RoomEvent::ParticipantScreenShareChanged { user_id: user, sharing };
                Ok(unless(state.screen_sharing == sharing, event))
            }
            RoomCommand::End { actor } => {
                require_host(actor)?;
                let mut events = Vec::new();
                if self.recording {
                    events
                        .push(RoomEvent::RecordingStopped { stopped_by: None, reason: RecordingStopReason::RoomEnded });
                }
                if !self.has_started() {
                    events.push(RoomEvent::RoomCancelled { cancelled_by: actor });
                }
                events.push(RoomEvent::RoomEnded {});
                Ok(events)
            }
            RoomCommand::Reschedule { actor, scheduled_at, duration_minutes } => {
                require_host(actor)?;
                self.reschedule(actor, scheduled_at, duration_minutes)
            }
            RoomCommand::FireReminder { recipient, schedule_sequence, due_at, late } => {
                if self.scheduled_at.is_none() {
                    return Err(RoomError::NotScheduled);
                }
                if schedule_sequence != self.schedule_sequence {
                    return Err(RoomError::StaleSchedule);
                }
                let event = RoomEvent::MeetingReminderDue { recipient_id: recipient, schedule_sequence, due_at, late };
                Ok(unless(self.reminded.contains(&recipient), event))
            }
            RoomCommand::StartRecording { actor } => {
                require_host(actor)?;
                if self.recording {
                    return Err(RoomError::AlreadyRecording);
                }
                Ok(vec![RoomEvent::RecordingStarted { started_by: actor }])
            }
            RoomCommand::StopRecording { actor } => {
                require_host(actor)?;
                if !self.recording {
                    return Err(RoomError::NotRecording);
                }
                Ok(vec![RoomEvent::RecordingStopped { stopped_by: Some(actor), reason: RecordingStopReason::Host }])
            }
            // Answered above, before the room's end is checked.
            RoomCommand::FinishTrackRecording { recording } => Ok(self.finish_track_recording(recording)),
            RoomCommand::ExpireTrackRecording { track_recording_id } => {
                Ok(self.expire_track_recording(track_recording_id))
            }
        }
    }

    /// Once per file: the SFU may say it again after a restart.
    fn finish_track_recording(&self, recording: TrackRecording) -> Vec<RoomEvent> {
        unless(self.track_recordings.contains_key(&recording.id), RoomEvent::TrackRecordingFinished { recording })
    }

    fn expire_track_recording(&self, id: TrackRecordingId) -> Vec<RoomEvent> {
        let expirable = self.track_recordings.get(&id) == Some(&false);
        unless(!expirable, RoomEvent::TrackRecordingExpired { track_recording_id: id })
    }

    fn reschedule(
        &self,
        actor: UserId,
        scheduled_at: Option<Timestamp>,
        duration_minutes: Option<DurationMinutes>,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        if self.has_started() {
            return Err(RoomError::AlreadyStarted);
        }
        let scheduled_at = match (scheduled_at, self.scheduled_at) {
            (Some(new), _) => new.get(),
            (None, Some(current)) => current,
            (None, None) => return Err(RoomError::NotScheduled),
        };
        let duration_minutes = duration_minutes.or(self.duration_minutes);
        if Some(scheduled_at) == self.scheduled_at && duration_minutes == self.duration_minutes {
            return Ok(vec![]);
        }
        Ok(vec![RoomEvent::RoomRescheduled {
            scheduled_at,
            duration_minutes,
            schedule_sequence: self.schedule_sequence + 1,
            rescheduled_by: actor,
        }])
    }

    async fn join(
        &self,
        user: UserId,
        password: Option<Password>,
        invited: bool,
        host: UserId,
        services: &DomainServices,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        if self.participants.contains_key(&user) {
            return Ok(vec![]);
        }
        // The host set the password, so asking them for it would only lock them out;
        // an accepted invitation is the host's leave to come in without it.
        if let Some(hash) = &self.password_hash
            && user != host
            && !invited
        {
            let matches = match password {
                Some(offered) => services.passwords.verify(&offered, hash).await?,
                None => false,
            };
            if !matches {
                return Err(RoomError::WrongPassword);
            }
        }
        if self.participants.len() >= self.max_users.get() as usize {
            return Err(RoomError::Full);
        }
        let joined = RoomEvent::ParticipantJoined { user_id: user };
        if self.muted_by_host.contains(&user) {
            // Arriving unmuted would undo the host's mute: it is recorded again.
            return Ok(vec![joined, RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: host }]);
        }
        Ok(vec![joined])
    }

    async fn update_settings(
        &self,
        name: Option<RoomName>,
        description: Option<RoomDescription>,
        password: Option<PasswordChange>,
        max_users: Option<MaxUsers>,
        services: &DomainServices,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        if let Some(max) = max_users
            && (max.get() as usize) < self.participants.len()
        {
            return Err(RoomError::MaxUsersBelowParticipants);
        }
        let name = name.filter(|new| self.name.as_ref() != Some(new));
        let description = description.filter(|new| *new != self.description);
        let max_users = max_users.filter(|new| *new != self.max_users);
        let (password_hash, password_cleared) = match (password, &self.password_hash) {
            (None, _) | (Some(PasswordChange::Clear), None) => (None, false),
            (Some(PasswordChange::Clear), Some(_)) => (None, true),
            (Some(PasswordChange::Set(new)), current) => {
                // Hashes are salted, so only `verify` can tell that the password is
                // the one already set, which would otherwise record a change of nothing.
                let unchanged = match current {
                    Some(hash) => services.passwords.verify(&new, hash).await?,
                    None => false,
                };
                if unchanged { (None, false) } else { (Some(services.passwords.hash(&new).await?), false) }
            }
        };
        let changed = name.is_some() || description.is_some() || max_users.is_some();
        if !changed && password_hash.is_none() && !password_cleared {
            return Ok(vec![]);
        }
        Ok(vec![RoomEvent::RoomSettingsUpdated { name, description, password_hash, password_cleared, max_users }])
    }
}

impl Room {
    fn change(&mut self, user: UserId, change: impl FnOnce(&mut ParticipantState)) {
        if let Some(state) = self.participants.get_mut(&user) {
            change(state);
        }
    }
}

/// The event, unless it would record what is already so.
fn unless(already: bool, event: RoomEvent) -> Vec<RoomEvent> {
    if already { vec![] } else { vec![event] }
}

impl Aggregate for Room {
    const TYPE: &'static str = "room";
    type Command = RoomCommand;
    type Event = RoomEvent;
    type Error = RoomError;
    type Services = DomainServices;

    async fn handle(
        &mut self,
        command: RoomCommand,
        services: &DomainServices,
        sink: &EventSink<Self>,
    ) -> Result<(), RoomError> {
        for event in self.decide(command, services).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::RoomCreated {
                host_id,
                name,
                description,
                password_hash,
                max_users,
                scheduled_at,
                duration_minutes,
            } => {
                self.duration_minutes = duration_minutes;
                self.host = Some(host_id);
                self.name = Some(name);
                self.description = description;
                self.password_hash = password_hash;
                self.max_users = max_users;
                self.scheduled_at = scheduled_at;
            }
            RoomEvent::RoomSettingsUpdated { name, description, password_hash, password_cleared, max_users } => {
                if let Some(name) = name {
                    self.name = Some(name);
                }
                if let Some(description) = description {
                    self.description = description;
                }
                if password_cleared {
                    self.password_hash = None;
                }
                if let Some(hash) = password_hash {
                    self.password_hash = Some(hash);
                }
                if let Some(max_users) = max_users {
                    self.max_users = max_users;
                }
            }
            RoomEvent::ParticipantJoined { user_id } => {
                self.started = true;
                self.participants.insert(user_id, ParticipantState::default());
            }
            RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
                self.participants.remove(&user_id);
            }
            RoomEvent::ParticipantMutedByHost { user_id, .. } => {
                self.muted_by_host.insert(user_id);
                self.change(user_id, |p| p.audio_muted = true);
            }
            RoomEvent::ParticipantUnmuteAllowed { user_id, .. } => {
                // Their microphone stays off: they unmute themselves when ready.
                self.muted_by_host.remove(&user_id);
            }
            RoomEvent::ParticipantAudioChanged { user_id, muted } => {
                // Before the host's mute held, a participant could unmute over it;
                // such a history still loads as it was lived.
                if !muted {
                    self.muted_by_host.remove(&user_id);
                }
                self.change(user_id, |p| p.audio_muted = muted);
            }
            RoomEvent::ParticipantVideoChanged { user_id, on } => self.change(user_id, |p| p.video_on = on),
            RoomEvent::ParticipantScreenShareChanged { user_id, sharing } => {
                self.change(user_id, |p| p.screen_sharing = sharing)
            }
            RoomEvent::RoomEnded {} => {
                // Ending disconnects everyone, so an ended room has no participants.
                self.ended = true;
                self.recording = false;
                self.participants.clear();
                self.muted_by_host.clear();
            }
            RoomEvent::RoomRescheduled { scheduled_at, duration_minutes, schedule_sequence, .. } => {
                self.scheduled_at = Some(scheduled_at);
                self.duration_minutes = duration_minutes;
                self.schedule_sequence = schedule_sequence;
                self.reminded.clear();
            }
            // `RoomEnded` follows in the same commit and ends it.
            RoomEvent::RoomCancelled { .. } => {}
            RoomEvent::MeetingReminderDue { recipient_id, .. } => {
                self.reminded.insert(recipient_id);
            }
            RoomEvent::RecordingStarted { .. } => self.recording = true,
            RoomEvent::RecordingStopped { .. } => self.recording = false,
            RoomEvent::TrackRecordingFinished { recording } => {
                self.track_recordings.insert(recording.id, false);
            }
            RoomEvent::TrackRecordingExpired { track_recording_id } => {
                self.track_recordings.insert(track_recording_id, true);
            }
        }
    }
}

// Given/when/then tests live beside this file to keep it readable.
#[cfg(test)]
mod tests;
