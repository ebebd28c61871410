//! The schedule of a room: reschedule before it starts, cancel by ending it
//! unstarted, and at most one reminder per schedule and recipient.
use chrono::{DateTime, TimeZone, Utc};

use super::*;

/// Nine o'clock on a fixed day, plus `hour - 9` hours.
pub(super) fn at(hour: u32) -> Timestamp {
    Timestamp::parse(Utc.with_ymd_and_hms(2030, 5, 6, hour, 0, 0).unwrap()).unwrap()
}

fn minutes(n: u16) -> DurationMinutes {
    DurationMinutes::parse(n).unwrap()
}

pub(super) fn reschedule(actor: UserId, when: Option<Timestamp>, duration: Option<DurationMinutes>) -> RoomCommand {
    RoomCommand::Reschedule { actor, scheduled_at: when, duration_minutes: duration }
}

pub(super) fn fire(recipient: UserId, schedule_sequence: u32) -> RoomCommand {
    RoomCommand::FireReminder { recipient, schedule_sequence, due_at: due(), late: false }
}

fn due() -> DateTime<Utc> {
    at(8).get()
}

fn scheduled(hour: u32, duration: Option<u16>) -> RoomEvent {
    let RoomEvent::RoomCreated { host_id, name, description, password_hash, max_users, .. } = created() else {
        unreachable!("created() is a RoomCreated")
    };
    RoomEvent::RoomCreated {
        host_id,
        name,
        description,
        password_hash,
        max_users,
        scheduled_at: Some(at(hour).get()),
        duration_minutes: duration.map(minutes),
    }
}

fn rescheduled(hour: u32, duration: Option<u16>, sequence: u32) -> RoomEvent {
    RoomEvent::RoomRescheduled {
        scheduled_at: at(hour).get(),
        duration_minutes: duration.map(minutes),
        schedule_sequence: sequence,
        rescheduled_by: HOST,
    }
}

fn reminded(recipient: UserId, schedule_sequence: u32) -> RoomEvent {
    RoomEvent::MeetingReminderDue { recipient_id: recipient, schedule_sequence, due_at: due(), late: false }
}

#[test]
fn the_host_reschedules_a_meeting_and_each_schedule_is_numbered() {
    room()
        .given(vec![scheduled(9, Some(30))])
        .when(reschedule(HOST, Some(at(11)), None))
        .then_expect_events(vec![rescheduled(11, Some(30), 1)]);
    room()
        .given(vec![scheduled(9, Some(30)), rescheduled(11, Some(30), 1)])
        .when(reschedule(HOST, None, Some(minutes(90))))
        .then_expect_events(vec![rescheduled(11, Some(90), 2)]);
    // A room created without a time gets one.
    room()
        .given(vec![created()])
        .when(reschedule(HOST, Some(at(10)), None))
        .then_expect_events(vec![rescheduled(10, None, 1)]);
}

#[test]
fn rescheduling_to_the_same_schedule_records_nothing() {
    room()
        .given(vec![scheduled(9, Some(30))])
        .when(reschedule(HOST, Some(at(9)), Some(minutes(30))))
        .then_expect_events(vec![]);
}

#[test]
fn only_the_host_reschedules_and_only_before_the_meeting_starts() {
    room()
        .given(vec![scheduled(9, None)])
        .when(reschedule(ALICE, Some(at(10)), None))
        .then_expect_error(RoomError::NotHost);
    room()
        .given(vec![scheduled(9, None), joined(ALICE), RoomEvent::ParticipantLeft { user_id: ALICE }])
        .when(reschedule(HOST, Some(at(10)), None))
        .then_expect_error(RoomError::AlreadyStarted);
    room()
        .given(vec![scheduled(9, None), RoomEvent::RoomEnded {}])
        .when(reschedule(HOST, Some(at(10)), None))
        .then_expect_error(RoomError::Ended);
}

#[test]
fn a_duration_alone_needs_a_scheduled_room() {
    room()
        .given(vec![created()])
        .when(reschedule(HOST, None, Some(minutes(45))))
        .then_expect_error(RoomError::NotScheduled);
}

#[test]
fn ending_a_room_that_never_started_cancels_it() {
    let end = RoomCommand::End { actor: HOST };
    room()
        .given(vec![scheduled(9, None)])
        .when(end.clone())
        .then_expect_events(vec![RoomEvent::RoomCancelled { cancelled_by: HOST }, RoomEvent::RoomEnded {}]);
    room()
        .given(vec![scheduled(9, None), joined(ALICE), RoomEvent::ParticipantLeft { user_id: ALICE }])
        .when(end)
        .then_expect_events(vec![RoomEvent::RoomEnded {}]);
}

#[test]
fn a_reminder_fires_once_per_schedule_and_recipient() {
    room().given(vec![scheduled(9, None)]).when(fire(ALICE, 0)).then_expect_events(vec![reminded(ALICE, 0)]);
    room().given(vec![scheduled(9, None), reminded(ALICE, 0)]).when(fire(ALICE, 0)).then_expect_events(vec![]);
    room()
        .given(vec![scheduled(9, None), reminded(ALICE, 0)])
        .when(fire(BOB, 0))
        .then_expect_events(vec![reminded(BOB, 0)]);
    // The new schedule reminds everyone again.
    room()
        .given(vec![scheduled(9, None), reminded(ALICE, 0), rescheduled(11, None, 1)])
        .when(fire(ALICE, 1))
        .then_expect_events(vec![reminded(ALICE, 1)]);
}

#[test]
fn a_reminder_of_a_moved_cancelled_or_unscheduled_meeting_never_fires() {
    room()
        .given(vec![scheduled(9, None), rescheduled(11, None, 1)])
        .when(fire(ALICE, 0))
        .then_expect_error(RoomError::StaleSchedule);
    room()
        .given(vec![scheduled(9, None), RoomEvent::RoomCancelled { cancelled_by: HOST }, RoomEvent::RoomEnded {}])
        .when(fire(ALICE, 0))
        .then_expect_error(RoomError::Ended);
    room().given(vec![created()]).when(fire(ALICE, 0)).then_expect_error(RoomError::NotScheduled);
}

#[test]
fn an_accepted_invitation_stands_in_for_the_password() {
    let invited = RoomCommand::Join { user: ALICE, password: None, invited: true };
    room().given(vec![created_with(Some("secret"), 10)]).when(invited).then_expect_events(vec![joined(ALICE)]);
    room()
        .given(vec![created_with(Some("secret"), 10)])
        .when(join(ALICE, None))
        .then_expect_error(RoomError::WrongPassword);
}

#[test]
fn the_schedule_survives_a_snapshot() {
    let mut room = Room::default();
    for event in [scheduled(9, Some(30)), rescheduled(11, Some(45), 1), reminded(ALICE, 1)] {
        room.apply(event);
    }
    assert_eq!(room.scheduled_at(), Some(at(11).get()));
    assert_eq!((room.duration_minutes(), room.schedule_sequence()), (Some(minutes(45)), 1));
    assert!(!room.has_started());
    let restored: Room = serde_json::from_value(serde_json::to_value(&room).unwrap()).unwrap();
    assert_eq!(restored, room);
}
