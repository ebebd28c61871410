//! Calendar notifications at scale, against the real write side, projector and gateway.
//!
//!     cargo bench -p rapat-gateway --bench calendar
//!
//! 1. Fan-out: one `RoomRescheduled` of a room with `BENCH_INVITEES` invitees
//!    (default 1000), each with a lobby socket open. Timed from the append until
//!    every `meeting_rescheduled` row is committed in `notifications`, and until the
//!    last socket has its `notification` message. Baselines in the same run: one
//!    transaction inserting as many rows of the same shape, and core NATS
//!    publishing as many messages to as many subscribers.
//! 2. Reminder lateness: `BENCH_REMINDERS` reminders (default 10000; rooms of a
//!    host and 99 invitees, everyone's lead 0 minutes) due over one minute starting
//!    `BENCH_LEAD_SECONDS` (default 40) after setup, fired by one
//!    `ReminderScheduler`. Lateness is the stored `MeetingReminderDue` event's time
//!    minus its due moment. Baseline in the same run: a tokio task per reminder
//!    sleeping until the same moment.
//!
//! The setup goes through the command bus (no password hashing, no HTTP); the
//! sockets authenticate with tokens signed with the bench's secret, for sessions
//! started through the bus.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use rapat_commands::{CommandBus, CommandMetadata, JetStreamEventStore};
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::invitation::{Invitation, InvitationCommand, Invitee};
use rapat_domain::room::{MaxUsers, Room, RoomCommand, RoomDescription, RoomName};
use rapat_domain::services::DomainServices;
use rapat_domain::session::{RefreshToken, Session, SessionCommand};
use rapat_domain::settings::{ReminderMinutes, SettingsChanges, SettingsCommand, UserSettings};
use rapat_domain::text::Timestamp;
use rapat_gateway::{ReminderConfig, ReminderScheduler};
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use support::{NoPasswords, SECRET, Stack, env_or};

/// Commands in flight at once during setup.
const SETUP_CONCURRENCY: usize = 64;
/// Reminders per room: the host and 99 invitees.
const ROOM_SIZE: usize = 100;
/// How long any one wait may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let invitees: usize = env_or("BENCH_INVITEES", "1000").parse().context("BENCH_INVITEES")?;
    let reminders: usize = env_or("BENCH_REMINDERS", "10000").parse().context("BENCH_REMINDERS")?;
    let lead: u64 = env_or("BENCH_LEAD_SECONDS", "40").parse().context("BENCH_LEAD_SECONDS")?;
    let bench = Bench::start().await?;
    let result = async {
        if invitees > 0 {
            fan_out(&bench, invitees).await?;
        }
        if reminders > 0 {
            reminder_lateness(&bench, reminders, Duration::from_secs(lead)).await?;
        }
        anyhow::Ok(())
    }
    .await;
    bench.stop().await;
    result
}

// ---------------------------------------------------------------- fan-out

async fn fan_out(bench: &Bench, n: usize) -> anyhow::Result<()> {
    println!("== fan-out: one RoomRescheduled to {n} invitees ==");
    let setup = Instant::now();
    let host = UserId::new_random();
    let room = RoomId::new_random();
    let users: Vec<UserId> = (0..n).map(|_| UserId::new_random()).collect();
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    bench.create_room(room, host, tomorrow).await?;
    bench.invite_all(room, host, &users).await?;
    let sessions = bench.start_sessions(&users).await?;
    wait_count(&bench.stack.db, "notification_invitees", "room_id = ANY($1)", &[room.as_uuid()], n).await?;
    wait_count(&bench.stack.db, "sessions", "user_id = ANY($1)", &user_uuids(&users), n).await?;

    let sockets = open_lobby_sockets(bench, &users, &sessions).await?;
    println!("setup {:.1} s; {} of {n} lobby sockets open", setup.elapsed().as_secs_f64(), sockets.len());

    let started = Instant::now();
    let later = Timestamp::parse(tomorrow + chrono::Duration::hours(1))?;
    let command = RoomCommand::Reschedule { actor: host, scheduled_at: Some(later), duration_minutes: None };
    bench.rooms.execute(&room.to_string(), command, CommandMetadata::by(host.to_string())).await?;
    let appended = started.elapsed();
    let filter = "kind = 'meeting_rescheduled'";
    let seen =
        wait_rows(&bench.stack.db, "notifications", filter, n, Duration::from_millis(2), started + PATIENCE).await?;
    let committed = seen - started;
    let open = sockets.len();
    let (received, last) = sockets.wait_all(PATIENCE).await;
    let last = last.map(|at| at - started);

    let pg = baseline_postgres(&bench.stack.db, n).await?;
    let nats = baseline_nats(bench, n).await?;

    println!("{:<56} {:>10} {:>16}", "", "ms", "notifications/s");
    println!("{:<56} {:>10.1}", "append (bus.execute)", ms(appended));
    row(&format!("all {n} rows committed in notifications"), committed, n);
    match last {
        Some(last) => row(&format!("last socket got its notification ({received}/{open})"), last, n),
        None => println!("no socket got its notification"),
    }
    row(&format!("baseline: Postgres, {n} rows in one transaction"), pg, n);
    row(&format!("baseline: core NATS, {n} messages to {n} subscribers"), nats, n);
    println!();
    Ok(())
}

