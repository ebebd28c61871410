//! What admission needs to know of each room, folded from the room's own
//! events: its capacity, who is in it (and whether muted), whether it ended. Pure:
//! `admission.rs` feeds it the followed stream and asks it, so the SFU never
//! loads the room aggregate (as LiveKit's media plane imports no room code). The
//! fold keeps the aggregate's rules for these few fields: a join adds an unmuted
//! participant, a leave or removal takes them out, a host mute or the
//! participant's own change sets their audio, an end empties the room for good.

use std::collections::{HashMap, HashSet};

use rapat_domain::room::RoomEvent;
use uuid::Uuid;

use crate::inputs::{Admitted, Refused};

struct RoomRoster {
    max_users: u32,
    /// Participants, and whether their audio is muted.
    members: HashMap<Uuid, bool>,
}

#[derive(Default)]
pub struct Roster {
    rooms: HashMap<Uuid, RoomRoster>,
    /// Ended rooms keep only this: an ended room never opens again.
    ended: HashSet<Uuid>,
}

impl Roster {
    pub fn apply(&mut self, room: Uuid, event: &RoomEvent) {
        if self.ended.contains(&room) {
            return;
        }
        if let RoomEvent::RoomCreated { max_users, .. } = event {
            self.rooms.insert(room, RoomRoster { max_users: max_users.get(), members: HashMap::new() });
            return;
        }
        if matches!(event, RoomEvent::RoomEnded {}) {
            self.rooms.remove(&room);
            self.ended.insert(room);
            return;
        }
        // Events of a room created before the stream's oldest message are ignored:
        // with no capacity known, nobody is admitted to it.
        let Some(roster) = self.rooms.get_mut(&room) else { return };
        match event {
            RoomEvent::RoomSettingsUpdated { max_users: Some(max_users), .. } => roster.max_users = max_users.get(),
            RoomEvent::ParticipantJoined { user_id } => {
                roster.members.insert(user_id.as_uuid(), false);
            }
            RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
                roster.members.remove(&user_id.as_uuid());
            }
            RoomEvent::ParticipantMutedByHost { user_id, .. } => set_muted(roster, user_id.as_uuid(), true),
            RoomEvent::ParticipantAudioChanged { user_id, muted } => set_muted(roster, user_id.as_uuid(), *muted),
            _ => {}
        }
    }

    /// Whether `user` may open media in `room`, as far as the events applied say
    /// (`as_of` is the caller's to fill in).
    pub fn decide(&self, room: Uuid, user: Uuid) -> Result<Admitted, Refused> {
        if self.ended.contains(&room) {
            return Err(Refused::RoomEnded);
        }
        let roster = self.rooms.get(&room).ok_or(Refused::NotParticipant)?;
        let audio_muted = *roster.members.get(&user).ok_or(Refused::NotParticipant)?;
        Ok(Admitted { audio_muted, max_users: roster.max_users, as_of: 0 })
    }
}

fn set_muted(roster: &mut RoomRoster, user: Uuid, muted: bool) {
    if let Some(member) = roster.members.get_mut(&user) {
        *member = muted;
    }
}

#[cfg(test)]
mod tests {
    use rapat_domain::ids::UserId;
    use rapat_domain::room::{MaxUsers, RoomDescription, RoomName};

    use super::*;

    fn created(max_users: u16) -> RoomEvent {
        RoomEvent::RoomCreated {
            host_id: UserId::new_random(),
            name: RoomName::parse("Standup".into()).expect("name"),
            description: RoomDescription::parse(String::new()).expect("description"),
            password_hash: None,
            max_users: MaxUsers::parse(max_users.into()).expect("max users"),
            scheduled_at: None,
            duration_minutes: None,
        }
    }

    /// Folds `events` of one room and asks about `user`.
    fn check(events: &[RoomEvent], user: UserId, expected: Result<Admitted, Refused>) {
        let room = Uuid::new_v4();
        let mut roster = Roster::default();
        for event in events {
            roster.apply(room, event);
        }
        assert_eq!(roster.decide(room, user.as_uuid()), expected, "{events:?}");
    }

    #[test]
    fn admission_follows_the_rooms_events() {
        let (user, host) = (UserId::new_random(), UserId::new_random());
        let joined = RoomEvent::ParticipantJoined { user_id: user };
        let admitted = |audio_muted, max_users| Ok(Admitted { audio_muted, max_users, as_of: 0 });
        check(&[], user, Err(Refused::NotParticipant));
        check(&[created(5)], user, Err(Refused::NotParticipant));
        check(std::slice::from_ref(&joined), user, Err(Refused::NotParticipant));
        check(&[created(5), joined.clone()], user, admitted(false, 5));
        check(&[created(5), RoomEvent::ParticipantJoined { user_id: host }], user, Err(Refused::NotParticipant));
        check(
            &[created(5), joined.clone(), RoomEvent::ParticipantLeft { user_id: user }],
            user,
            Err(Refused::NotParticipant),
        );
        check(
            &[created(5), joined.clone(), RoomEvent::ParticipantRemoved { user_id: user, removed_by: host }],
            user,
            Err(Refused::NotParticipant),
        );
        check(
            &[created(5), joined.clone(), RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: host }],
            user,
            admitted(true, 5),
        );
        let unmuted = RoomEvent::ParticipantAudioChanged { user_id: user, muted: false };
        check(
            &[created(5), joined.clone(), RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: host }, unmuted],
            user,
            admitted(false, 5),
        );
        // A mute is the participant's state in the room: joining again starts unmuted, as the aggregate does.
        let rejoined = [
            created(5),
            joined.clone(),
            RoomEvent::ParticipantAudioChanged { user_id: user, muted: true },
            RoomEvent::ParticipantLeft { user_id: user },
            joined.clone(),
        ];
        check(&rejoined, user, admitted(false, 5));
        let resized = RoomEvent::RoomSettingsUpdated {
            name: None,
            description: None,
            password_hash: None,
            password_cleared: false,
            max_users: Some(MaxUsers::parse(8).expect("max users")),
        };
        check(&[created(5), resized, joined.clone()], user, admitted(false, 8));
        check(&[created(5), joined.clone(), RoomEvent::RoomEnded {}], user, Err(Refused::RoomEnded));
        check(&[created(5), RoomEvent::RoomEnded {}, joined], user, Err(Refused::RoomEnded));
    }
}
