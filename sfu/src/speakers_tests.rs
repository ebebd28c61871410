//! The speaker rules on a simulated clock: reports in, lists out.

use super::*;

/// 20 ms packets: five per report.
const PACKETS: u32 = 5;

fn summary(dbov: u8) -> LevelSummary {
    let speech = if dbov <= SPEECH_DBOV { PACKETS } else { 0 };
    LevelSummary { packets: PACKETS, speech, speech_dbov: speech * u32::from(dbov) }
}

/// One room on a simulated clock, reported to every 100 ms.
struct Sim {
    speakers: Speakers,
    room: Uuid,
    start: Instant,
    now_ms: u64,
    /// Every list sent, with the time (ms) it went out.
    sent: Vec<(u64, Vec<Speaker>)>,
}

impl Sim {
    fn new() -> Self {
        Self { speakers: Speakers::default(), room: Uuid::new_v4(), start: Instant::now(), now_ms: 0, sent: Vec::new() }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// `voices` (user, -dBov) for `ms` more milliseconds; runs every evaluation due meanwhile.
    fn play(&mut self, ms: u64, voices: &[(Uuid, u8)]) {
        let until = self.now_ms + ms;
        while self.now_ms < until {
            self.now_ms += REPORT_EVERY.as_millis() as u64;
            for (user, dbov) in voices {
                self.speakers.observe(self.room, *user, self.at(self.now_ms), summary(*dbov));
            }
            self.run_until(self.now_ms);
        }
    }

    fn run_until(&mut self, ms: u64) {
        while let Some(next) = self.speakers.poll_timeout().filter(|next| *next <= self.at(ms)) {
            for (room, list) in self.speakers.handle_timeout(next) {
                assert_eq!(room, self.room);
                self.sent.push(((next - self.start).as_millis() as u64, list));
            }
        }
    }

    fn last(&self) -> Vec<Uuid> {
        self.sent.last().map(|(_, list)| list.iter().map(|speaker| speaker.user).collect()).unwrap_or_default()
    }
}

fn users<const N: usize>() -> [Uuid; N] {
    std::array::from_fn(|_| Uuid::new_v4())
}

#[test]
fn the_audio_level_byte_is_a_voice_flag_and_seven_bits_of_level() {
    assert_eq!(AudioLevel::parse(&[0x80 | 33]), Some(AudioLevel { dbov: 33, voice: true }));
    assert_eq!(AudioLevel::parse(&[127, 0, 0]), Some(AudioLevel { dbov: 127, voice: false }));
    assert_eq!(AudioLevel::parse(&[]), None);
}

#[test]
fn a_meter_reports_each_sources_speech_every_100_ms_and_judges_voice_flags_per_sender() {
    let mut meter = LevelMeter::default();
    let start = Instant::now();
    let (flagging, unflagged) = (SourceId(1), SourceId(2));
    assert_eq!(meter.deadline(), None, "nothing counted, nothing due");
    meter.record(flagging, AudioLevel { dbov: 20, voice: true }, start);
    // Loud but not voice, from a sender that flags voice: not speech.
    meter.record(flagging, AudioLevel { dbov: 10, voice: false }, start);
    meter.record(flagging, AudioLevel { dbov: 60, voice: true }, start);
    // A sender that never flags is judged on loudness alone.
    meter.record(unflagged, AudioLevel { dbov: 30, voice: false }, start);
    assert_eq!(meter.take_due(start + Duration::from_millis(99)), None);
    let report = meter.take_due(start + REPORT_EVERY).expect("due after 100 ms");
    assert_eq!(
        report,
        vec![
            (flagging, LevelSummary { packets: 3, speech: 1, speech_dbov: 20 }),
            (unflagged, LevelSummary { packets: 1, speech: 1, speech_dbov: 30 }),
        ]
    );
    assert_eq!(meter.deadline(), None, "a report empties the meter");
    meter.record(flagging, AudioLevel { dbov: 20, voice: true }, start);
    meter.record(unflagged, AudioLevel { dbov: 20, voice: true }, start);
    meter.forget(|source| source == unflagged);
    let report = meter.take_due(start + REPORT_EVERY).expect("due");
    assert_eq!(report.iter().map(|(source, _)| *source).collect::<Vec<_>>(), vec![flagging]);
}

#[test]
fn the_louder_speaker_is_first_and_the_order_follows_when_levels_swap() {
    let [a, b] = users();
    let mut sim = Sim::new();
    sim.play(1000, &[(a, 10), (b, 30)]);
    assert_eq!(sim.last(), vec![a, b]);
    let levels: Vec<f64> = sim.sent.last().map(|(_, list)| list.iter().map(|s| s.level).collect()).expect("a list");
    assert_eq!(levels, vec![0.92, 0.76], "1 - dBov/127");

    sim.play(1000, &[(a, 30), (b, 10)]);
    assert_eq!(sim.last(), vec![b, a]);
}

#[test]
fn a_steady_room_sends_its_list_once_and_silence_once() {
    let [a] = users();
    let mut sim = Sim::new();
    sim.play(5000, &[(a, 20)]);
    assert_eq!(sim.sent.len(), 1, "one list for five steady seconds: {:?}", sim.sent);
    assert_eq!(sim.last(), vec![a]);
    // Within one window of silence the list empties; then the room goes quiet.
    sim.play(1500, &[(a, 127)]);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.last(), Vec::<Uuid>::new());
    let emptied = sim.sent[1].0;
    // One window for the speech to leave it, and at most one emission period more.
    assert!(emptied - 5000 <= 1300, "emptied {} ms into the silence", emptied - 5000);
    sim.play(1000, &[]);
    sim.run_until(sim.now_ms + 5000);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.speakers.poll_timeout(), None, "nothing left to evaluate");
}