fn row(label: &str, took: Duration, n: usize) {
    println!("{label:<56} {:>10.1} {:>16.0}", ms(took), n as f64 / took.as_secs_f64());
}

/// Lobby sockets, each reporting when its `meeting_rescheduled` notification came.
struct Sockets {
    readers: tokio::task::JoinSet<()>,
    arrivals: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    open: usize,
}

impl Sockets {
    fn len(&self) -> usize {
        self.open
    }

    /// How many sockets got the notification within `patience`, and when the last did.
    async fn wait_all(mut self, patience: Duration) -> (usize, Option<Instant>) {
        let deadline = Instant::now() + patience;
        let (mut received, mut last) = (0, None);
        while received < self.open {
            match tokio::time::timeout_at(deadline, self.arrivals.recv()).await {
                Ok(Some(at)) => {
                    received += 1;
                    last = Some(last.map_or(at, |seen: Instant| seen.max(at)));
                }
                _ => break,
            }
        }
        self.readers.abort_all();
        (received, last)
    }
}

async fn open_lobby_sockets(bench: &Bench, users: &[UserId], sessions: &[Uuid]) -> anyhow::Result<Sockets> {
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = tokio::task::JoinSet::new();
    let mut opening = futures::stream::iter(users.iter().zip(sessions))
        .map(|(user, session)| {
            let url = format!("ws://{}/ws?token={}", bench.stack.address, access_token(*user, *session));
            async move {
                let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
                // The first message is the unread count, sent once the socket's feed is subscribed.
                let first = socket.next().await.context("closed at once")??;
                anyhow::ensure!(first.to_text().unwrap_or("").contains("unread_count"), "first message: {first:?}");
                anyhow::Ok(socket)
            }
        })
        .buffer_unordered(50);
    let mut open = 0;
    while let Some(socket) = opening.next().await {
        let mut socket = match socket {
            Ok(socket) => socket,
            Err(error) => {
                println!("  a lobby socket failed to open: {error:#}");
                continue;
            }
        };
        open += 1;
        let arrived = arrived.clone();
        readers.spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = &message
                    && text.as_str().contains("\"notification\"")
                    && text.as_str().contains("meeting_rescheduled")
                {
                    let _ = arrived.send(Instant::now());
                }
            }
        });
    }
    Ok(Sockets { readers, arrivals, open })
}

fn access_token(user: UserId, session: Uuid) -> String {
    let now = Utc::now().timestamp();
    let claims = json!({ "sub": user.as_uuid(), "sid": session, "role": "member", "iat": now, "exp": now + 3600, "iss": "rapat" });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
        .expect("HS256 signing with an in-memory key")
}

