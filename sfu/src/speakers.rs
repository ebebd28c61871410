//! Active speakers, from the RFC 6464 audio level each publisher's packets carry
//! (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`: 0 to 127 -dBov, and a
//! voice-activity flag). Pure and clock-free: time is passed in.
//!
//! Two halves. A worker's [`LevelMeter`] counts, per audio source, the packets
//! of the last [`REPORT_EVERY`] and how many of them were speech (loud enough,
//! and flagged as voice by a sender that flags at all), and hands that summary
//! out; reading one header byte per packet is all it costs on the media path.
//! The room core's [`Speakers`] keeps each user's summaries of the last
//! [`WINDOW`] and, every [`EMIT_EVERY`] while a room has audio, ranks the users
//! who speak: someone starts speaking when at least [`START_ACTIVITY`] of their
//! packets in the window are speech and stops below [`STOP_ACTIVITY`], so a
//! pause between words does not drop them; their level is the mean loudness of
//! their speech packets; the loudest [`MAX_SPEAKERS`] are listed, and one
//! overtakes another (or takes a full list's last place) only when louder by
//! [`OVERTAKE_MARGIN`], so two similar voices do not flap. A room's list goes
//! out only when it changed: other users or order, or a level moved by
//! [`LEVEL_STEP`] since it was last sent.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::source::SourceId;

/// The header extension the SFU negotiates for audio.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// How often a worker reports the levels it counted.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);
/// How much of a user's recent audio decides whether they speak.
pub const WINDOW: Duration = Duration::from_millis(1000);
/// A room's list goes out at most this often.
pub const EMIT_EVERY: Duration = Duration::from_millis(300);
/// A packet at this -dBov or louder is speech (normal speech is about -20 to
/// -35 dBov; a quiet room's noise -50 and below).
pub const SPEECH_DBOV: u8 = 40;
/// The share of a window's packets that must be speech to start speaking...
pub const START_ACTIVITY: f64 = 0.4;
/// ...and below which a speaker stops.
pub const STOP_ACTIVITY: f64 = 0.2;
/// Fewer packets than this in the window (a sender gone quiet, or discontinuous
/// transmission) is silence.
pub const MIN_PACKETS: u32 = 5;
pub const MAX_SPEAKERS: usize = 3;
/// How much louder (on the 0..1 level) a speaker must be to pass another.
pub const OVERTAKE_MARGIN: f64 = 0.03;
/// A level change this large is news even when the speakers are the same.
pub const LEVEL_STEP: f64 = 0.05;
/// Levels have two decimals; this keeps `0.85 - 0.80` at the step.
const EPSILON: f64 = 1e-9;

/// Offers and accepts the audio-level extension on audio m-lines: without it in
/// the SDP a browser does not send it.
pub fn register(media_engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    let extension = RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_string() };
    media_engine.register_header_extension(extension, RtpCodecKind::Audio, None)
}

/// The id an audio track negotiated for the extension, among its `(id, uri)`s.
pub fn extension_id(kind: RtpCodecKind, extensions: &[(u8, String)]) -> Option<u8> {
    if kind != RtpCodecKind::Audio {
        return None;
    }
    extensions.iter().find(|(_, uri)| uri == AUDIO_LEVEL_URI).map(|(id, _)| *id)
}

/// One packet's audio level, as RFC 6464 carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioLevel {
    /// 0 (loudest) to 127 (silence) -dBov.
    pub dbov: u8,
    pub voice: bool,
}

impl AudioLevel {
    /// The one-byte payload of the extension: `V` then seven bits of level.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let byte = *payload.first()?;
        Some(Self { dbov: byte & 0x7f, voice: byte & 0x80 != 0 })
    }
}

/// What a worker counted of one source's packets over one report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelSummary {
    pub packets: u32,
    /// Packets that were speech.
    pub speech: u32,
    /// The sum of the speech packets' -dBov.
    pub speech_dbov: u32,
}

impl LevelSummary {
    fn add(&mut self, other: &LevelSummary) {
        self.packets += other.packets;
        self.speech += other.speech;
        self.speech_dbov += other.speech_dbov;
    }
}

