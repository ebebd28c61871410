//! The room core's part in active speakers: workers' audio-level reports go to
//! the rooms' [`Speakers`] under the publisher's user, and a room's changed list
//! goes to every live peer in it. Time comes in with the reports and through
//! [`RoomCore::handle_timeout`]; the core still reads no clock.

use std::time::Instant;

use rapat_wire::signal::SfuReplyKind;
use uuid::Uuid;

use super::{CoreOutput, RoomCore};
use crate::peer::SOURCE_BITS;
use crate::signal::{Outgoing, PeerKey};
use crate::source::SourceId;
use crate::speakers::{LevelSummary, Speaker, payload};

impl RoomCore {
    /// When [`RoomCore::handle_timeout`] is next needed (only for active speakers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.speakers.poll_timeout()
    }

    /// Sends the speaker lists that changed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (room, speakers) in self.speakers.handle_timeout(now) {
            let message = payload(&speakers);
            for (peer, _) in self.live_peers(room) {
                if let Some(entry) = self.peers.get(&peer) {
                    let to = entry.key.clone();
                    self.outputs.push_back(CoreOutput::Signal(active_speakers(to, message.clone())));
                }
            }
        }
    }

    pub(super) fn audio_levels(&mut self, at: Instant, levels: Vec<(SourceId, LevelSummary)>) {
        for (source, summary) in levels {
            let Some(entry) = self.peers.get(&(source.0 >> SOURCE_BITS)) else { continue };
            if !entry.closing {
                self.speakers.observe(entry.key.room, entry.key.user, at, summary);
            }
        }
    }

    /// The room's current list for a peer that just arrived, if anyone speaks.
    pub(super) fn tell_speakers(&mut self, to: &PeerKey) {
        let current: &[Speaker] = self.speakers.current(to.room);
        if !current.is_empty() {
            let message = active_speakers(to.clone(), payload(current));
            self.outputs.push_back(CoreOutput::Signal(message));
        }
    }

    /// The user left, was removed or muted: off the list at the next evaluation.
    pub(super) fn silence(&mut self, room: Uuid, user: Uuid) {
        self.speakers.forget_user(room, user);
    }
}

fn active_speakers(to: PeerKey, payload: serde_json::Value) -> Outgoing {
    Outgoing { to, kind: SfuReplyKind::ActiveSpeakers, payload }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rapat_wire::signal::{SfuRequest, SfuRequestKind};
    use serde_json::json;

    use super::*;
    use crate::inputs::{Admitted, CoreInput};
    use crate::signal::RoomChange;

    const ADMITTED: Admitted = Admitted { audio_muted: false, max_users: 10, as_of: 0 };

    fn admit(core: &mut RoomCore, room: Uuid) -> (u64, PeerKey) {
        let key = PeerKey { room, user: Uuid::new_v4(), connection: Uuid::new_v4() };
        core.handle_input(CoreInput::Signal(SfuRequest {
            kind: SfuRequestKind::Offer,
            room_id: key.room,
            user_id: key.user,
            username: String::new(),
            connection_id: key.connection,
            payload: json!({ "sdp": "v=0" }),
        }));
        core.handle_input(CoreInput::Checked { key: key.clone(), result: Ok(ADMITTED) });
        (core.next_peer - 1, key)
    }

    /// One 100 ms report per publisher (peer, -dBov), five packets each.
    fn report(core: &mut RoomCore, at: Instant, voices: &[(u64, u32)]) {
        let levels = voices
            .iter()
            .map(|(peer, dbov)| {
                let speech = if *dbov <= u32::from(crate::speakers::SPEECH_DBOV) { 5 } else { 0 };
                (SourceId(peer << SOURCE_BITS | 1), LevelSummary { packets: 5, speech, speech_dbov: speech * dbov })
            })
            .collect();
        core.handle_input(CoreInput::AudioLevels { at, levels });
    }

    /// The `active_speakers` messages out: (connection, user ids in order).
    fn lists(core: &mut RoomCore) -> Vec<(Uuid, Vec<String>)> {
        std::iter::from_fn(|| core.poll_output())
            .filter_map(|output| match output {
                CoreOutput::Signal(outgoing) if outgoing.kind == SfuReplyKind::ActiveSpeakers => {
                    let users = outgoing.payload["speakers"].as_array()?.iter();
                    Some((outgoing.to.connection, users.map(|s| s["userId"].as_str().unwrap_or("").into()).collect()))
                }
                _ => None,
            })
            .collect()
    }

    /// Reports every 100 ms for `ms`, running the timer as a shell would.
    fn play(core: &mut RoomCore, clock: &mut Instant, ms: u64, voices: &[(u64, u32)]) -> Vec<(Uuid, Vec<String>)> {
        let mut out = Vec::new();
        for _ in 0..ms / 100 {
            *clock += Duration::from_millis(100);
            report(core, *clock, voices);
            while let Some(due) = core.poll_timeout().filter(|due| due <= clock) {
                core.handle_timeout(due);
            }
            out.extend(lists(core));
        }
        out
    }

    #[test]
    fn every_peer_of_the_room_hears_who_speaks_louder_first_and_the_swap() {
        let mut core = RoomCore::new(2, 2);
        let room = Uuid::new_v4();
        let (loud, loud_key) = admit(&mut core, room);
        let (quiet, quiet_key) = admit(&mut core, room);
        let (_, listener) = admit(&mut core, room);
        let (elsewhere, _) = admit(&mut core, Uuid::new_v4());
        let _ = lists(&mut core);
        let mut clock = Instant::now();

        let sent = play(&mut core, &mut clock, 1000, &[(loud, 10), (quiet, 30), (elsewhere, 127)]);
        let (a, b) = (loud_key.user.to_string(), quiet_key.user.to_string());
        let last = |sent: &[(Uuid, Vec<String>)], to: Uuid| sent.iter().rev().find(|(c, _)| *c == to).cloned();
        for to in [loud_key.connection, quiet_key.connection, listener.connection] {
            assert_eq!(last(&sent, to).map(|(_, users)| users), Some(vec![a.clone(), b.clone()]));
        }
        assert_eq!(sent.len() % 3, 0, "the same lists to the room's three peers only: {sent:?}");

        let sent = play(&mut core, &mut clock, 1500, &[(loud, 30), (quiet, 10)]);
        assert_eq!(last(&sent, listener.connection).map(|(_, users)| users), Some(vec![b.clone(), a.clone()]));

        // A peer arriving now is told at once.
        let (_, late) = admit(&mut core, room);
        assert_eq!(lists(&mut core), vec![(late.connection, vec![b.clone(), a.clone()])]);

        // Muted: off the list at the next evaluation, whatever its worker still reported.
        core.handle_input(CoreInput::Room {
            change: RoomChange::AudioBlocked { room, user: quiet_key.user, blocked: true },
            sequence: 1,
        });
        let sent = play(&mut core, &mut clock, 300, &[(loud, 30)]);
        assert_eq!(last(&sent, listener.connection).map(|(_, users)| users), Some(vec![a.clone()]));
    }
}