/// `n` rows shaped as the projection writes them (one INSERT from UNNEST), in one
/// transaction, into a copy of `notifications`. The median of five tries.
async fn baseline_postgres(db: &PgPool, n: usize) -> anyhow::Result<Duration> {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_notifications (LIKE notifications INCLUDING ALL)")
        .execute(db)
        .await?;
    let payload = json!({
        "room": { "id": Uuid::new_v4(), "name": "Bench room" },
        "actor": { "id": Uuid::new_v4(), "name": "Bench Host" },
        "scheduledAt": Utc::now(),
        "scheduleSequence": 1,
    });
    let mut tries = Vec::new();
    for _ in 0..5 {
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let recipients: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let started = Instant::now();
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO bench_notifications (id, recipient_id, kind, created_at, payload, event_id, stream_sequence, \
             in_app, email, push) \
             SELECT n.id, n.recipient, 'meeting_rescheduled', now(), $3, $4, 1, TRUE, TRUE, FALSE \
             FROM UNNEST($1::uuid[], $2::uuid[]) AS n(id, recipient) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ids)
        .bind(&recipients)
        .bind(&payload)
        .bind(Uuid::new_v4())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tries.push(started.elapsed());
    }
    tries.sort();
    Ok(tries[tries.len() / 2])
}

/// `n` subscribers on one connection (as a gateway holds its users' feeds), one
/// subject each; another connection publishes one message to each. Until the last
/// arrives.
async fn baseline_nats(bench: &Bench, n: usize) -> anyhow::Result<Duration> {
    let subscriber = rapat_commands::connect(&bench.stack.nats_url).await?;
    let publisher = rapat_commands::connect(&bench.stack.nats_url).await?;
    // Live-notification subjects of users nobody else subscribes to.
    let subjects: Vec<String> =
        (0..n).map(|_| bench.stack.namespace.user_notifications_subject(Uuid::new_v4())).collect();
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = tokio::task::JoinSet::new();
    for subject in &subjects {
        let mut subscription = subscriber.subscribe(subject.clone()).await?;
        let arrived = arrived.clone();
        readers.spawn(async move {
            if subscription.next().await.is_some() {
                let _ = arrived.send(Instant::now());
            }
        });
    }
    subscriber.flush().await?;
    // About the size of a notification row as the projector publishes it.
    let body = vec![b'x'; 600];
    let started = Instant::now();
    for subject in &subjects {
        publisher.publish(subject.clone(), body.clone().into()).await?;
    }
    publisher.flush().await?;
    let mut last = started;
    for _ in 0..n {
        let at = tokio::time::timeout(PATIENCE, arrivals.recv()).await?.context("a subscriber ended")?;
        last = last.max(at);
    }
    readers.abort_all();
    Ok(last - started)
}

// ---------------------------------------------------------------- reminders

