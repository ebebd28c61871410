//! Given/when/then tests of the room aggregate, one per rule; the schedule's
//! (reschedule, cancel, reminders) are in `tests/schedule.rs`.
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::services::testing::MarkedHasher;

const HOST: UserId = user(1);
const ALICE: UserId = user(2);
const BOB: UserId = user(3);

const fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

fn room() -> TestFramework<Room> {
    TestFramework::with(MarkedHasher::services())
}

fn password(raw: &str) -> Password {
    Password::parse_for_room(raw.to_owned()).expect("valid room password")
}

fn name(raw: &str) -> RoomName {
    RoomName::parse(raw.to_owned()).expect("valid room name")
}

fn max(n: u32) -> MaxUsers {
    MaxUsers::parse(n).expect("valid maximum")
}

fn created_with(password: Option<&str>, max_users: u32) -> RoomEvent {
    RoomEvent::RoomCreated {
        host_id: HOST,
        name: name("Standup"),
        description: RoomDescription::default(),
        password_hash: password.map(MarkedHasher::hash_of),
        max_users: max(max_users),
        scheduled_at: None,
        duration_minutes: None,
    }
}

fn created() -> RoomEvent {
    created_with(None, 10)
}

fn joined(user: UserId) -> RoomEvent {
    RoomEvent::ParticipantJoined { user_id: user }
}

fn join(user: UserId, offered: Option<&str>) -> RoomCommand {
    RoomCommand::Join { user, password: offered.map(password), invited: false }
}

fn settings(actor: UserId) -> RoomCommand {
    settings_with(actor, None, None)
}

fn settings_with(actor: UserId, password: Option<PasswordChange>, max_users: Option<MaxUsers>) -> RoomCommand {
    RoomCommand::UpdateSettings { actor, name: None, description: None, password, max_users }
}

/// One command of every kind, each valid for a running room with ALICE in it.
fn every_command() -> Vec<RoomCommand> {
    vec![
        settings(HOST),
        join(BOB, None),
        RoomCommand::Leave { user: ALICE },
        RoomCommand::MuteParticipant { actor: HOST, target: ALICE },
        RoomCommand::AllowUnmute { actor: HOST, target: ALICE },
        RoomCommand::RemoveParticipant { actor: HOST, target: ALICE },
        RoomCommand::SetAudio { user: ALICE, muted: true },
        RoomCommand::SetVideo { user: ALICE, on: true },
        RoomCommand::SetScreenShare { user: ALICE, sharing: true },
        RoomCommand::End { actor: HOST },
        schedule::reschedule(HOST, Some(schedule::at(9)), None),
        schedule::fire(ALICE, 0),
        RoomCommand::StartRecording { actor: HOST },
        RoomCommand::StopRecording { actor: HOST },
    ]
}

mod recording;
mod schedule;

#[test]
fn create_hashes_the_password_and_happens_once() {
    let create = RoomCommand::Create {
        host: HOST,
        name: name("Standup"),
        description: RoomDescription::default(),
        password: Some(password("secret")),
        max_users: max(10),
        scheduled_at: None,
        duration_minutes: None,
    };
    let created = created_with(Some("secret"), 10);
    room().given_no_previous_events().when(create.clone()).then_expect_events(vec![created.clone()]);
    room().given(vec![created]).when(create).then_expect_error(RoomError::AlreadyExists);
}

#[test]
fn every_command_needs_an_existing_room() {
    for command in every_command() {
        room().given_no_previous_events().when(command).then_expect_error(RoomError::NotFound);
    }
}

#[test]
fn every_command_is_refused_once_the_room_ended() {
    for command in every_command() {
        room()
            .given(vec![created(), joined(ALICE), RoomEvent::RoomEnded {}])
            .when(command)
            .then_expect_error(RoomError::Ended);
    }
}

#[test]
fn update_settings_records_only_what_changed() {
    let command = RoomCommand::UpdateSettings {
        actor: HOST,
        name: Some(name("Retro")),
        description: Some(RoomDescription::default()),
        password: Some(PasswordChange::Set(password("newpass"))),
        max_users: Some(max(10)),
    };
    let expected = RoomEvent::RoomSettingsUpdated {
        name: Some(name("Retro")),
        description: None,
        password_hash: Some(MarkedHasher::hash_of("newpass")),
        password_cleared: false,
        max_users: None,
    };
    room().given(vec![created()]).when(command).then_expect_events(vec![expected]);
}

