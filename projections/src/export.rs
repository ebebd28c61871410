//! Exporting the event stream as JSON Lines, for analytics outside rapat: one
//! stored event per line, with the stream sequence of the message that holds it.
//!
//! The export reads with an ordered consumer (ephemeral, no acks, recreated by the
//! client if a message goes missing) that starts where the filter says, and stops
//! at the stream's last message as it was when the export began, so it always
//! ends even while commands keep arriving.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapat_domain::envelope::{StoredCommit, StoredEvent};
use rapat_wire::Namespace;
use serde::Serialize;

use crate::redaction::redacted;

/// Which part of the stream to export, and whether with secrets. The default is all
/// of it, secrets redacted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// First stream sequence to export.
    pub from_sequence: Option<u64>,
    /// Only messages the server stored at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this aggregate type's subjects (`room`, `account`, ...).
    pub aggregate_type: Option<String>,
    /// Only events after this one: how an interrupted export resumes, even when
    /// it stopped in the middle of a message's events.
    pub after: Option<ExportPosition>,
    /// Keep secrets (`crate::redaction::SECRET_FIELDS`) as stored. Off by default:
    /// an export is for analysis, and a password hash in a notebook is a leak.
    pub include_secrets: bool,
}

/// An event's place in the stream. The events of one message belong to one
/// aggregate and have increasing versions, so the pair orders every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportPosition {
    pub stream_sequence: u64,
    pub aggregate_version: u64,
}

/// Reported after each exported message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportProgress {
    /// Stream sequence of the message just written.
    pub sequence: u64,
    /// Stream sequence the export stops at.
    pub last_sequence: u64,
    /// Events written so far.
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExportReport {
    /// Events written (a message may hold several).
    pub events: u64,
    /// Stream sequence of the last message written; 0 when none was.
    pub last_sequence: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid export filter: {0}")]
    InvalidFilter(String),
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("no message arrived for {0:?} although the stream holds more; is NATS overloaded?")]
    Stalled(Duration),
    #[error("stream message {sequence} is not a stored commit: {reason}")]
    Corrupt { sequence: u64, reason: String },
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("the export file's last line is not an exported event: {0}")]
    BadResumeLine(String),
}

/// One line of the export: the stored event, flattened, and its message's
/// stream sequence.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    stream_sequence: u64,
    #[serde(flatten)]
    event: &'a StoredEvent,
}

/// How long the export waits for the next message it knows exists.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes the events of `namespace`'s event stream that match `filter` to `writer`,
/// one JSON object per line, in stream order, up to the stream's last message at
/// the start.
pub async fn export_jsonl<W: Write>(
    jetstream: &jetstream::Context,
    namespace: &Namespace,
    filter: &ExportFilter,
    writer: &mut W,
    mut progress: impl FnMut(ExportProgress),
) -> Result<ExportReport, ExportError> {
    let started = Instant::now();
    let filter_subject = filter_subject(namespace, filter.aggregate_type.as_deref())?;
    let nats = |what: &str, error: &dyn std::fmt::Display| ExportError::Nats(format!("{what}: {error}"));
    let mut stream =
        jetstream.get_stream(namespace.events_stream()).await.map_err(|e| nats("opening the stream", &e))?;
    // Everything up to here is exported; what arrives later is left for the next run.
    let end = stream.info().await.map_err(|e| nats("reading the stream's state", &e))?.state.last_sequence;
    let mut report = ExportReport { events: 0, last_sequence: 0, elapsed: Duration::ZERO };
    let resume_at = filter.after.map_or(1, |after| after.stream_sequence);
    let first = filter.from_sequence.unwrap_or(1).max(resume_at).max(1);
    if end == 0 || first > end {
        report.elapsed = started.elapsed();
        return Ok(report);
    }

    let deliver_policy = match filter.since {
        _ if first > 1 => DeliverPolicy::ByStartSequence { start_sequence: first },
        Some(since) => DeliverPolicy::ByStartTime { start_time: to_nats_time(since)? },
        None => DeliverPolicy::All,
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig { filter_subject, deliver_policy, ..Default::default() })
        .await
        .map_err(|e| nats("creating the export consumer", &e))?;
    // Messages matching the filter from the start position when the consumer was
    // made. With a subject filter the stream's last message may not be one of
    // ours, so this count, not only `end`, says when to stop.
    let mut remaining = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.map_err(|e| nats("reading the stream", &e))?;
    while remaining > 0 {
        let message = match tokio::time::timeout(STALL_TIMEOUT, messages.next()).await {
            Err(_) => return Err(ExportError::Stalled(STALL_TIMEOUT)),
            Ok(None) => return Err(ExportError::Nats("the consumer ended early".to_owned())),
            Ok(Some(Err(error))) => return Err(nats("reading the stream", &error)),
            Ok(Some(Ok(message))) => message,
        };
        remaining -= 1;
        let info = message.info().map_err(|e| nats("reading a message's metadata", &e))?;
        let (sequence, published) = (info.stream_sequence, info.published.unix_timestamp_nanos());
        if sequence > end {
            break;
        }
        // With both a start sequence and a time, the sequence positions the
        // consumer and the time is checked here.
        if filter.since.is_some_and(|since| published < i128::from(since.timestamp_nanos_opt().unwrap_or(i64::MIN))) {
            continue;
        }
        let commit: StoredCommit = serde_json::from_slice(&message.payload)
            .map_err(|error| ExportError::Corrupt { sequence, reason: error.to_string() })?;
        for event in &commit.events {
            let position = ExportPosition { stream_sequence: sequence, aggregate_version: event.aggregate_version };
            if filter.after.is_some_and(|after| position <= after) {
                continue;
            }
            let redacted_event;
            let event = if filter.include_secrets {
                event
            } else {
                redacted_event = StoredEvent { payload: redacted(&event.payload), ..event.clone() };
                &redacted_event
            };
            serde_json::to_writer(&mut *writer, &Line { stream_sequence: sequence, event })
                .map_err(|error| ExportError::Write(error.into()))?;
            writer.write_all(b"\n")?;
            report.events += 1;
        }
        report.last_sequence = sequence;
        progress(ExportProgress { sequence, last_sequence: end, events: report.events });
        if sequence == end {
            break;
        }
    }
    writer.flush()?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The subjects to read: all of the stream's, or one aggregate type's.
fn filter_subject(namespace: &Namespace, aggregate_type: Option<&str>) -> Result<String, ExportError> {
    let Some(aggregate_type) = aggregate_type else { return Ok(namespace.all_event_subjects()) };
    let valid =
        !aggregate_type.is_empty() && aggregate_type.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ExportError::InvalidFilter(format!(
            "aggregate type {aggregate_type:?} must be letters, digits, '-' or '_' (e.g. room)"
        )));
    }
    Ok(namespace.event_subjects_of(aggregate_type))
}

