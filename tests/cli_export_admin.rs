//! `rapat events export` and `rapat admin grant` as an operator runs them, against
//! the real NATS (each test in its own namespace).

use std::process::{Command, Output};

use async_nats::jetstream::{self, stream};
use rapat_testkit::{NamespaceCleanup, nats_url, unique_namespace};
use serde_json::{Value, json};
use uuid::Uuid;

/// A namespace with its stream; its streams and buckets are deleted when dropped
/// (`rapat admin grant` opens the event store, which makes the snapshot bucket).
struct Namespace {
    names: rapat_wire::Namespace,
    jetstream: jetstream::Context,
    _cleanup: NamespaceCleanup,
}

impl Namespace {
    async fn new() -> Self {
        let names = unique_namespace();
        let jetstream = jetstream::new(async_nats::connect(nats_url()).await.expect("NATS answers"));
        jetstream
            .create_stream(stream::Config {
                name: names.events_stream(),
                subjects: vec![names.all_event_subjects()],
                max_age: std::time::Duration::from_secs(3600),
                ..Default::default()
            })
            .await
            .expect("creates the stream");
        Self { names: names.clone(), jetstream, _cleanup: NamespaceCleanup::new(names) }
    }

    /// Publishes one message of `count` events for a room, as the write side does.
    async fn publish_room_commit(&self, room: Uuid, first_version: u64, count: u64) -> u64 {
        let command_id = Uuid::new_v4().to_string();
        let events: Vec<Value> = (0..count)
            .map(|offset| {
                json!({
                    "eventId": Uuid::new_v4(), "aggregateType": "room", "aggregateId": room,
                    "aggregateVersion": first_version + offset, "eventType": "RoomSettingsUpdated",
                    "schemaVersion": 1, "timestamp": "2025-01-31T09:00:00Z", "actor": null,
                    "correlationId": null, "commandId": command_id, "payload": { "n": offset },
                })
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "events": events })).expect("json");
        let subject = self.names.event_subject("room", room);
        self.jetstream.publish(subject, body.into()).await.expect("publishes").await.expect("stored").sequence
    }

    fn rapat(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rapat"))
            .args(args)
            .args(["--namespace", self.names.as_str(), "--nats-url", &nats_url()])
            .env("RUST_LOG", "warn")
            .output()
            .expect("rapat runs")
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

#[tokio::test]
async fn export_writes_a_file_and_resume_appends_only_what_is_new() {
    let ns = Namespace::new().await;
    let room = Uuid::new_v4();
    ns.publish_room_commit(room, 1, 3).await;
    ns.publish_room_commit(room, 4, 1).await;
    let dir = std::env::temp_dir().join(format!("rapat-export-{}", ns.names));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("events.jsonl");
    let path = file.to_str().expect("a UTF-8 path");

    let first = ns.rapat(&["events", "export", "--output", path]);
    assert!(first.status.success(), "stderr: {}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("exported 4 events up to stream sequence 2"));
    let written = lines(&std::fs::read_to_string(&file).expect("the file exists"));
    let sequences: Vec<u64> = written.iter().filter_map(|line| line["streamSequence"].as_u64()).collect();
    assert_eq!(sequences, [1, 1, 1, 2]);
    assert_eq!(written[0]["aggregateId"], json!(room));

    ns.publish_room_commit(room, 5, 2).await;
    let resumed = ns.rapat(&["events", "export", "--output", path, "--resume"]);
    assert!(resumed.status.success(), "stderr: {}", String::from_utf8_lossy(&resumed.stderr));
    let all = lines(&std::fs::read_to_string(&file).expect("the file exists"));
    let versions: Vec<u64> = all.iter().filter_map(|line| line["aggregateVersion"].as_u64()).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6], "appended, no duplicate, no gap");

    // To stdout, filtered: what --from-sequence selects, and nothing for other types.
    let tail = ns.rapat(&["events", "export", "--from-sequence", "3"]);
    assert!(tail.status.success());
    assert_eq!(lines(&String::from_utf8_lossy(&tail.stdout)).len(), 2);
    let accounts = ns.rapat(&["events", "export", "--aggregate-type", "account"]);
    assert!(accounts.status.success());
    assert!(accounts.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn export_refuses_bad_arguments_clearly() {
    let ns = Namespace::new().await;
    let since = ns.rapat(&["events", "export", "--since", "yesterday"]);
    assert!(!since.status.success());
    assert!(String::from_utf8_lossy(&since.stderr).contains("RFC 3339"), "{}", String::from_utf8_lossy(&since.stderr));
    let resume = ns.rapat(&["events", "export", "--resume"]);
    assert!(!resume.status.success(), "--resume needs --output");
}

#[tokio::test]
async fn granting_a_role_to_an_unknown_email_fails_clearly() {
    let ns = Namespace::new().await;
    let unknown = ns.rapat(&["admin", "grant", "nobody@example.com"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no account is registered with nobody@example.com"), "stderr: {stderr}");
    let invalid = ns.rapat(&["admin", "grant", "not-an-email"]);
    assert!(!invalid.status.success());
}

#[tokio::test]
async fn export_redacts_password_hashes_unless_secrets_are_asked_for() {
    let ns = Namespace::new().await;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    let account = Uuid::new_v4();
    let event = json!({
        "eventId": Uuid::new_v4(), "aggregateType": "account", "aggregateId": account,
        "aggregateVersion": 1, "eventType": "AccountRegistered", "schemaVersion": 1,
        "timestamp": "2025-01-31T09:00:00Z", "actor": account, "correlationId": null, "commandId": "c1",
        "payload": { "email": "ana@example.com", "passwordHash": hash, "firstName": "Ana", "lastName": "B", "role": "member" },
    });
    let body = serde_json::to_vec(&json!({ "events": [event] })).expect("json");
    ns.jetstream
        .publish(ns.names.event_subject("account", account), body.into())
        .await
        .expect("publishes")
        .await
        .expect("stored");

    let redacted = ns.rapat(&["events", "export"]);
    assert!(redacted.status.success(), "stderr: {}", String::from_utf8_lossy(&redacted.stderr));
    let stdout = String::from_utf8_lossy(&redacted.stdout);
    assert!(!stdout.contains("argon2id"), "a hash was exported: {stdout}");
    let line = &lines(&stdout)[0];
    assert_eq!(line["payload"]["passwordHash"], "[redacted]");
    assert_eq!(line["payload"]["email"], "ana@example.com", "only the secret is hidden");

    let with_secrets = ns.rapat(&["events", "export", "--include-secrets"]);
    assert!(with_secrets.status.success());
    assert_eq!(lines(&String::from_utf8_lossy(&with_secrets.stdout))[0]["payload"]["passwordHash"], hash);
}