#[test]
fn lists_go_out_at_most_every_300_ms_however_fast_speakers_change() {
    let voices: [Uuid; 5] = users();
    let mut sim = Sim::new();
    // Every 100 ms each voice is loud, quiet or silent at random (a fixed LCG).
    let mut seed: u32 = 7;
    for _ in 0..60 {
        let step: Vec<(Uuid, u8)> = voices
            .iter()
            .map(|user| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (*user, [0, 35, 127][(seed >> 16) as usize % 3])
            })
            .collect();
        sim.play(100, &step);
    }
    assert!(sim.sent.len() >= 5, "the lists changed often: {:?}", sim.sent);
    for pair in sim.sent.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 300, "lists at {} and {} ms", pair[0].0, pair[1].0);
    }
}

#[test]
fn a_pause_between_words_does_not_drop_a_speaker() {
    let [a] = users();
    let mut sim = Sim::new();
    sim.play(1000, &[(a, 25)]);
    sim.play(400, &[(a, 127)]);
    sim.play(300, &[(a, 25)]);
    assert_eq!(sim.sent.len(), 1, "no flapping: {:?}", sim.sent);
}

#[test]
fn noise_and_a_trickle_of_packets_are_not_speech() {
    let [noise, trickle] = users();
    let mut sim = Sim::new();
    sim.play(2000, &[(noise, 50)]);
    for ms in (0..2000).step_by(500) {
        let loud = LevelSummary { packets: 1, speech: 1, speech_dbov: 10 };
        sim.speakers.observe(sim.room, trickle, sim.at(sim.now_ms + ms), loud);
    }
    sim.run_until(sim.now_ms + 2000);
    assert!(sim.sent.is_empty(), "{:?}", sim.sent);
}

#[test]
fn at_most_three_are_listed_and_a_newcomer_must_be_clearly_louder_to_enter() {
    let [a, b, c, d] = users();
    let mut sim = Sim::new();
    sim.play(1000, &[(a, 10), (b, 15), (c, 20)]);
    assert_eq!(sim.last(), vec![a, b, c]);
    // d is a hair louder than c (about 0.01): c keeps the place.
    sim.play(2000, &[(a, 10), (b, 15), (c, 20), (d, 19)]);
    assert_eq!(sim.last(), vec![a, b, c]);
    // Clearly louder: d takes it.
    sim.play(2000, &[(a, 10), (b, 15), (c, 20), (d, 9)]);
    assert_eq!(sim.last(), vec![a, d, b]);
}

#[test]
fn ranking_keeps_an_order_within_the_margin_and_changes_it_past_it() {
    let [a, b] = users();
    let sent = [Speaker { user: a, level: 0.80 }, Speaker { user: b, level: 0.80 }];
    assert_eq!(rank(&sent, &[(a, 0.80), (b, 0.82)]).iter().map(|s| s.user).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(rank(&sent, &[(a, 0.80), (b, 0.84)]).iter().map(|s| s.user).collect::<Vec<_>>(), vec![b, a]);
    assert_eq!(rank(&[], &[(a, 0.80), (b, 0.81)]).iter().map(|s| s.user).collect::<Vec<_>>(), vec![b, a]);
    assert!(!differs(&sent, &[Speaker { user: a, level: 0.84 }, Speaker { user: b, level: 0.76 }]));
    assert!(differs(&sent, &[Speaker { user: a, level: 0.85 }, Speaker { user: b, level: 0.80 }]));
    assert!(differs(&sent, &sent[..1]));
}

#[test]
fn a_forgotten_user_leaves_the_list_at_the_next_evaluation() {
    let [a, b] = users();
    let mut sim = Sim::new();
    sim.play(1000, &[(a, 10), (b, 20)]);
    assert_eq!(sim.last(), vec![a, b]);
    sim.speakers.forget_user(sim.room, a);
    sim.play(300, &[(b, 20)]);
    assert_eq!(sim.last(), vec![b]);
    assert_eq!(sim.speakers.current(sim.room), sim.sent.last().expect("a list").1.as_slice());
}

#[test]
fn the_payload_names_users_and_levels_loudest_first() {
    let [a, b] = users();
    let list = [Speaker { user: a, level: 0.9 }, Speaker { user: b, level: 0.5 }];
    assert_eq!(payload(&list), json!({ "speakers": [{ "userId": a, "level": 0.9 }, { "userId": b, "level": 0.5 }] }));
    assert_eq!(payload(&[]), json!({ "speakers": [] }));
}
