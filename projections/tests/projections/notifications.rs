//! The notifications projection: who is told what, with which channels; reminder
//! timers; one row per (event, recipient) with two projector processes on one
//! database and namespace; the same rows after a rebuild; the live push.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use rapat_domain::account::Email;
use rapat_domain::contacts::ContactListEvent;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::inbox::InboxEvent;
use rapat_domain::invitation::InvitationEvent;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use rapat_domain::settings::{Channels, NotificationKind, SettingsEvent};
use rapat_projections::projector::load_checkpoint;
use rapat_projections::queries::notifications::{NotificationRow, notification_id};
use rapat_projections::{Projection, rebuild};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestEnv, now};

/// The people of one meeting.
struct Meeting {
    room: RoomId,
    host: UserId,
    /// Invited as an account; accepts, joins first, is added as a contact.
    ana: UserId,
    /// Invited by email, bound to an account later; joins, is removed.
    budi: UserId,
    /// Invited as an account; declines.
    citra: UserId,
    scheduled_at: DateTime<Utc>,
}

/// In-app notifications one [`meeting`] makes (and one more with in-app off).
const IN_APP_PER_MEETING: i64 = 8;
const ROWS_PER_MEETING: i64 = 9;

fn issued(room: RoomId, host: UserId, invitee: Option<UserId>, email: Option<&str>) -> InvitationEvent {
    InvitationEvent::InvitationIssued {
        room_id: room,
        host_id: host,
        invitee_id: invitee,
        email: email.map(|email| Email::parse(email.to_owned()).expect("valid email")),
    }
}

/// A meeting from scheduling to removal, as the write side would store it.
async fn meeting(env: &TestEnv) -> Meeting {
    let m = Meeting {
        room: RoomId::new_random(),
        host: UserId::new_random(),
        ana: UserId::new_random(),
        budi: UserId::new_random(),
        citra: UserId::new_random(),
        scheduled_at: now() + TimeDelta::hours(2),
    };
    let room = m.room.as_uuid();
    let registered = json!({"email": format!("host-{}@example.com", m.host), "passwordHash": "x",
        "firstName": "Hana", "lastName": "Host", "role": "member"});
    env.append_raw("account", m.host.as_uuid(), vec![("AccountRegistered".into(), 2, registered)]).await;
    // The host wants no in-app notice of declines (the row is kept for other channels);
    // ana is reminded 30 minutes ahead.
    let host_settings = SettingsEvent::UserSettingsUpdated {
        user_id: m.host,
        timezone: None,
        locale: None,
        reminder_minutes: None,
        notifications: BTreeMap::from([(
            NotificationKind::InvitationDeclined,
            Channels { in_app: false, email: true, push: true },
        )]),
    };
    env.append("settings", m.host.as_uuid(), &[host_settings]).await;
    let ana_settings = SettingsEvent::UserSettingsUpdated {
        user_id: m.ana,
        timezone: None,
        locale: None,
        reminder_minutes: Some(30.try_into().expect("in range")),
        notifications: BTreeMap::new(),
    };
    env.append("settings", m.ana.as_uuid(), &[ana_settings]).await;
    let created = RoomEvent::RoomCreated {
        host_id: m.host,
        name: RoomName::parse("Planning".into()).expect("valid name"),
        description: RoomDescription::parse("the quarter".into()).expect("valid description"),
        password_hash: None,
        max_users: MaxUsers::parse(10).expect("valid max"),
        scheduled_at: Some(m.scheduled_at),
        duration_minutes: None,
    };
    env.append("room", room, &[created]).await;
    let (ana_invitation, budi_invitation, citra_invitation) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    env.append("invitation", ana_invitation, &[issued(m.room, m.host, Some(m.ana), None)]).await;
    let budi_email = format!("budi-{}@example.com", m.budi);
    env.append("invitation", budi_invitation, &[issued(m.room, m.host, None, Some(&budi_email))]).await;
    env.append("invitation", citra_invitation, &[issued(m.room, m.host, Some(m.citra), None)]).await;
    env.append("invitation", budi_invitation, &[InvitationEvent::InvitationBoundToAccount { invitee_id: m.budi }])
        .await;
    env.append("invitation", ana_invitation, &[InvitationEvent::InvitationAccepted { invitee_id: m.ana }]).await;
    env.append("invitation", citra_invitation, &[InvitationEvent::InvitationDeclined { invitee_id: m.citra }]).await;
    env.append("room", room, &[RoomEvent::ParticipantJoined { user_id: m.ana }]).await;
    env.append("room", room, &[RoomEvent::ParticipantJoined { user_id: m.budi }]).await;
    env.append("room", room, &[RoomEvent::ParticipantRemoved { user_id: m.budi, removed_by: m.host }]).await;
    env.append("contacts", m.host.as_uuid(), &[ContactListEvent::ContactAdded { owner_id: m.host, contact_id: m.ana }])
        .await;
    let due_at = m.scheduled_at - TimeDelta::minutes(10);
    let reminder = RoomEvent::MeetingReminderDue { recipient_id: m.host, schedule_sequence: 0, due_at, late: false };
    env.append("room", room, &[reminder]).await;
    m
}

