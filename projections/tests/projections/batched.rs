//! Batched projections against one message at a time, on a database: the same
//! mixed stream applied one message per transaction (a rebuild in batches of one),
//! by the live projector in big batches, and by rebuilds in odd-sized batches must
//! leave the same rows; live, every notification with email on is queued once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use rapat_domain::contacts::ContactListEvent;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::invitation::InvitationEvent;
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use rapat_domain::settings::{Channels, NotificationKind, SettingsEvent};
use rapat_projections::{Projection, rebuild};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestEnv;

/// The projections whose batched path is checked here.
const BATCHED: [Projection; 3] = [Projection::Analytics, Projection::Notifications, Projection::Rooms];
const ROOMS: usize = 5;

/// Accounts, settings, scheduled rooms, invitations answered, then over three days
/// joins (several in a row, also into rooms not started yet), leaves, removals, media
/// changes, messages of two events, a rename, a reschedule, a reminder, a cancel, and
/// ends with people still in.
async fn history(env: &TestEnv) {
    let start = Utc.with_ymd_and_hms(2024, 3, 1, 21, 0, 0).single().expect("valid time");
    let host = UserId::new_random();
    let people: Vec<UserId> = (0..4).map(|_| UserId::new_random()).collect();
    for (n, user) in std::iter::once(&host).chain(&people).enumerate() {
        let registered = json!({"email": format!("user-{user}@example.com"), "passwordHash": "x",
            "firstName": format!("User{n}"), "lastName": "Batch", "role": "member"});
        env.append_raw_at("account", user.as_uuid(), vec![("AccountRegistered".into(), 2, registered)], start).await;
    }
    // One person is told of meetings by email too, and reminded 30 minutes ahead.
    let settings = SettingsEvent::UserSettingsUpdated {
        user_id: people[0],
        timezone: None,
        locale: None,
        reminder_minutes: Some(30.try_into().expect("in range")),
        notifications: BTreeMap::from([(
            NotificationKind::MeetingStarted,
            Channels { in_app: true, email: true, push: false },
        )]),
    };
    env.append_at("settings", people[0].as_uuid(), &[settings], start).await;
    let rooms: Vec<RoomId> = (0..ROOMS).map(|_| RoomId::new_random()).collect();
    for (r, room) in rooms.iter().enumerate() {
        let created = RoomEvent::RoomCreated {
            host_id: host,
            name: RoomName::parse(format!("Room {r}")).expect("valid name"),
            description: RoomDescription::parse(String::new()).expect("valid description"),
            password_hash: None,
            max_users: MaxUsers::parse(10).expect("valid max"),
            scheduled_at: Some(start + TimeDelta::hours(30 + r as i64)),
            duration_minutes: None,
        };
        env.append_at("room", room.as_uuid(), &[created], start).await;
        let invitation = Uuid::new_v4();
        let invitee = people[r % 3];
        let issued =
            InvitationEvent::InvitationIssued { room_id: *room, host_id: host, invitee_id: Some(invitee), email: None };
        env.append_at("invitation", invitation, &[issued], start).await;
        let answer = if r % 2 == 0 {
            InvitationEvent::InvitationAccepted { invitee_id: invitee }
        } else {
            InvitationEvent::InvitationDeclined { invitee_id: invitee }
        };
        env.append_at("invitation", invitation, &[answer], start).await;
    }
    let contact = ContactListEvent::ContactAdded { owner_id: host, contact_id: people[1] };
    env.append_at("contacts", host.as_uuid(), &[contact], start).await;

    for step in 0..240usize {
        let at = start + TimeDelta::minutes(17 * step as i64);
        let r = step % ROOMS;
        let room = rooms[r].as_uuid();
        let who = people[(step * 3 + r) % people.len()];
        let events = match step % 12 {
            0..=3 => vec![RoomEvent::ParticipantJoined { user_id: who }],
            4 => vec![
                RoomEvent::ParticipantJoined { user_id: who },
                RoomEvent::ParticipantAudioChanged { user_id: who, muted: true },
            ],
            5..=7 => vec![RoomEvent::ParticipantLeft { user_id: who }],
            8 => vec![RoomEvent::ParticipantRemoved { user_id: who, removed_by: host }],
            9 => vec![RoomEvent::ParticipantVideoChanged { user_id: who, on: true }],
            10 if (step / 12) % 2 == 0 => vec![RoomEvent::RoomEnded {}],
            10 => vec![RoomEvent::RoomSettingsUpdated {
                name: Some(RoomName::parse(format!("Room {r} at {step}")).expect("valid name")),
                description: None,
                password_hash: None,
                password_cleared: false,
                max_users: None,
            }],
            _ => match step % 4 {
                0 => vec![RoomEvent::RoomRescheduled {
                    scheduled_at: at + TimeDelta::hours(5),
                    duration_minutes: None,
                    schedule_sequence: u32::try_from(step).expect("small"),
                    rescheduled_by: host,
                }],
                1 => vec![RoomEvent::MeetingReminderDue {
                    recipient_id: host,
                    schedule_sequence: 0,
                    due_at: at,
                    late: false,
                }],
                2 => vec![RoomEvent::RoomCancelled { cancelled_by: host }],
                _ if step % 8 == 3 => vec![RoomEvent::ParticipantJoined { user_id: host }],
                _ => vec![RoomEvent::ParticipantLeft { user_id: host }],
            },
        };
        env.append_at("room", room, &events, at).await;
    }
}