#[test]
fn update_settings_can_clear_the_password() {
    let command = settings_with(HOST, Some(PasswordChange::Clear), None);
    let expected = RoomEvent::RoomSettingsUpdated {
        name: None,
        description: None,
        password_hash: None,
        password_cleared: true,
        max_users: None,
    };
    room().given(vec![created_with(Some("secret"), 10)]).when(command).then_expect_events(vec![expected]);
}

#[test]
fn update_settings_that_change_nothing_record_nothing() {
    let same = RoomCommand::UpdateSettings {
        actor: HOST,
        name: Some(name("Standup")),
        description: None,
        password: Some(PasswordChange::Set(password("secret"))),
        max_users: Some(max(10)),
    };
    room().given(vec![created_with(Some("secret"), 10)]).when(same).then_expect_events(vec![]);
    let clear_nothing = settings_with(HOST, Some(PasswordChange::Clear), None);
    room().given(vec![created()]).when(clear_nothing).then_expect_events(vec![]);
}

#[test]
fn update_settings_is_for_the_host_only() {
    room().given(vec![created()]).when(settings(ALICE)).then_expect_error(RoomError::NotHost);
}

#[test]
fn max_users_cannot_drop_below_the_participants() {
    let command = settings_with(HOST, None, Some(max(1)));
    room()
        .given(vec![created(), joined(ALICE), joined(BOB)])
        .when(command)
        .then_expect_error(RoomError::MaxUsersBelowParticipants);
}

#[test]
fn join_adds_a_participant() {
    room().given(vec![created()]).when(join(ALICE, None)).then_expect_events(vec![joined(ALICE)]);
}

#[test]
fn joining_twice_changes_nothing() {
    room()
        .given(vec![created_with(Some("secret"), 1), joined(ALICE)])
        .when(join(ALICE, None))
        .then_expect_events(vec![]);
}

#[test]
fn join_checks_the_password() {
    let given = || vec![created_with(Some("secret"), 10)];
    room().given(given()).when(join(ALICE, Some("secret"))).then_expect_events(vec![joined(ALICE)]);
    room().given(given()).when(join(ALICE, Some("guess"))).then_expect_error(RoomError::WrongPassword);
    room().given(given()).when(join(ALICE, None)).then_expect_error(RoomError::WrongPassword);
}

#[test]
fn the_host_joins_without_the_password() {
    room().given(vec![created_with(Some("secret"), 10)]).when(join(HOST, None)).then_expect_events(vec![joined(HOST)]);
}

#[test]
fn a_full_room_refuses_newcomers() {
    room().given(vec![created_with(None, 1), joined(ALICE)]).when(join(BOB, None)).then_expect_error(RoomError::Full);
}

#[test]
fn leave_removes_a_participant_once() {
    let left = RoomEvent::ParticipantLeft { user_id: ALICE };
    room()
        .given(vec![created(), joined(ALICE)])
        .when(RoomCommand::Leave { user: ALICE })
        .then_expect_events(vec![left]);
    room().given(vec![created()]).when(RoomCommand::Leave { user: ALICE }).then_expect_events(vec![]);
}

#[test]
fn the_host_mutes_a_participant() {
    let mute = || RoomCommand::MuteParticipant { actor: HOST, target: ALICE };
    let muted = RoomEvent::ParticipantMutedByHost { user_id: ALICE, muted_by: HOST };
    room().given(vec![created(), joined(ALICE)]).when(mute()).then_expect_events(vec![muted.clone()]);
    room().given(vec![created(), joined(ALICE), muted]).when(mute()).then_expect_events(vec![]);
}

fn host_muted(user: UserId) -> RoomEvent {
    RoomEvent::ParticipantMutedByHost { user_id: user, muted_by: HOST }
}

fn audio(user: UserId, muted: bool) -> RoomCommand {
    RoomCommand::SetAudio { user, muted }
}

#[test]
fn a_participant_the_host_muted_cannot_unmute_themselves() {
    let given = vec![created(), joined(ALICE), host_muted(ALICE)];
    room().given(given.clone()).when(audio(ALICE, false)).then_expect_error(RoomError::MutedByHost);
    // Muting is what already is: nothing to record.
    room().given(given).when(audio(ALICE, true)).then_expect_events(vec![]);
}

