//! A realistic sequence of events across every aggregate type, as the write side
//! would store it.

use chrono::TimeDelta;
use rapat_domain::account::{AccountEvent, AccountStatus, Avatar, Email, PersonName, Role};
use rapat_domain::contacts::ContactListEvent;
use rapat_domain::credentials::PasswordHash;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::room::{MaxUsers, RoomDescription, RoomEvent, RoomName};
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestEnv, now};

pub struct Story {
    pub ana: UserId,
    pub budi: UserId,
    pub citra: UserId,
    pub dewi: UserId,
    /// Hosted by ana; ended.
    pub standup: RoomId,
    /// Hosted by budi; still active, with ana and dewi in it.
    pub review: RoomId,
    /// Hosted by citra; ended with nobody ever in it.
    pub empty: RoomId,
    /// ana's session: started, refreshed, revoked at logout.
    pub ana_session: Uuid,
    /// budi's session: started, still active.
    pub budi_session: Uuid,
    /// Events in the story (the audit trail's size).
    pub events: usize,
}

pub const AVATAR: &str = "data:image/png;base64,iVBORw0KGgo=";

fn registered(email: &str, first: &str, last: &str) -> AccountEvent {
    AccountEvent::AccountRegistered {
        email: Email::parse(email.into()).expect("valid email"),
        password_hash: PasswordHash::from_phc(format!("$argon2id$v=19$m=19456,t=2,p=1${email}")),
        first_name: PersonName::parse(first.into()).expect("valid name"),
        last_name: PersonName::parse(last.into()).expect("valid name"),
        role: Role::Member,
    }
}

fn created(host: UserId, name: &str, password: bool) -> RoomEvent {
    RoomEvent::RoomCreated {
        host_id: host,
        name: RoomName::parse(name.into()).expect("valid room name"),
        description: RoomDescription::parse(format!("about {name}")).expect("valid description"),
        password_hash: password.then(|| PasswordHash::from_phc("$argon2id$room".into())),
        max_users: MaxUsers::parse(10).expect("valid max"),
        scheduled_at: None,
        duration_minutes: None,
    }
}

fn joined(user: UserId) -> RoomEvent {
    RoomEvent::ParticipantJoined { user_id: user }
}

