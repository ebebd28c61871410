//! `export::export_jsonl` against a real stream: what it writes is what was
//! published, filters narrow it, and a resumed export completes a partial one.

use async_nats::jetstream::stream::Stream;
use chrono::{DateTime, Utc};
use rapat_domain::envelope::{StoredCommit, StoredEvent};
use rapat_projections::export::{ExportFilter, ExportPosition, export_jsonl, resume_point};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestEnv, now};

/// Publishes one message holding `count` events of one aggregate, the way the
/// write side stores a command. Returns the stream sequence and the events.
async fn publish_commit(
    env: &TestEnv,
    aggregate_type: &str,
    id: Uuid,
    first_version: u64,
    count: u64,
) -> (u64, Vec<StoredEvent>) {
    let command_id = Uuid::new_v4().to_string();
    let events: Vec<StoredEvent> = (0..count)
        .map(|offset| StoredEvent {
            event_id: Uuid::new_v4(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: id.to_string(),
            aggregate_version: first_version + offset,
            event_type: format!("Happened{offset}"),
            schema_version: 1,
            timestamp: now(),
            actor: Some(Uuid::new_v4().to_string()),
            correlation_id: None,
            command_id: command_id.clone(),
            payload: json!({ "n": offset }),
        })
        .collect();
    let body = serde_json::to_vec(&StoredCommit { events: events.clone() }).expect("serialises");
    let sequence = env.publish(aggregate_type, &id.to_string(), body).await;
    (sequence, events)
}

/// A small mixed stream: rooms with one or three events per message, accounts
/// with one. Returns every event with its stream sequence, in stream order.
async fn generate(env: &TestEnv) -> Vec<(u64, StoredEvent)> {
    let (room, account) = (Uuid::new_v4(), Uuid::new_v4());
    let mut published = Vec::new();
    let mut room_version = 1;
    for round in 0..6 {
        let count = if round % 2 == 0 { 3 } else { 1 };
        let (sequence, events) = publish_commit(env, "room", room, room_version, count).await;
        room_version += count;
        published.extend(events.into_iter().map(|event| (sequence, event)));
        let (sequence, events) = publish_commit(env, "account", account, round + 1, 1).await;
        published.extend(events.into_iter().map(|event| (sequence, event)));
    }
    published
}

async fn export(env: &TestEnv, filter: &ExportFilter) -> Vec<u8> {
    let mut out = Vec::new();
    let mut reported = 0;
    let report = export_jsonl(&env.jetstream, &env.config.namespace, filter, &mut out, |p| {
        reported = p.events;
    })
    .await
    .expect("exports");
    assert_eq!(report.events, reported, "the last progress report counts every event");
    out
}

/// The lines of an export, each as (streamSequence, the stored event).
fn parse(export: &[u8]) -> Vec<(u64, StoredEvent)> {
    let text = std::str::from_utf8(export).expect("UTF-8");
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("each line is JSON");
            let sequence = value["streamSequence"].as_u64().expect("a streamSequence");
            (sequence, serde_json::from_value(value).expect("each line is a stored event"))
        })
        .collect()
}

async fn stored_at(stream: &Stream, sequence: u64) -> DateTime<Utc> {
    let message = stream.get_raw_message(sequence).await.expect("the message exists");
    DateTime::from_timestamp_nanos(i64::try_from(message.time.unix_timestamp_nanos()).expect("fits"))
}

#[tokio::test]
async fn an_export_is_exactly_the_published_events_in_order() {
    let env = TestEnv::new().await;
    let published = generate(&env).await;
    assert_eq!(parse(&export(&env, &ExportFilter::default()).await), published);
}

#[tokio::test]
async fn an_empty_stream_exports_nothing_and_returns() {
    let env = TestEnv::new().await;
    assert!(export(&env, &ExportFilter::default()).await.is_empty());
}

#[tokio::test]
async fn filters_select_by_aggregate_type_sequence_and_time() {
    let env = TestEnv::new().await;
    let published = generate(&env).await;

    let rooms = ExportFilter { aggregate_type: Some("room".to_owned()), ..Default::default() };
    let expected: Vec<_> = published.iter().filter(|(_, e)| e.aggregate_type == "room").cloned().collect();
    assert_eq!(parse(&export(&env, &rooms).await), expected);

    let from_five = ExportFilter { from_sequence: Some(5), ..Default::default() };
    let expected: Vec<_> = published.iter().filter(|(sequence, _)| *sequence >= 5).cloned().collect();
    assert_eq!(parse(&export(&env, &from_five).await), expected);

    let stream = env.jetstream.get_stream(env.config.namespace.events_stream()).await.expect("stream");
    let since = ExportFilter { since: Some(stored_at(&stream, 8).await), ..Default::default() };
    let expected: Vec<_> = published.iter().filter(|(sequence, _)| *sequence >= 8).cloned().collect();
    assert_eq!(parse(&export(&env, &since).await), expected);

    // Accounts sit at even sequences; the stream's last message is an account's,
    // so a room filter must stop on its own count, not wait for that sequence.
    let rooms_from_nine =
        ExportFilter { aggregate_type: Some("room".to_owned()), from_sequence: Some(9), ..Default::default() };
    let expected: Vec<_> =
        published.iter().filter(|(sequence, e)| *sequence >= 9 && e.aggregate_type == "room").cloned().collect();
    assert_eq!(parse(&export(&env, &rooms_from_nine).await), expected);

    let beyond = ExportFilter { from_sequence: Some(1000), ..Default::default() };
    assert!(export(&env, &beyond).await.is_empty());
}

#[tokio::test]
async fn a_resumed_export_completes_a_partial_one_without_duplicates_or_gaps() {
    let env = TestEnv::new().await;
    generate(&env).await;
    let full = export(&env, &ExportFilter::default()).await;
    let lines: Vec<&[u8]> = full.split_inclusive(|byte| *byte == b'\n').collect();
    // Cut after every line, including in the middle of a three-event message.
    for cut in 0..=lines.len() {
        let mut partial: Vec<u8> = lines[..cut].concat();
        let after = resume_point(partial.as_slice()).expect("a readable partial export");
        if cut > 0 {
            let (sequence, event) = parse(lines[cut - 1]).remove(0);
            assert_eq!(
                after,
                Some(ExportPosition { stream_sequence: sequence, aggregate_version: event.aggregate_version })
            );
        }
        let rest = export(&env, &ExportFilter { after, ..Default::default() }).await;
        partial.extend_from_slice(&rest);
        assert_eq!(partial, full, "resuming after line {cut}");
    }
}

#[tokio::test]
async fn an_export_ends_at_the_streams_last_message_and_the_next_one_continues() {
    let env = TestEnv::new().await;
    let published = generate(&env).await;
    let mut out = Vec::new();
    let report = export_jsonl(&env.jetstream, &env.config.namespace, &ExportFilter::default(), &mut out, |_| {})
        .await
        .expect("exports");
    assert_eq!(report.last_sequence, published.last().map(|(sequence, _)| *sequence).expect("events"));
    assert_eq!(report.events, published.len() as u64);
    publish_commit(&env, "room", Uuid::new_v4(), 1, 1).await;
    let next = ExportFilter { from_sequence: Some(report.last_sequence + 1), ..Default::default() };
    assert_eq!(parse(&export(&env, &next).await).len(), 1);
}