#[derive(Default)]
struct SourceMeter {
    /// Once a sender has flagged voice, its unflagged packets are not speech; a
    /// sender that never flags is judged on loudness alone.
    flags_voice: bool,
    summary: LevelSummary,
}

/// A worker's count of its publishers' audio levels (see the module docs).
#[derive(Default)]
pub struct LevelMeter {
    sources: HashMap<SourceId, SourceMeter>,
    /// When the report being counted started; `None` while nothing was counted.
    started: Option<Instant>,
}

impl LevelMeter {
    pub fn record(&mut self, source: SourceId, level: AudioLevel, now: Instant) {
        let meter = self.sources.entry(source).or_default();
        meter.flags_voice |= level.voice;
        let summary = &mut meter.summary;
        summary.packets += 1;
        if level.dbov <= SPEECH_DBOV && (level.voice || !meter.flags_voice) {
            summary.speech += 1;
            summary.speech_dbov += u32::from(level.dbov);
        }
        self.started.get_or_insert(now);
    }

    /// When the current report is due, if anything was counted.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|started| started + REPORT_EVERY)
    }

    /// The report, once due: every source counted since the last one.
    pub fn take_due(&mut self, now: Instant) -> Option<Vec<(SourceId, LevelSummary)>> {
        if self.deadline()? > now {
            return None;
        }
        self.started = None;
        let mut report: Vec<(SourceId, LevelSummary)> = self
            .sources
            .iter_mut()
            .filter(|(_, meter)| meter.summary.packets > 0)
            .map(|(source, meter)| (*source, std::mem::take(&mut meter.summary)))
            .collect();
        report.sort_unstable_by_key(|(source, _)| *source);
        Some(report)
    }

    /// Forgets the sources `gone` says are gone (their peer closed).
    pub fn forget(&mut self, gone: impl Fn(SourceId) -> bool) {
        self.sources.retain(|source, _| !gone(*source));
    }
}

/// One listed speaker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Speaker {
    pub user: Uuid,
    /// 0 (silence) to 1 (full scale): `1 - dBov / 127` of their speech, two decimals.
    pub level: f64,
}

/// The `active_speakers` payload: `{"speakers": [{"userId", "level"}]}`, loudest first.
pub fn payload(speakers: &[Speaker]) -> Value {
    let speakers: Vec<Value> =
        speakers.iter().map(|speaker| json!({ "userId": speaker.user, "level": speaker.level })).collect();
    json!({ "speakers": speakers })
}

#[derive(Default)]
struct UserAudio {
    /// Reports of the last [`WINDOW`], by the time they were counted up to.
    reports: VecDeque<(Instant, LevelSummary)>,
    speaking: bool,
}

#[derive(Default)]
struct RoomSpeakers {
    users: HashMap<Uuid, UserAudio>,
    sent: Vec<Speaker>,
    sent_at: Option<Instant>,
    /// The next evaluation; `None` while the room has no audio and nobody listed.
    next: Option<Instant>,
}

/// Every room's speakers, on the room core (see the module docs).
#[derive(Default)]
pub struct Speakers {
    rooms: HashMap<Uuid, RoomSpeakers>,
}

impl Speakers {
    /// A worker's report about one of `user`'s audio sources in `room`.
    pub fn observe(&mut self, room: Uuid, user: Uuid, at: Instant, summary: LevelSummary) {
        let state = self.rooms.entry(room).or_default();
        state.users.entry(user).or_default().reports.push_back((at, summary));
        if state.next.is_none() {
            state.next = Some(state.sent_at.map_or(at, |sent| at.max(sent + EMIT_EVERY)));
        }
    }

    /// The user left or was muted: not a speaker from the next evaluation on.
    pub fn forget_user(&mut self, room: Uuid, user: Uuid) {
        if let Some(state) = self.rooms.get_mut(&room)
            && let Some(audio) = state.users.get_mut(&user)
        {
            audio.reports.clear();
            audio.speaking = false;
        }
    }

    /// The room has no peers on this node any more.
    pub fn forget_room(&mut self, room: Uuid) {
        self.rooms.remove(&room);
    }