fn to_nats_time(time: DateTime<Utc>) -> Result<async_nats::datetime::DateTime, ExportError> {
    let nanos =
        time.timestamp_nanos_opt().ok_or_else(|| ExportError::InvalidFilter(format!("{time} is out of range")))?;
    async_nats::datetime::from_nanos(i128::from(nanos)).map_err(|e| ExportError::InvalidFilter(e.to_string()))
}

/// Parses an RFC 3339 time such as `2025-01-31T09:00:00Z`, for `--since`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, ExportError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| ExportError::InvalidFilter(format!("{text:?} is not an RFC 3339 time: {error}")))
}

/// Where to resume: the position of the last line of an earlier export, `None`
/// when it has no lines. A partial last line (an export killed mid-write) is an
/// error rather than a guess, so nothing is silently skipped.
pub fn resume_point(reader: impl BufRead) -> Result<Option<ExportPosition>, ExportError> {
    let mut last: Option<String> = None;
    for line in reader.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    let Some(line) = last else { return Ok(None) };
    let value: serde_json::Value =
        serde_json::from_str(&line).map_err(|error| ExportError::BadResumeLine(error.to_string()))?;
    match (value["streamSequence"].as_u64(), value["aggregateVersion"].as_u64()) {
        (Some(stream_sequence), Some(aggregate_version)) => {
            Ok(Some(ExportPosition { stream_sequence, aggregate_version }))
        }
        _ => Err(ExportError::BadResumeLine("it has no numeric streamSequence and aggregateVersion".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_subjects_and_refuse_wildcards() {
        let namespace = Namespace::parse("rapat").expect("valid");
        assert_eq!(filter_subject(&namespace, None).ok(), Some("rapat.events.>".to_owned()));
        assert_eq!(filter_subject(&namespace, Some("room")).ok(), Some("rapat.events.room.>".to_owned()));
        for bad in ["", "room.>", "*", "ro om"] {
            assert!(matches!(filter_subject(&namespace, Some(bad)), Err(ExportError::InvalidFilter(_))), "{bad:?}");
        }
    }

    #[test]
    fn resume_point_is_the_last_lines_sequence() {
        let file = "{\"streamSequence\":3,\"aggregateVersion\":1}\n{\"streamSequence\":7,\"aggregateVersion\":4}\n";
        let expected = ExportPosition { stream_sequence: 7, aggregate_version: 4 };
        assert_eq!(resume_point(file.as_bytes()).ok(), Some(Some(expected)));
        assert_eq!(resume_point("".as_bytes()).ok(), Some(None));
        assert!(matches!(resume_point("{\"streamSeq".as_bytes()), Err(ExportError::BadResumeLine(_))));
    }

    #[test]
    fn times_parse_as_rfc3339_only() {
        assert!(parse_time("2025-01-31T09:00:00+07:00").is_ok());
        assert!(parse_time("yesterday").is_err());
    }
}
