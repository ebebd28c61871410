//! What the stream and the read models say after a run: the stream from
//! `rapat events export`, the read models from Postgres.
//!
//! The read models "did not fork" when every projection's checkpoint is the
//! stream's last message of its subjects, nothing is parked, and the read models
//! hold exactly what the stream says: every event in the audit trail, the same
//! users, sessions, rooms, open stays and contacts.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sqlx::{Connection as _, PgConnection};

use crate::rapat::namespace;
use crate::stack::Stack;

/// How long the read models get to catch up with the stream once the load stopped.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(45);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub stream_sequence: u64,
    pub event_id: uuid::Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub correlation_id: Option<String>,
    pub payload: serde_json::Value,
}

/// The stream as exported, and how many events of each `(correlation id,
/// aggregate type, event type)` it holds.
pub struct Stream {
    pub events: Vec<Event>,
    by_request: HashMap<(String, String, String), usize>,
}

impl Stream {
    /// Exports the stream with the `rapat` binary and reads it back.
    pub async fn export(stack: &Stack) -> Self {
        let file = stack.dir.join("export.jsonl");
        stack.rapat.export(&file).await;
        Self::read(&file)
    }

    fn read(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).expect("the export can be read");
        let events: Vec<Event> =
            text.lines().map(|line| serde_json::from_str(line).expect("an exported line is an event")).collect();
        Self::of(events)
    }

    pub fn of(events: Vec<Event>) -> Self {
        let mut by_request = HashMap::new();
        for event in &events {
            if let Some(id) = &event.correlation_id {
                *by_request.entry((id.clone(), event.aggregate_type.clone(), event.event_type.clone())).or_default() +=
                    1;
            }
        }
        Self { events, by_request }
    }

    /// Events of `event` stored for the request whose id (and key) is `key`.
    pub fn count(&self, key: &str, (aggregate_type, event_type): (&str, &str)) -> usize {
        self.by_request
            .get(&(key.to_string(), aggregate_type.to_string(), event_type.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn last_sequence(&self, aggregate_type: Option<&str>) -> i64 {
        let last = self
            .events
            .iter()
            .filter(|event| aggregate_type.is_none_or(|wanted| event.aggregate_type == wanted))
            .map(|event| event.stream_sequence)
            .max()
            .unwrap_or(0);
        i64::try_from(last).expect("sequences fit in i64")
    }

    fn of_type<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |event| event.event_type == event_type)
    }

    fn ids_of(&self, event_type: &str) -> BTreeSet<String> {
        self.of_type(event_type).map(|event| event.aggregate_id.clone()).collect()
    }

    fn open_stays(&self) -> BTreeSet<(String, String)> {
        let mut open = BTreeSet::new();
        for event in &self.events {
            let user = || event.payload["userId"].as_str().unwrap_or_default().to_string();
            match event.event_type.as_str() {
                "ParticipantJoined" => {
                    open.insert((event.aggregate_id.clone(), user()));
                }
                "ParticipantLeft" | "ParticipantRemoved" => {
                    open.remove(&(event.aggregate_id.clone(), user()));
                }
                "RoomEnded" => open.retain(|(room, _)| *room != event.aggregate_id),
                _ => {}
            }
        }
        open
    }

    fn contacts(&self) -> BTreeSet<(String, String)> {
        let mut present = BTreeSet::new();
        for event in &self.events {
            let pair = || {
                let field = |name: &str| event.payload[name].as_str().unwrap_or_default().to_string();
                (field("ownerId"), field("contactId"))
            };
            match event.event_type.as_str() {
                "ContactAdded" => {
                    present.insert(pair());
                }
                "ContactRemoved" => {
                    present.remove(&pair());
                }
                _ => {}
            }
        }
        present
    }
}