/// Each (kind, recipient, inApp, email, push, read) of the meeting's notifications.
async fn rows_of(env: &TestEnv, m: &Meeting) -> Vec<(String, Uuid, bool, bool, bool, bool)> {
    let people = [m.host, m.ana, m.budi, m.citra].map(|user| user.as_uuid());
    sqlx::query_as(
        "SELECT kind, recipient_id, in_app, email, push, read_at IS NOT NULL FROM notifications \
         WHERE recipient_id = ANY($1) ORDER BY kind, recipient_id",
    )
    .bind(&people[..])
    .fetch_all(&env.pool)
    .await
    .expect("reads notifications")
}

#[tokio::test]
async fn each_event_tells_the_right_people_once_and_arms_reminders() {
    let env = TestEnv::new().await;
    let live_client = async_nats::connect(crate::support::nats_url()).await.expect("NATS");
    let mut live = live_client.subscribe(env.config.namespace.user_notifications_subject("*")).await.expect("subs");
    live_client.flush().await.expect("flushed");
    let projector = env.spawn_projector(env.pool.clone());
    let m = meeting(&env).await;
    env.wait_caught_up(Duration::from_secs(30)).await;

    let (host, ana, budi, citra) = (m.host.as_uuid(), m.ana.as_uuid(), m.budi.as_uuid(), m.citra.as_uuid());
    let mut expected = vec![
        ("contact_added".to_owned(), ana, true, true, false, false),
        ("invitation_accepted".to_owned(), host, true, true, false, false),
        ("invitation_declined".to_owned(), host, false, true, true, false),
        ("meeting_started".to_owned(), host, true, true, false, false),
        ("meeting_reminder".to_owned(), host, true, true, false, false),
        ("removed_from_room".to_owned(), budi, true, true, false, false),
        ("room_invitation".to_owned(), ana, true, true, false, false),
        ("room_invitation".to_owned(), budi, true, true, false, false),
        ("room_invitation".to_owned(), citra, true, true, false, false),
    ];
    expected.sort();
    assert_eq!(rows_of(&env, &m).await, expected);

    // The payload names the room and the actor, with the schedule for an invitation.
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM notifications WHERE recipient_id = $1 AND kind = 'room_invitation'")
            .bind(ana)
            .fetch_one(&env.pool)
            .await
            .expect("reads");
    assert_eq!(payload["room"]["id"], m.room.to_string());
    assert_eq!(payload["room"]["name"], "Planning");
    assert_eq!(payload["actor"], json!({ "id": m.host, "name": "Hana Host" }));
    let scheduled: DateTime<Utc> = serde_json::from_value(payload["scheduledAt"].clone()).expect("a time");
    assert_eq!(scheduled, m.scheduled_at);

    // Ana (30 minutes ahead) and budi (pending) are still to be reminded; the host
    // was; citra declined.
    let timers: Vec<(Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT recipient_id, schedule_sequence, due_at FROM reminder_timers WHERE room_id = $1 ORDER BY recipient_id",
    )
    .bind(m.room.as_uuid())
    .fetch_all(&env.pool)
    .await
    .expect("reads timers");
    let mut expected_timers =
        vec![(ana, 0, m.scheduled_at - TimeDelta::minutes(30)), (budi, 0, m.scheduled_at - TimeDelta::minutes(10))];
    expected_timers.sort();
    assert_eq!(timers, expected_timers);
    // As the reminder scheduler reads them.
    let due = rapat_projections::queries::reminders::due(&env.pool, m.scheduled_at, 10).await.expect("reads");
    let mut due: Vec<(Uuid, i64, DateTime<Utc>)> =
        due.into_iter().map(|t| (t.recipient_id.as_uuid(), t.schedule_sequence, t.due_at)).collect();
    due.sort();
    assert_eq!(due, expected_timers);
    let next = rapat_projections::queries::reminders::next_due_after(&env.pool, now()).await.expect("reads");
    assert_eq!(next, Some(m.scheduled_at - TimeDelta::minutes(30)));

    // Reading is the user's own event; the row remembers when.
    let invitation_id = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM notifications WHERE recipient_id = $1 AND kind = 'room_invitation'",
    )
    .bind(ana)
    .fetch_one(&env.pool)
    .await
    .expect("reads");
    env.append("inbox", ana, &[InboxEvent::NotificationsRead { user_id: m.ana, ids: vec![invitation_id] }]).await;
    // Ending the room disarms its reminders.
    env.append("room", m.room.as_uuid(), &[RoomEvent::RoomEnded {}]).await;
    env.wait_caught_up(Duration::from_secs(30)).await;
    let read: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM notifications WHERE recipient_id = $1 AND read_at IS NOT NULL")
            .bind(ana)
            .fetch_all(&env.pool)
            .await
            .expect("reads");
    assert_eq!(read, ["room_invitation"]);
    assert_eq!(env.count("SELECT count(*) FROM reminder_timers").await, 0);

    // Every in-app notification was pushed once, as its row.
    let mut pushed = Vec::new();
    while pushed.len() < IN_APP_PER_MEETING as usize {
        let message = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("a live notification")
            .expect("subscribed");
        let row: NotificationRow = serde_json::from_slice(&message.payload).expect("a notification row");
        assert_eq!(
            message.subject.as_str(),
            env.config.namespace.user_notifications_subject(row.recipient_id),
            "on its recipient's subject"
        );
        pushed.push(row.id);
    }
    let distinct: HashSet<Uuid> = pushed.iter().copied().collect();
    assert_eq!(distinct.len(), pushed.len(), "no push twice");
    let in_app: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>("SELECT id FROM notifications WHERE in_app")
        .fetch_all(&env.pool)
        .await
        .expect("reads")
        .into_iter()
        .collect();
    assert_eq!(distinct, in_app);
    projector.stop().await;
}