#[test]
fn the_host_mutes_a_participant_who_had_muted_themselves_and_that_holds() {
    let self_muted = RoomEvent::ParticipantAudioChanged { user_id: ALICE, muted: true };
    let given = vec![created(), joined(ALICE), self_muted];
    let mute = RoomCommand::MuteParticipant { actor: HOST, target: ALICE };
    room().given(given.clone()).when(mute).then_expect_events(vec![host_muted(ALICE)]);
    room()
        .given([given, vec![host_muted(ALICE)]].concat())
        .when(audio(ALICE, false))
        .then_expect_error(RoomError::MutedByHost);
}

#[test]
fn the_hosts_allow_lifts_the_mute_without_unmuting() {
    let given = vec![created(), joined(ALICE), host_muted(ALICE)];
    let allow = || RoomCommand::AllowUnmute { actor: HOST, target: ALICE };
    let allowed = RoomEvent::ParticipantUnmuteAllowed { user_id: ALICE, allowed_by: HOST };
    room().given(given.clone()).when(allow()).then_expect_events(vec![allowed.clone()]);

    let after = [given, vec![allowed]].concat();
    let mut state = Room::default();
    after.iter().cloned().for_each(|event| state.apply(event));
    assert!(!state.is_muted_by_host(ALICE));
    assert_eq!(state.participant(ALICE).map(|p| p.audio_muted), Some(true), "still muted until they unmute");
    // Allowing again changes nothing; now they unmute themselves.
    room().given(after.clone()).when(allow()).then_expect_events(vec![]);
    let unmuted = RoomEvent::ParticipantAudioChanged { user_id: ALICE, muted: false };
    room().given(after).when(audio(ALICE, false)).then_expect_events(vec![unmuted]);
}

#[test]
fn allowing_to_unmute_is_for_the_host_and_for_participants() {
    let given = || vec![created(), joined(ALICE), joined(BOB), host_muted(ALICE)];
    let by_bob = RoomCommand::AllowUnmute { actor: BOB, target: ALICE };
    room().given(given()).when(by_bob).then_expect_error(RoomError::NotHost);
    let by_alice = RoomCommand::AllowUnmute { actor: ALICE, target: ALICE };
    room().given(given()).when(by_alice).then_expect_error(RoomError::NotHost);
    let absent = RoomCommand::AllowUnmute { actor: HOST, target: user(9) };
    room().given(given()).when(absent).then_expect_error(RoomError::NotAParticipant);
}

#[test]
fn leaving_and_joining_again_does_not_lift_the_hosts_mute() {
    let left = RoomEvent::ParticipantLeft { user_id: ALICE };
    let given = vec![created(), joined(ALICE), host_muted(ALICE), left];
    room().given(given).when(join(ALICE, None)).then_expect_events(vec![joined(ALICE), host_muted(ALICE)]);
}

#[test]
fn a_history_where_the_participant_unmuted_over_the_host_still_loads_as_lived() {
    // Recorded before the host's mute held.
    let unmuted = RoomEvent::ParticipantAudioChanged { user_id: ALICE, muted: false };
    let given = vec![created(), joined(ALICE), host_muted(ALICE), unmuted];
    room().given(given.clone()).when(audio(ALICE, false)).then_expect_events(vec![]);
    let muted = RoomEvent::ParticipantAudioChanged { user_id: ALICE, muted: true };
    room().given(given).when(audio(ALICE, true)).then_expect_events(vec![muted]);
}

#[test]
fn muting_is_for_the_host_and_for_participants() {
    let by_bob = RoomCommand::MuteParticipant { actor: BOB, target: ALICE };
    room().given(vec![created(), joined(ALICE), joined(BOB)]).when(by_bob).then_expect_error(RoomError::NotHost);
    let absent = RoomCommand::MuteParticipant { actor: HOST, target: ALICE };
    room().given(vec![created()]).when(absent).then_expect_error(RoomError::NotAParticipant);
}

