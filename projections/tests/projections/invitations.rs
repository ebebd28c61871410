//! The invitations and settings read models: what each event does to its rows,
//! the queries the REST API runs on them, and a rebuild that reproduces them.

use std::collections::BTreeMap;
use std::time::Duration;

use rapat_domain::account::Email;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::invitation::{Invitation, InvitationEvent, Invitee};
use rapat_domain::settings::{Channels, Locale, NotificationKind, ReminderMinutes, SettingsEvent, Timezone};
use rapat_projections::queries::invitations::{self, InvitationState};
use rapat_projections::queries::settings;
use rapat_projections::{Projection, rebuild};

use crate::support::TestEnv;

fn email(address: &str) -> Email {
    Email::parse(address.to_owned()).expect("valid email")
}

#[tokio::test]
async fn invitations_follow_issue_answers_binding_and_revocation() {
    let env = TestEnv::new().await;
    let (host, budi, dewi) = (UserId::new_random(), UserId::new_random(), UserId::new_random());
    let room = RoomId::new_random();
    let to_budi = Invitation::id_for(room, &Invitee::User(budi));
    let to_dewi = Invitation::id_for(room, &Invitee::Email(email("dewi@example.com")));
    let issued =
        |invitee_id, email| InvitationEvent::InvitationIssued { room_id: room, host_id: host, invitee_id, email };
    env.append("invitation", to_budi.as_uuid(), &[issued(Some(budi), None)]).await;
    env.append("invitation", to_budi.as_uuid(), &[InvitationEvent::InvitationAccepted { invitee_id: budi }]).await;
    env.append("invitation", to_dewi.as_uuid(), &[issued(None, Some(email("dewi@example.com")))]).await;

    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    assert!(invitations::accepted(&env.pool, room, budi).await.expect("query"));
    assert!(!invitations::accepted(&env.pool, room, dewi).await.expect("query"));
    let unbound = invitations::unbound_to_email(&env.pool, "dewi@example.com").await.expect("query");
    assert_eq!(unbound.iter().map(|row| row.id).collect::<Vec<_>>(), [to_dewi]);
    assert!(invitations::holds_unrevoked(&env.pool, room, dewi, "dewi@example.com").await.expect("query"));

    env.append("invitation", to_dewi.as_uuid(), &[InvitationEvent::InvitationBoundToAccount { invitee_id: dewi }])
        .await;
    env.append("invitation", to_dewi.as_uuid(), &[InvitationEvent::InvitationDeclined { invitee_id: dewi }]).await;
    env.append("invitation", to_budi.as_uuid(), &[InvitationEvent::InvitationRevoked { revoked_by: host }]).await;
    env.wait_caught_up(Duration::from_secs(20)).await;
    let rows = invitations::of_room(&env.pool, room).await.expect("query");
    let by_id: BTreeMap<_, _> = rows.iter().map(|row| (row.id, row)).collect();
    assert_eq!((by_id[&to_budi].status, by_id[&to_budi].invitee()), (InvitationState::Revoked, Some(budi)));
    assert_eq!((by_id[&to_dewi].status, by_id[&to_dewi].invitee()), (InvitationState::Declined, Some(dewi)));
    assert_eq!(by_id[&to_dewi].email.as_deref(), Some("dewi@example.com"));
    assert!(!invitations::accepted(&env.pool, room, budi).await.expect("query"), "revoked");
    assert!(invitations::unbound_to_email(&env.pool, "dewi@example.com").await.expect("query").is_empty());

    // Issued anew: pending again, and the email invitation keeps its account.
    env.append("invitation", to_dewi.as_uuid(), &[issued(None, Some(email("dewi@example.com")))]).await;
    env.wait_caught_up(Duration::from_secs(20)).await;
    let again = invitations::by_id(&env.pool, to_dewi).await.expect("query").expect("a row");
    assert_eq!((again.status, again.invitee()), (InvitationState::Pending, Some(dewi)));

    projector.stop().await;
    let before = env.table("invitations", "t.id").await;
    rebuild(&env.pool, &env.jetstream, &env.config, Projection::Invitations, |_| {}).await.expect("rebuilds");
    assert_eq!(env.table("invitations", "t.id").await, before);
}

#[tokio::test]
async fn settings_keep_what_was_set_and_read_with_the_defaults() {
    let env = TestEnv::new().await;
    let (ana, budi) = (UserId::new_random(), UserId::new_random());
    let quiet = Channels { in_app: true, email: false, push: false };
    let update = |timezone, reminder_minutes, notifications| SettingsEvent::UserSettingsUpdated {
        user_id: ana,
        timezone,
        locale: None,
        reminder_minutes,
        notifications,
    };
    let first = update(
        Some(Timezone::parse("Asia/Jakarta").expect("a zone")),
        None,
        BTreeMap::from([(NotificationKind::ContactAdded, quiet)]),
    );
    env.append("settings", ana.as_uuid(), &[first]).await;
    let second = update(
        None,
        Some(ReminderMinutes::parse(30).expect("in range")),
        BTreeMap::from([(NotificationKind::MeetingReminder, quiet)]),
    );
    env.append("settings", ana.as_uuid(), &[second]).await;

    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    let read = settings::effective(&env.pool, ana).await.expect("query");
    assert_eq!(read.timezone.as_str(), "Asia/Jakarta");
    assert_eq!(read.locale, Locale::english());
    assert_eq!(read.reminder_minutes.get(), 30);
    assert_eq!(read.channels(NotificationKind::ContactAdded), quiet);
    assert_eq!(read.channels(NotificationKind::MeetingReminder), quiet);
    assert_eq!(read.channels(NotificationKind::RoomInvitation), Channels::DEFAULT);
    assert_eq!(read.notifications.len(), NotificationKind::ALL.len());
    let nobody = settings::effective(&env.pool, budi).await.expect("query");
    assert_eq!((nobody.timezone.as_str(), nobody.reminder_minutes), ("UTC", ReminderMinutes::DEFAULT));

    projector.stop().await;
    let before = env.table("user_settings", "t.user_id").await;
    rebuild(&env.pool, &env.jetstream, &env.config, Projection::Settings, |_| {}).await.expect("rebuilds");
    assert_eq!(env.table("user_settings", "t.user_id").await, before);
}