/// Every table of the notifications projection, in a stable order.
async fn snapshot(env: &TestEnv) -> Vec<Value> {
    let mut tables = Vec::new();
    for (table, order) in [
        ("notifications", "t.id"),
        ("notification_rooms", "t.room_id"),
        ("notification_invitees", "t.invitation_id"),
        ("notification_settings", "t.user_id"),
        ("notification_users", "t.user_id"),
        ("reminder_timers", "t.room_id, t.schedule_sequence, t.recipient_id"),
        ("reminders_fired", "t.room_id, t.schedule_sequence, t.recipient_id"),
    ] {
        tables.push(env.table(table, order).await);
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_and_a_rebuild_give_one_notification_per_event_and_recipient() {
    const MEETINGS: i64 = 40;
    let env = Arc::new(TestEnv::new().await);
    // Each process with its own connections, as two processes have.
    let first_pool = env.second_pool().await;
    let first = env.spawn_projector(first_pool.clone());
    let second = env.spawn_projector(env.second_pool().await);
    let publisher = {
        let env = Arc::clone(&env);
        tokio::spawn(async move {
            for _ in 0..MEETINGS {
                meeting(&env).await;
            }
        })
    };
    // Crash the active instance in the middle of the stream: the other takes over.
    let deadline = Instant::now() + Duration::from_secs(30);
    while load_checkpoint(&env.pool, Projection::Notifications).await.expect("reads").last_sequence < 150 {
        assert!(Instant::now() < deadline, "the first instance made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().await;
    // A dead process's connections die with it (and its open transaction with them).
    first_pool.close().await;
    publisher.await.expect("publisher finished");
    env.wait_caught_up(Duration::from_secs(60)).await;

    assert_eq!(env.count("SELECT count(*) FROM notifications").await, ROWS_PER_MEETING * MEETINGS);
    assert_eq!(env.count("SELECT count(*) FROM notifications WHERE in_app").await, IN_APP_PER_MEETING * MEETINGS);
    assert_eq!(
        env.count("SELECT count(*) FROM (SELECT DISTINCT event_id, recipient_id FROM notifications) d").await,
        ROWS_PER_MEETING * MEETINGS
    );
    assert_eq!(env.count("SELECT count(*) FROM reminder_timers").await, 2 * MEETINGS);
    assert_eq!(env.count("SELECT count(*) FROM reminders_fired").await, MEETINGS);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);
    let keys: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as("SELECT id, event_id, recipient_id FROM notifications")
        .fetch_all(&env.pool)
        .await
        .expect("reads");
    for (id, event, recipient) in keys {
        assert_eq!(id, notification_id(event, recipient), "the id is derived from the event and the recipient");
    }

    second.stop().await;
    let before = snapshot(&env).await;
    // `rapat rebuild notifications`: the same rows again from the stream. (Rebuilding
    // beside a running projector is `rebuild.rs`'s to show.)
    let report =
        rebuild(&env.pool, &env.jetstream, &env.config, Projection::Notifications, |_| {}).await.expect("rebuilds");
    assert!(report.events > 0);
    assert_eq!(snapshot(&env).await, before, "a rebuild gives the same rows");
}

/// (kind, recipient) of the notifications of `room`, in a stable order.
async fn kinds_in(env: &TestEnv, room: RoomId) -> Vec<(String, Uuid)> {
    sqlx::query_as(
        "SELECT kind, recipient_id FROM notifications WHERE payload -> 'room' ->> 'id' = $1 \
         ORDER BY kind, recipient_id",
    )
    .bind(room.to_string())
    .fetch_all(&env.pool)
    .await
    .expect("reads")
}

async fn timers_of(env: &TestEnv, room: RoomId) -> Vec<(i64, Uuid, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT schedule_sequence, recipient_id, due_at FROM reminder_timers WHERE room_id = $1 \
         ORDER BY schedule_sequence, recipient_id",
    )
    .bind(room.as_uuid())
    .fetch_all(&env.pool)
    .await
    .expect("reads timers")
}

#[tokio::test]
async fn reschedules_reminders_and_a_cancellation_tell_the_invitees_still_coming() {
    let env = TestEnv::new().await;
    let projector = env.spawn_projector(env.pool.clone());
    let (host, ana, citra) = (UserId::new_random(), UserId::new_random(), UserId::new_random());
    let room = RoomId::new_random();
    let first = now() + TimeDelta::hours(3);
    let created = RoomEvent::RoomCreated {
        host_id: host,
        name: RoomName::parse("Retro".into()).expect("valid name"),
        description: RoomDescription::parse("the sprint".into()).expect("valid description"),
        password_hash: None,
        max_users: MaxUsers::parse(10).expect("valid max"),
        scheduled_at: Some(first),
        duration_minutes: None,
    };
    env.append("room", room.as_uuid(), &[created]).await;
    let (ana_invitation, citra_invitation) = (Uuid::new_v4(), Uuid::new_v4());
    env.append("invitation", ana_invitation, &[issued(room, host, Some(ana), None)]).await;
    env.append("invitation", citra_invitation, &[issued(room, host, Some(citra), None)]).await;
    env.append("invitation", citra_invitation, &[InvitationEvent::InvitationDeclined { invitee_id: citra }]).await;
    let moved = first + TimeDelta::hours(1);
    let rescheduled = RoomEvent::RoomRescheduled {
        scheduled_at: moved,
        duration_minutes: None,
        schedule_sequence: 1,
        rescheduled_by: host,
    };
    env.append("room", room.as_uuid(), &[rescheduled]).await;
    env.wait_caught_up(Duration::from_secs(30)).await;

    let (h, a, c) = (host.as_uuid(), ana.as_uuid(), citra.as_uuid());
    let mut expected_timers = vec![(1, h, moved - TimeDelta::minutes(10)), (1, a, moved - TimeDelta::minutes(10))];
    expected_timers.sort();
    assert_eq!(timers_of(&env, room).await, expected_timers, "the old schedule's timers are gone");
    let payload: Value = sqlx::query_scalar("SELECT payload FROM notifications WHERE kind = 'meeting_rescheduled'")
        .fetch_one(&env.pool)
        .await
        .expect("one reschedule notice");
    let told: DateTime<Utc> = serde_json::from_value(payload["scheduledAt"].clone()).expect("a time");
    assert_eq!(told, moved);

    // The reminder of ana fires (late); one for citra, who declined, tells nobody.
    let reminder = |recipient: UserId| RoomEvent::MeetingReminderDue {
        recipient_id: recipient,
        schedule_sequence: 1,
        due_at: moved - TimeDelta::minutes(10),
        late: true,
    };
    env.append("room", room.as_uuid(), &[reminder(ana)]).await;
    env.append("room", room.as_uuid(), &[reminder(citra)]).await;
    // A change of ana's lead afterwards does not arm her fired reminder again.
    let lead = SettingsEvent::UserSettingsUpdated {
        user_id: ana,
        timezone: None,
        locale: None,
        reminder_minutes: Some(5.try_into().expect("in range")),
        notifications: BTreeMap::new(),
    };
    env.append("settings", a, &[lead]).await;
    env.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(timers_of(&env, room).await, [(1, h, moved - TimeDelta::minutes(10))]);
    let late: Value = sqlx::query_scalar("SELECT payload FROM notifications WHERE kind = 'meeting_reminder'")
        .fetch_one(&env.pool)
        .await
        .expect("one reminder");
    assert_eq!(late["late"], true);
    assert_eq!(late["scheduleSequence"], 1);

    // Cancelled: the invitees still coming are told, the timers go.
    let cancelled = [RoomEvent::RoomCancelled { cancelled_by: host }, RoomEvent::RoomEnded {}];
    env.append("room", room.as_uuid(), &cancelled).await;
    env.wait_caught_up(Duration::from_secs(30)).await;
    assert_eq!(timers_of(&env, room).await, []);
    let mut expected = vec![
        ("invitation_declined".to_owned(), h),
        ("meeting_cancelled".to_owned(), a),
        ("meeting_reminder".to_owned(), a),
        ("meeting_rescheduled".to_owned(), a),
        ("room_invitation".to_owned(), a),
        ("room_invitation".to_owned(), c),
    ];
    expected.sort();
    assert_eq!(kinds_in(&env, room).await, expected);
    projector.stop().await;
}
