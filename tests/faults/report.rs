//! The figures of one fault run, from the client's records and the stream.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use crate::http::{Answer, Outcome, Record};
use crate::verify::Stream;

#[derive(Debug, Default)]
pub struct Figures {
    pub sent: usize,
    pub acknowledged: usize,
    /// Sent after the fault began and acknowledged before it ended: writes went
    /// on during it.
    pub acknowledged_during_fault: usize,
    /// Acknowledged, yet not in the stream.
    pub lost: usize,
    /// Stored more than once.
    pub applied_twice: usize,
    /// Answered as failed (or never answered as applied), yet stored.
    pub false_failures: usize,
    /// Got an unknown outcome at least once (allowed: then stored once or not at all).
    pub unknown: usize,
    /// Still unknown when the client gave up retrying.
    pub unsettled: usize,
    pub longest_wait: Duration,
    /// Acknowledged, not in the stream, answered inside the window whose writes
    /// the injected disk loss removed by construction.
    pub lost_to_disk_loss: usize,
    /// Where the read models differ from the stream.
    pub fork: Vec<String>,
    /// A few of the bad records, for the failure message.
    pub examples: Vec<String>,
}

impl Figures {
    /// `fault` is when the fault was on; `disk_loss` the window of answers whose
    /// events the injected disk loss may have removed.
    pub fn of(records: &[Record], stream: &Stream, fault: Range<Duration>, disk_loss: Option<Range<Duration>>) -> Self {
        let mut figures = Self { sent: records.len(), ..Self::default() };
        for record in records {
            let stored = stream.count(&record.key, record.kind.primary_event());
            let outcome = record.outcome();
            figures.longest_wait = figures.longest_wait.max(record.longest_wait());
            figures.unknown += usize::from(record.had_unknown());
            figures.unsettled += usize::from(outcome == Outcome::Unsettled);
            let mut bad = None;
            if outcome == Outcome::Acknowledged {
                figures.acknowledged += 1;
                let sent = record.attempts.first().map_or(Duration::ZERO, |attempt| attempt.sent_at);
                figures.acknowledged_during_fault +=
                    usize::from(sent >= fault.start && record.answered_at() <= fault.end);
                if stored == 0 {
                    // The append may have been acknowledged by NATS inside the
                    // window and the answer reached the client after it (a request
                    // in flight across the kill): what counts is the overlap.
                    let last_sent = record.attempts.last().map_or(Duration::ZERO, |attempt| attempt.sent_at);
                    let in_flight =
                        |window: &Range<Duration>| last_sent <= window.end && record.answered_at() >= window.start;
                    if disk_loss.as_ref().is_some_and(in_flight) {
                        figures.lost_to_disk_loss += 1;
                    } else {
                        figures.lost += 1;
                        bad = Some("lost");
                    }
                }
            }
            if stored > 1 {
                figures.applied_twice += 1;
                bad = Some("applied twice");
            }
            if outcome == Outcome::Failed && stored > 0 {
                figures.false_failures += 1;
                bad = Some("false failure");
            }
            if let Some(what) = bad
                && figures.examples.len() < 12
            {
                figures.examples.push(describe(what, record, stored));
            }
        }
        figures
    }

    pub fn failed(&self) -> bool {
        self.lost + self.applied_twice + self.false_failures > 0 || !self.fork.is_empty()
    }
}

fn describe(what: &str, record: &Record, stored: usize) -> String {
    let answers: Vec<String> = record
        .attempts
        .iter()
        .map(|attempt| {
            format!(
                "{} at {:.1}s after {:.1}s",
                attempt.answer.short(),
                attempt.sent_at.as_secs_f64(),
                attempt.took.as_secs_f64()
            )
        })
        .collect();
    format!(
        "{what}: {:?} {} key {} stored {stored}x; answers: {}",
        record.kind,
        record.target,
        record.key,
        answers.join("; ")
    )
}

pub const HEADER: &str = "| fault | writes sent | acknowledged | acked during fault | lost | applied twice | false failures | unknown (unsettled) | longest wait | read models forked | lost to injected disk loss |\n\
                          |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// One table row.
pub fn row(fault: &str, figures: &Figures) -> String {
    let disk = if fault.contains("tail") { figures.lost_to_disk_loss.to_string() } else { "-".into() };
    format!(
        "| {fault} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.1} s | {} | {disk} |",
        figures.sent,
        figures.acknowledged,
        figures.acknowledged_during_fault,
        figures.lost,
        figures.applied_twice,
        figures.false_failures,
        figures.unknown,
        figures.unsettled,
        figures.longest_wait.as_secs_f64(),
        if figures.fork.is_empty() { "no".to_string() } else { format!("yes ({})", figures.fork.len()) },
    )
}

/// The table for one fault, with what went wrong.
pub fn table(fault: &str, figures: &Figures) -> String {
    let mut text = format!("\n{HEADER}\n{}\n", row(fault, figures));
    for example in &figures.examples {
        let _ = writeln!(text, "  {example}");
    }
    for difference in &figures.fork {
        let _ = writeln!(text, "  read models: {difference}");
    }
    text
}