async fn reminder_lateness(bench: &Bench, n: usize, lead: Duration) -> anyhow::Result<()> {
    let room_size = ROOM_SIZE.min(n);
    let rooms = n.div_ceil(room_size);
    let n = rooms * room_size;
    println!("== reminder lateness: {n} reminders ({rooms} rooms of {room_size}) due over 60 s ==");
    let setup = Instant::now();
    let stop = CancellationToken::new();
    let nats = rapat_commands::connect(&bench.stack.nats_url).await?;
    let scheduler = ReminderScheduler::open(
        nats,
        bench.stack.event_store.clone(),
        bench.stack.db.clone(),
        ReminderConfig::default(),
    )
    .await?;
    tokio::spawn(scheduler.run(stop.clone()));

    let users: Vec<UserId> = (0..n).map(|_| UserId::new_random()).collect();
    let room_ids: Vec<RoomId> = (0..rooms).map(|_| RoomId::new_random()).collect();
    bench.remind_at_the_start(&users).await?;
    // Invited before the rooms exist, so the rooms' creation arms every timer at once
    // (and nobody gets an invitation notification the bench does not need).
    for (room, people) in room_ids.iter().zip(users.chunks(room_size)) {
        bench.invite_all(*room, people[0], &people[1..]).await?;
    }
    let room_uuids: Vec<Uuid> = room_ids.iter().map(RoomId::as_uuid).collect();
    wait_count(&bench.stack.db, "notification_settings", "user_id = ANY($1)", &user_uuids(&users), n).await?;
    wait_count(&bench.stack.db, "notification_invitees", "room_id = ANY($1)", &room_uuids, n - rooms).await?;

    // Room i's meeting (and so its reminders) at first + i × 60 s / rooms.
    let first = Utc::now() + chrono::Duration::from_std(lead)?;
    let step = chrono::Duration::milliseconds(60_000 / rooms as i64);
    let due: Vec<DateTime<Utc>> = (0..rooms).map(|i| first + step * i as i32).collect();
    let created = futures::stream::iter(room_ids.iter().zip(&due).zip(users.chunks(room_size)))
        .map(|((room, at), people)| bench.create_room(*room, people[0], *at))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    wait_count(&bench.stack.db, "reminder_timers", "room_id = ANY($1)", &room_uuids, n).await?;
    let slack = (first - Utc::now()).num_milliseconds() as f64 / 1e3;
    println!("setup {:.1} s; first reminder due in {slack:.1} s", setup.elapsed().as_secs_f64());
    anyhow::ensure!(slack > 0.0, "setup overran the first due moment: raise BENCH_LEAD_SECONDS");

    // The baseline: a task per reminder sleeping until the same moment, meanwhile.
    let mut sleepers = tokio::task::JoinSet::new();
    for at in &due {
        for _ in 0..room_size {
            let at = *at;
            let wake = Instant::now() + (at - Utc::now()).to_std().unwrap_or_default();
            sleepers.spawn(async move {
                tokio::time::sleep_until(wake).await;
                (Utc::now() - at).num_microseconds().unwrap_or(i64::MAX)
            });
        }
    }
    let last_due = *due.last().context("no room")?;
    let patience = (last_due - Utc::now()).to_std().unwrap_or_default() + PATIENCE;
    let every = Duration::from_millis(250);
    let deadline = Instant::now() + patience;
    let fired =
        wait_rows(&bench.stack.db, "audit_events", "event_type = 'MeetingReminderDue'", n, every, deadline).await;
    if let Err(error) = &fired {
        println!("  {error:#}");
    }
    // The notifications projection follows the stream on its own consumer: let it
    // catch up before counting its rows.
    let kind = "kind = 'meeting_reminder'";
    let _ = wait_rows(&bench.stack.db, "notifications", kind, n, every, Instant::now() + PATIENCE).await;
    stop.cancel();
    let mut baseline = Vec::with_capacity(n);
    while let Some(lateness) = sleepers.join_next().await {
        baseline.push(lateness?);
    }
    let mut lateness: Vec<i64> = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM occurred_at - (payload->>'dueAt')::timestamptz) * 1e6)::bigint \
         FROM audit_events WHERE event_type = 'MeetingReminderDue'",
    )
    .fetch_all(&bench.stack.db)
    .await?;
    let late: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE event_type = 'MeetingReminderDue' AND (payload->>'late')::boolean",
    )
    .fetch_one(&bench.stack.db)
    .await?;
    let notified: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE kind = 'meeting_reminder'")
        .fetch_one(&bench.stack.db)
        .await?;

    println!("{:<40} {:>11} {:>9} {:>9} {:>9}", "lateness (ms)", "fired", "p50", "p99", "max");
    let fired_count = lateness.len();
    print_lateness("ReminderScheduler (stored event - due)", &mut lateness, n);
    print_lateness("baseline: tokio sleep_until", &mut baseline, n);
    println!("{fired_count} of {n} MeetingReminderDue stored ({late} marked late), {notified} reminder notifications");
    println!();
    Ok(())
}

fn print_lateness(label: &str, micros: &mut [i64], of: usize) {
    micros.sort_unstable();
    let at =
        |q: f64| micros.get(((micros.len() as f64 - 1.0) * q).round() as usize).map_or(f64::NAN, |v| *v as f64 / 1e3);
    let fired = format!("{}/{of}", micros.len());
    println!("{label:<40} {fired:>11} {:>9.1} {:>9.1} {:>9.1}", at(0.50), at(0.99), at(1.0));
}

fn user_uuids(users: &[UserId]) -> Vec<Uuid> {
    users.iter().map(UserId::as_uuid).collect()
}

// ---------------------------------------------------------------- waiting