/// Every row of the projections' tables, in a stable order.
async fn rows(env: &TestEnv) -> BTreeMap<&'static str, Value> {
    let mut rows = BTreeMap::new();
    for projection in BATCHED {
        for table in projection.tables() {
            rows.insert(*table, env.table(table, "t::text").await);
        }
    }
    rows
}

/// Notifications whose email is on, against the outbox rows queued for them: one each.
async fn emails_owed_and_queued(env: &TestEnv) -> (i64, i64) {
    let owed = env.count("SELECT count(*) FROM notifications WHERE email").await;
    let queued =
        env.count("SELECT count(*) FROM deliveries WHERE channel = 'email' AND notification_id IS NOT NULL").await;
    (owed, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_any_size_leave_what_one_message_at_a_time_leaves() {
    let live = TestEnv::new().await;
    history(&live).await;

    // One message per transaction, through the same code as the live projector.
    let mut one_by_one = live.fresh_database_on_same_stream().await;
    one_by_one.config.batch_size = 1;
    for projection in BATCHED {
        rebuild(&one_by_one.pool, &one_by_one.jetstream, &one_by_one.config, projection, |_| {})
            .await
            .expect("rebuilds one message at a time");
    }
    let expected = rows(&one_by_one).await;
    assert!(one_by_one.count("SELECT count(*) FROM notifications").await > 20, "a history that tells people");
    assert!(one_by_one.count("SELECT count(*) FROM analytics_room_days WHERE meetings_ended > 0").await > 3);

    // The whole stream is there before the live projector starts: its batches are big.
    let mut batched = live;
    batched.config.batch_size = 500;
    let projector = batched.spawn_projector(batched.pool.clone());
    batched.wait_caught_up(Duration::from_secs(60)).await;
    projector.stop().await;
    assert_eq!(rows(&batched).await, expected, "live, in big batches");
    let (owed, queued) = emails_owed_and_queued(&batched).await;
    assert!(owed > 0, "a history that owes emails");
    assert_eq!(queued, owed, "one outbox row per notification with email on");

    for size in [7, 1000] {
        let mut config = batched.config.clone();
        config.batch_size = size;
        for projection in BATCHED {
            rebuild(&batched.pool, &batched.jetstream, &config, projection, |_| {}).await.expect("rebuilds");
        }
        assert_eq!(rows(&batched).await, expected, "rebuilt in batches of {size}");
    }
}