/// How many final answers of each kind other than success, e.g.
/// `503 service_unavailable ×12, not sent ×3`.
pub fn failure_answers(records: &[Record]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for record in records {
        match record.attempts.last().map(|attempt| &attempt.answer) {
            Some(Answer::Success { .. }) | None => {}
            Some(Answer::Refused { status, code }) => *counts.entry(format!("{status} {code}")).or_default() += 1,
            Some(Answer::Unknown { .. }) => *counts.entry("unknown".into()).or_default() += 1,
            Some(Answer::NotSent { .. }) => *counts.entry("not sent".into()).or_default() += 1,
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(answer, count)| format!("{answer} ×{count}")).collect::<Vec<_>>().join(", ")
}

/// Appends the row to `RAPAT_FAULTS_REPORT` when set, so that the script running
/// the suite can print every fault's row in one table at the end.
pub fn append_to_report(fault: &str, figures: &Figures) {
    let Some(path) = std::env::var_os("RAPAT_FAULTS_REPORT").filter(|path| !path.is_empty()) else { return };
    use std::io::Write as _;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{}", row(fault, figures));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::Figures;
    use crate::http::{Answer, Attempt, Kind, Record};
    use crate::verify::{Event, Stream};

    fn record(key: &str, kind: Kind, answers: Vec<Answer>) -> Record {
        let attempts = answers
            .into_iter()
            .enumerate()
            .map(|(n, answer)| Attempt {
                sent_at: Duration::from_secs(n as u64 + 1),
                took: Duration::from_millis(200),
                answer,
            })
            .collect();
        Record { key: key.into(), kind, target: format!("{kind:?}"), attempts }
    }

    fn event(key: &str, event_type: &str, sequence: u64) -> Event {
        Event {
            stream_sequence: sequence,
            event_id: uuid::Uuid::new_v4(),
            aggregate_type: "room".into(),
            aggregate_id: "r1".into(),
            event_type: event_type.into(),
            correlation_id: Some(key.into()),
            payload: Value::Null,
        }
    }

    fn ok() -> Answer {
        Answer::Success { status: 200, data: json!({}) }
    }

    fn unavailable() -> Answer {
        Answer::Refused { status: 503, code: "unavailable".into() }
    }

    fn unknown() -> Answer {
        Answer::Unknown { what: "reset".into() }
    }

    #[test]
    fn figures_count_each_broken_promise_once() {
        let records = vec![
            record("kept", Kind::Join, vec![ok()]),
            record("lost", Kind::Join, vec![ok()]),
            record("twice", Kind::Leave, vec![unknown(), ok()]),
            record("false", Kind::Mute, vec![unavailable()]),
            record("refused", Kind::Mute, vec![unavailable()]),
            record("open", Kind::UpdateRoom, vec![unknown(), unknown()]),
        ];
        let stream = Stream::of(vec![
            event("kept", "ParticipantJoined", 1),
            event("twice", "ParticipantLeft", 2),
            event("twice", "ParticipantLeft", 3),
            event("false", "ParticipantMutedByHost", 4),
            // Another event type of the same request does not count as the write.
            event("lost", "ParticipantMutedByHost", 5),
        ]);
        let figures = Figures::of(&records, &stream, Duration::ZERO..Duration::from_secs(1), None);
        assert_eq!(figures.sent, 6);
        assert_eq!(figures.acknowledged, 3);
        assert_eq!(figures.lost, 1);
        assert_eq!(figures.applied_twice, 1);
        assert_eq!(figures.false_failures, 1);
        assert_eq!((figures.unknown, figures.unsettled), (2, 1));
        assert!(figures.failed());
    }

    #[test]
    fn an_acknowledged_write_answered_in_the_disk_loss_window_is_counted_apart() {
        let records = vec![record("gone", Kind::Join, vec![ok()])];
        let stream = Stream::of(Vec::new());
        let window = Some(Duration::from_millis(500)..Duration::from_secs(2));
        let figures = Figures::of(&records, &stream, Duration::ZERO..Duration::from_secs(1), window);
        assert_eq!((figures.lost, figures.lost_to_disk_loss), (0, 1));
        assert!(!figures.failed());
    }

    #[test]
    fn a_write_in_flight_across_the_disk_loss_counts_apart_and_one_sent_after_it_is_lost() {
        // Sent at 1 s, answered at 1.2 s: the window ends at 1.1 s, mid-request.
        let across = vec![record("across", Kind::Join, vec![ok()])];
        let stream = Stream::of(Vec::new());
        let window = Some(Duration::from_millis(500)..Duration::from_millis(1100));
        let figures = Figures::of(&across, &stream, Duration::ZERO..Duration::from_millis(1100), window);
        assert_eq!((figures.lost, figures.lost_to_disk_loss), (0, 1));
        // Sent at 1 s, after a window that ended at 0.9 s: a real loss.
        let after = vec![record("after", Kind::Join, vec![ok()])];
        let window = Some(Duration::from_millis(500)..Duration::from_millis(900));
        let figures = Figures::of(&after, &stream, Duration::ZERO..Duration::from_millis(900), window);
        assert_eq!((figures.lost, figures.lost_to_disk_loss), (1, 0));
        assert!(figures.failed());
    }
}