/// Where the read models differ from the stream; empty when they did not fork.
pub async fn read_model_differences(stack: &Stack, stream: &Stream) -> Vec<String> {
    let mut db = PgConnection::connect(&stack.database_url()).await.expect("the run's Postgres answers");
    let mut differences = checkpoints_caught_up(&mut db, stream).await;
    let parked: i64 = scalar(&mut db, "SELECT count(*) FROM parked_events").await;
    if parked > 0 {
        differences.push(format!("{parked} parked events"));
    }
    let stream_events: BTreeSet<String> = stream.events.iter().map(|event| event.event_id.to_string()).collect();
    compare(
        &mut differences,
        "audit events",
        &stream_events,
        &strings(&mut db, "SELECT event_id::text FROM audit_events").await,
    );
    compare(
        &mut differences,
        "users",
        &stream.ids_of("AccountRegistered"),
        &strings(&mut db, "SELECT id::text FROM users").await,
    );
    compare(
        &mut differences,
        "sessions",
        &stream.ids_of("SessionStarted"),
        &strings(&mut db, "SELECT id::text FROM sessions").await,
    );
    compare(
        &mut differences,
        "rooms",
        &stream.ids_of("RoomCreated"),
        &strings(&mut db, "SELECT id::text FROM rooms").await,
    );
    let stays = pairs(&mut db, "SELECT room_id::text, user_id::text FROM participants WHERE left_at IS NULL").await;
    compare(&mut differences, "open stays", &stream.open_stays(), &stays);
    let contacts = pairs(&mut db, "SELECT owner_id::text, contact_id::text FROM contacts").await;
    compare(&mut differences, "contacts", &stream.contacts(), &contacts);
    differences
}

/// Waits until each projection's checkpoint is the last stream message of its
/// subjects; names those that are not (behind, or ahead of the stream) when
/// [`CATCH_UP_WITHIN`] is over.
async fn checkpoints_caught_up(db: &mut PgConnection, stream: &Stream) -> Vec<String> {
    let expected: Vec<(&str, i64)> = [
        ("accounts", Some("account")),
        ("sessions", Some("session")),
        ("contacts", Some("contacts")),
        ("rooms", Some("room")),
        ("analytics", Some("room")),
        ("audit", None),
    ]
    .into_iter()
    .map(|(projection, aggregate_type)| (projection, stream.last_sequence(aggregate_type)))
    .collect();
    let deadline = Instant::now() + CATCH_UP_WITHIN;
    loop {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT projection, last_sequence FROM projection_checkpoints")
            .fetch_all(&mut *db)
            .await
            .expect("checkpoints can be read");
        let at: HashMap<String, i64> = rows.into_iter().collect();
        let off: Vec<String> = expected
            .iter()
            .filter(|(projection, last)| at.get(*projection).copied().unwrap_or(0) != *last)
            .map(|(projection, last)| {
                format!("checkpoint {projection} at {} (stream: {last})", at.get(*projection).copied().unwrap_or(0))
            })
            .collect();
        if off.is_empty() || Instant::now() >= deadline {
            return off;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn compare<T: Ord + std::fmt::Debug>(
    differences: &mut Vec<String>,
    what: &str,
    stream: &BTreeSet<T>,
    read_model: &BTreeSet<T>,
) {
    let missing: Vec<&T> = stream.difference(read_model).collect();
    let extra: Vec<&T> = read_model.difference(stream).collect();
    if !missing.is_empty() {
        differences.push(format!(
            "{} {what} in the stream but not the read model, e.g. {:?}",
            missing.len(),
            missing[0]
        ));
    }
    if !extra.is_empty() {
        differences.push(format!("{} {what} in the read model but not the stream, e.g. {:?}", extra.len(), extra[0]));
    }
}

async fn scalar(db: &mut PgConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap_or_else(|error| panic!("{sql}: {error}"))
}

async fn strings(db: &mut PgConnection, sql: &'static str) -> BTreeSet<String> {
    let rows: Vec<String> =
        sqlx::query_scalar(sql).fetch_all(db).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows.into_iter().collect()
}

async fn pairs(db: &mut PgConnection, sql: &'static str) -> BTreeSet<(String, String)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as(sql).fetch_all(db).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows.into_iter().collect()
}

/// Waits until the event stream answers (after a fault a cluster may still be
/// electing its leader), so the export does not race the recovery.
pub async fn wait_for_stream(stack: &Stack) {
    let stream_name = namespace().events_stream();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(client) = connect(&stack.nats.url()).await {
            let jetstream = async_nats::jetstream::new(client);
            if let Ok(mut stream) = jetstream.get_stream(&stream_name).await
                && stream.info().await.is_ok()
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the event stream does not answer 60 s after the fault");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Connects to `url`, a comma-separated list of server URLs (async-nats takes a
/// list as a `Vec`, not as one string).
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    let servers: Vec<async_nats::ServerAddr> =
        url.split(',').map(|server| server.parse().expect("the test's NATS URLs parse")).collect();
    async_nats::connect(servers).await
}