pub async fn tell(env: &TestEnv) -> Story {
    let (ana, budi, citra, dewi) =
        (UserId::new_random(), UserId::new_random(), UserId::new_random(), UserId::new_random());
    let mut events = 0;
    let account = |user: UserId| user.as_uuid();

    // Accounts: three current registrations and one written by a version-1 build
    // (no role yet).
    env.append("account", account(ana), &[registered("ana@example.com", "Ana", "Wijaya")]).await;
    env.append("account", account(budi), &[registered("budi@example.com", "Budi", "Santoso")]).await;
    env.append("account", account(citra), &[registered("citra@example.com", "Citra", "Lestari")]).await;
    let v1 = json!({"email": "dewi@example.com", "passwordHash": "$argon2id$dewi", "firstName": "Dewi", "lastName": "Anggraini"});
    env.append_raw("account", account(dewi), vec![("AccountRegistered".into(), 1, v1)]).await;
    events += 4;
    let avatar = || Some(Avatar::parse(AVATAR.into()).expect("valid avatar"));
    let profile = |first: Option<&str>, avatar: Option<Avatar>, avatar_removed: bool, status: Option<AccountStatus>| {
        AccountEvent::ProfileUpdated {
            first_name: first.map(|name| PersonName::parse(name.into()).expect("valid name")),
            last_name: None,
            avatar,
            avatar_removed,
            status,
        }
    };
    env.append("account", account(ana), &[profile(Some("Ana Maria"), avatar(), false, None)]).await;
    env.append("account", account(ana), &[profile(None, None, true, Some(AccountStatus::Busy))]).await;
    env.append("account", account(budi), &[profile(None, avatar(), false, None)]).await;
    let new_hash = AccountEvent::PasswordChanged { password_hash: PasswordHash::from_phc("$argon2id$budi-2".into()) };
    env.append("account", account(budi), &[new_hash]).await;
    env.append("account", account(citra), &[AccountEvent::StatusChanged { status: AccountStatus::Away }]).await;
    env.append("account", account(ana), &[AccountEvent::RoleGranted { role: Role::Admin }]).await;
    events += 6;

    // Contacts: ana adds three people and removes one.
    for contact in [budi, citra, dewi] {
        let added = ContactListEvent::ContactAdded { owner_id: ana, contact_id: contact };
        env.append("contacts", ana.as_uuid(), &[added]).await;
    }
    env.append("contacts", ana.as_uuid(), &[ContactListEvent::ContactRemoved { owner_id: ana, contact_id: dewi }])
        .await;
    events += 4;

    // The standup: three join, citra shares and is removed, budi leaves and comes
    // back, the settings change, the host ends it.
    let standup = RoomId::new_random();
    let room = |event: RoomEvent| [event];
    env.append("room", standup.as_uuid(), &room(created(ana, "Standup", true))).await;
    for user in [ana, budi, citra] {
        env.append("room", standup.as_uuid(), &room(joined(user))).await;
    }
    let share = RoomEvent::ParticipantScreenShareChanged { user_id: citra, sharing: true };
    env.append("room", standup.as_uuid(), &room(share)).await;
    let remove = RoomEvent::ParticipantRemoved { user_id: citra, removed_by: ana };
    env.append("room", standup.as_uuid(), &room(remove)).await;
    env.append("room", standup.as_uuid(), &room(RoomEvent::ParticipantLeft { user_id: budi })).await;
    env.append("room", standup.as_uuid(), &room(joined(budi))).await;
    let settings = RoomEvent::RoomSettingsUpdated {
        name: Some(RoomName::parse("Daily standup".into()).expect("valid")),
        description: None,
        password_hash: None,
        password_cleared: true,
        max_users: Some(MaxUsers::parse(5).expect("valid")),
    };
    env.append("room", standup.as_uuid(), &room(settings)).await;
    env.append("room", standup.as_uuid(), &room(RoomEvent::RoomEnded {})).await;
    events += 10;

    // The review, still going: ana is muted by the host and unmutes herself; dewi
    // is muted by the host and stays so, with her camera on.
    let review = RoomId::new_random();
    env.append("room", review.as_uuid(), &room(created(budi, "Review", false))).await;
    // One command, two events: the host joins at creation time.
    env.append("room", review.as_uuid(), &[joined(budi), joined(ana)]).await;
    env.append("room", review.as_uuid(), &room(joined(dewi))).await;
    let host_mute = |user| RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: budi };
    env.append("room", review.as_uuid(), &room(host_mute(ana))).await;
    let unmute = RoomEvent::ParticipantAudioChanged { user_id: ana, muted: false };
    env.append("room", review.as_uuid(), &room(unmute)).await;
    env.append("room", review.as_uuid(), &room(host_mute(dewi))).await;
    let camera = RoomEvent::ParticipantVideoChanged { user_id: dewi, on: true };
    env.append("room", review.as_uuid(), &room(camera)).await;
    events += 8;

    let empty = RoomId::new_random();
    env.append("room", empty.as_uuid(), &room(created(citra, "Empty", false))).await;
    env.append("room", empty.as_uuid(), &room(RoomEvent::RoomEnded {})).await;
    events += 2;

    // Sessions, as the session aggregate stores them (payloads by hand, so these
    // tests do not depend on the session module's types).
    let (ana_session, budi_session) = (Uuid::new_v4(), Uuid::new_v4());
    let in_an_hour = (now() + TimeDelta::hours(1)).to_rfc3339();
    let started = |user: UserId| {
        ("SessionStarted".to_owned(), 1, json!({"userId": user, "refreshHash": "hash-0", "expiresAt": in_an_hour}))
    };
    env.append_raw("session", ana_session, vec![started(ana)]).await;
    let refreshed =
        json!({"refreshHash": "hash-1", "expiresAt": (now() + TimeDelta::hours(2)).to_rfc3339(), "generation": 1});
    env.append_raw("session", ana_session, vec![("SessionRefreshed".into(), 1, refreshed)]).await;
    env.append_raw("session", ana_session, vec![("SessionRevoked".into(), 1, json!({"reason": "logout"}))]).await;
    env.append_raw("session", budi_session, vec![started(budi)]).await;
    events += 4;

    Story { ana, budi, citra, dewi, standup, review, empty, ana_session, budi_session, events }
}