/// Waits until `table` has `expected` rows matching `filter`, `$1` being `keys`.
async fn wait_count(db: &PgPool, table: &str, filter: &str, keys: &[Uuid], expected: usize) -> anyhow::Result<()> {
    let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(keys).fetch_one(db).await?;
        if count as usize >= expected {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "gave up waiting: {count} of {expected} for `{sql}`");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts `notifications` (or `audit_events`) rows matching `filter` every `every`
/// until there are `expected`; answers when that was seen. A slower `every` while
/// reminders fire keeps the counting from loading the database being measured.
async fn wait_rows(
    db: &PgPool,
    table: &str,
    filter: &str,
    expected: usize,
    every: Duration,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
    loop {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(db).await?;
        if count as usize >= expected {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "gave up waiting: {count} of {expected} for `{sql}`");
        tokio::time::sleep(every).await;
    }
}

fn ms(took: Duration) -> f64 {
    took.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- the app

/// The bench stack (`support`), and command buses of its own for setup.
struct Bench {
    stack: Stack,
    rooms: CommandBus<Room>,
    invitations: CommandBus<Invitation>,
    sessions: CommandBus<Session>,
    settings: CommandBus<UserSettings>,
}

impl Bench {
    async fn start() -> anyhow::Result<Self> {
        let stack = Stack::start(|_| {}).await?;
        let (nats, event_store) = (&stack.nats, &stack.event_store);
        let services = DomainServices::new(Arc::new(NoPasswords));
        let rooms = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, services);
        let invitations = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ());
        let sessions = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ());
        let settings = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ());
        Ok(Self { stack, rooms, invitations, sessions, settings })
    }

    async fn create_room(&self, room: RoomId, host: UserId, at: DateTime<Utc>) -> anyhow::Result<()> {
        let command = RoomCommand::Create {
            host,
            name: RoomName::parse("Bench meeting".to_string())?,
            description: RoomDescription::parse("Fan-out and reminders".to_string())?,
            password: None,
            max_users: MaxUsers::parse(MaxUsers::LIMIT)?,
            scheduled_at: Some(Timestamp::parse(at)?),
            duration_minutes: None,
        };
        self.rooms.execute(&room.to_string(), command, CommandMetadata::by(host.to_string())).await?;
        Ok(())
    }

    async fn invite_all(&self, room: RoomId, host: UserId, users: &[UserId]) -> anyhow::Result<()> {
        let issued = futures::stream::iter(users)
            .map(|user| async move {
                let invitee = Invitee::User(*user);
                let id = Invitation::id_for(room, &invitee).to_string();
                let command = InvitationCommand::Issue { room, host, invitee };
                self.invitations.execute(&id, command, CommandMetadata::by(host.to_string())).await
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for outcome in issued {
            outcome?;
        }
        Ok(())
    }

    /// A login session for each user, as a login stores it; answers their ids.
    async fn start_sessions(&self, users: &[UserId]) -> anyhow::Result<Vec<Uuid>> {
        let ids: Vec<Uuid> = users.iter().map(|_| Uuid::new_v4()).collect();
        let expires_at = Utc::now() + chrono::Duration::days(1);
        let started = futures::stream::iter(users.iter().zip(&ids))
            .map(|(user, id)| async move {
                let refresh = RefreshToken::new(*id, rand::random()).hash();
                let command = SessionCommand::Start { user: *user, refresh, expires_at };
                self.sessions.execute(&id.to_string(), command, CommandMetadata::by(user.to_string())).await
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for outcome in started {
            outcome?;
        }
        Ok(ids)
    }

    /// Everyone's reminder lead 0 minutes: reminded at the meeting's start.
    async fn remind_at_the_start(&self, users: &[UserId]) -> anyhow::Result<()> {
        let updated = futures::stream::iter(users)
            .map(|user| async move {
                let changes = SettingsChanges {
                    reminder_minutes: Some(ReminderMinutes::parse(0)?),
                    ..SettingsChanges::default()
                };
                let command = SettingsCommand::Update { user: *user, changes };
                self.settings.execute(&user.to_string(), command, CommandMetadata::by(user.to_string())).await?;
                anyhow::Ok(())
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        updated.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        Ok(())
    }

    async fn stop(self) {
        self.stack.stop().await;
    }
}