    /// The room's last sent list, for a peer that arrives.
    pub fn current(&self, room: Uuid) -> &[Speaker] {
        self.rooms.get(&room).map(|state| state.sent.as_slice()).unwrap_or_default()
    }

    /// The earliest evaluation due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rooms.values().filter_map(|state| state.next).min()
    }

    /// Evaluates every room due at `now`; the rooms whose list changed, with it.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(Uuid, Vec<Speaker>)> {
        let mut changed = Vec::new();
        for (room, state) in &mut self.rooms {
            if state.next.is_none_or(|next| next > now) {
                continue;
            }
            let candidates = state.evaluate(now);
            let speakers = rank(&state.sent, &candidates);
            state.next = (!state.users.is_empty() || !speakers.is_empty()).then_some(now + EMIT_EVERY);
            if differs(&state.sent, &speakers) {
                state.sent = speakers.clone();
                state.sent_at = Some(now);
                changed.push((*room, speakers));
            }
        }
        changed.sort_unstable_by_key(|(room, _)| *room);
        // A quiet room is kept only while its last list still holds back the next.
        self.rooms.retain(|_, state| state.next.is_some() || state.sent_at.is_some_and(|at| at + EMIT_EVERY > now));
        changed
    }
}

impl RoomSpeakers {
    /// Each speaking user's level at `now`; updates who speaks.
    fn evaluate(&mut self, now: Instant) -> Vec<(Uuid, f64)> {
        let mut candidates = Vec::new();
        for (user, audio) in &mut self.users {
            while audio.reports.front().is_some_and(|(at, _)| *at + WINDOW <= now) {
                audio.reports.pop_front();
            }
            let mut total = LevelSummary::default();
            for (_, summary) in &audio.reports {
                total.add(summary);
            }
            let activity =
                if total.packets < MIN_PACKETS { 0.0 } else { f64::from(total.speech) / f64::from(total.packets) };
            let threshold = if audio.speaking { STOP_ACTIVITY } else { START_ACTIVITY };
            audio.speaking = total.speech > 0 && activity >= threshold;
            if audio.speaking {
                let dbov = f64::from(total.speech_dbov) / f64::from(total.speech);
                candidates.push((*user, ((1.0 - dbov / 127.0) * 100.0).round() / 100.0));
            }
        }
        self.users.retain(|_, audio| !audio.reports.is_empty());
        candidates
    }
}

/// The speakers to list: those listed before keep their order unless passed by
/// more than the margin; newcomers enter loudest first, behind them, and move up
/// the same way; then the first [`MAX_SPEAKERS`].
pub(crate) fn rank(previous: &[Speaker], candidates: &[(Uuid, f64)]) -> Vec<Speaker> {
    let level_of = |user: Uuid| candidates.iter().find(|(candidate, _)| *candidate == user).map(|(_, level)| *level);
    let mut order: Vec<Speaker> = previous
        .iter()
        .filter_map(|speaker| Some(Speaker { user: speaker.user, level: level_of(speaker.user)? }))
        .collect();
    let mut newcomers: Vec<Speaker> = candidates
        .iter()
        .filter(|(user, _)| !previous.iter().any(|speaker| speaker.user == *user))
        .map(|(user, level)| Speaker { user: *user, level: *level })
        .collect();
    newcomers.sort_by(|a, b| b.level.total_cmp(&a.level).then(a.user.cmp(&b.user)));
    order.extend(newcomers);
    // A bubble sort that swaps only past the margin; lists are a handful long.
    let mut swapped = true;
    while swapped {
        swapped = false;
        for i in 1..order.len() {
            if order[i].level > order[i - 1].level + OVERTAKE_MARGIN + EPSILON {
                order.swap(i, i - 1);
                swapped = true;
            }
        }
    }
    order.truncate(MAX_SPEAKERS);
    order
}

/// Whether `next` is news after `sent`.
pub(crate) fn differs(sent: &[Speaker], next: &[Speaker]) -> bool {
    sent.len() != next.len()
        || sent.iter().zip(next).any(|(a, b)| a.user != b.user || (a.level - b.level).abs() + EPSILON >= LEVEL_STEP)
}

#[cfg(test)]
#[path = "speakers_tests.rs"]
mod tests;