#[test]
fn the_host_removes_a_participant_who_must_join_again() {
    let remove = RoomCommand::RemoveParticipant { actor: HOST, target: ALICE };
    let removed = RoomEvent::ParticipantRemoved { user_id: ALICE, removed_by: HOST };
    let given = vec![created_with(Some("secret"), 10), joined(ALICE)];
    room().given(given.clone()).when(remove).then_expect_events(vec![removed.clone()]);
    let after = [given, vec![removed]].concat();
    room().given(after.clone()).when(join(ALICE, None)).then_expect_error(RoomError::WrongPassword);
    room().given(after).when(join(ALICE, Some("secret"))).then_expect_events(vec![joined(ALICE)]);
}

#[test]
fn removing_is_for_the_host_and_for_other_participants() {
    let given = || vec![created(), joined(HOST), joined(ALICE)];
    let by_alice = RoomCommand::RemoveParticipant { actor: ALICE, target: HOST };
    room().given(given()).when(by_alice).then_expect_error(RoomError::NotHost);
    let self_removal = RoomCommand::RemoveParticipant { actor: HOST, target: HOST };
    room().given(given()).when(self_removal).then_expect_error(RoomError::CannotRemoveHost);
    let absent = RoomCommand::RemoveParticipant { actor: HOST, target: BOB };
    room().given(given()).when(absent).then_expect_error(RoomError::NotAParticipant);
}

#[test]
fn participants_change_their_media() {
    let cases = [
        (
            RoomCommand::SetAudio { user: ALICE, muted: true },
            RoomEvent::ParticipantAudioChanged { user_id: ALICE, muted: true },
        ),
        (
            RoomCommand::SetVideo { user: ALICE, on: true },
            RoomEvent::ParticipantVideoChanged { user_id: ALICE, on: true },
        ),
        (
            RoomCommand::SetScreenShare { user: ALICE, sharing: true },
            RoomEvent::ParticipantScreenShareChanged { user_id: ALICE, sharing: true },
        ),
    ];
    for (command, event) in cases {
        room().given(vec![created(), joined(ALICE)]).when(command.clone()).then_expect_events(vec![event.clone()]);
        room().given(vec![created(), joined(ALICE), event]).when(command).then_expect_events(vec![]);
    }
}

#[test]
fn media_changes_are_for_participants_only() {
    let commands = [
        RoomCommand::SetAudio { user: BOB, muted: true },
        RoomCommand::SetVideo { user: BOB, on: true },
        RoomCommand::SetScreenShare { user: BOB, sharing: true },
    ];
    for command in commands {
        room().given(vec![created(), joined(ALICE)]).when(command).then_expect_error(RoomError::NotAParticipant);
    }
}

#[test]
fn the_host_ends_the_room() {
    let end = |actor| RoomCommand::End { actor };
    room().given(vec![created(), joined(HOST)]).when(end(HOST)).then_expect_events(vec![RoomEvent::RoomEnded {}]);
    room().given(vec![created()]).when(end(ALICE)).then_expect_error(RoomError::NotHost);
}

#[test]
fn state_follows_the_events_and_survives_a_snapshot() {
    let mut room = Room::default();
    assert!(!room.is_created());
    let events = [
        created_with(Some("secret"), 10),
        joined(ALICE),
        joined(BOB),
        RoomEvent::ParticipantVideoChanged { user_id: ALICE, on: true },
        RoomEvent::ParticipantMutedByHost { user_id: BOB, muted_by: HOST },
    ];
    for event in events {
        room.apply(event);
    }
    assert!(room.is_created() && !room.is_ended() && room.has_password());
    assert_eq!((room.host(), room.participant_count(), room.max_users()), (Some(HOST), 2, max(10)));
    let alice = ParticipantState { audio_muted: false, video_on: true, screen_sharing: false };
    assert_eq!(room.participant(ALICE), Some(&alice));
    assert_eq!(room.participant(BOB).map(|p| p.audio_muted), Some(true));
    assert!(room.is_muted_by_host(BOB) && !room.is_muted_by_host(ALICE));

    let snapshot = serde_json::to_value(&room).expect("a room serialises");
    let restored: Room = serde_json::from_value(snapshot).expect("a snapshot loads");
    assert_eq!(restored, room);

    room.apply(RoomEvent::RoomEnded {});
    assert!(room.is_ended() && !room.is_participant(ALICE));
}
