//! Given/when/then tests of recording (SPEC §10).
use chrono::TimeZone;

use super::*;

fn started() -> RoomEvent {
    RoomEvent::RecordingStarted { started_by: HOST }
}

fn stopped(stopped_by: Option<UserId>, reason: RecordingStopReason) -> RoomEvent {
    RoomEvent::RecordingStopped { stopped_by, reason }
}

fn track(n: u128) -> TrackRecording {
    TrackRecording {
        id: TrackRecordingId::from_uuid(Uuid::from_u128(100 + n)),
        user_id: ALICE,
        codec: RecordingCodec::Opus,
        started_at: Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().expect("valid time"),
        duration_ms: 10_000,
        bytes: 20_000,
    }
}

fn finished(n: u128) -> RoomEvent {
    RoomEvent::TrackRecordingFinished { recording: track(n) }
}

#[test]
fn only_the_host_starts_and_stops_recording() {
    room()
        .given(vec![created(), joined(HOST), joined(ALICE)])
        .when(RoomCommand::StartRecording { actor: ALICE })
        .then_expect_error(RoomError::NotHost);
    room()
        .given(vec![created(), joined(HOST)])
        .when(RoomCommand::StartRecording { actor: HOST })
        .then_expect_events(vec![started()]);
    room()
        .given(vec![created(), joined(HOST), joined(ALICE), started()])
        .when(RoomCommand::StopRecording { actor: ALICE })
        .then_expect_error(RoomError::NotHost);
    room()
        .given(vec![created(), joined(HOST), started()])
        .when(RoomCommand::StopRecording { actor: HOST })
        .then_expect_events(vec![stopped(Some(HOST), RecordingStopReason::Host)]);
}

#[test]
fn starting_twice_or_stopping_what_is_not_running_is_refused() {
    room()
        .given(vec![created(), joined(HOST), started()])
        .when(RoomCommand::StartRecording { actor: HOST })
        .then_expect_error(RoomError::AlreadyRecording);
    room()
        .given(vec![created(), joined(HOST)])
        .when(RoomCommand::StopRecording { actor: HOST })
        .then_expect_error(RoomError::NotRecording);
    room()
        .given(vec![created(), joined(HOST), started(), stopped(Some(HOST), RecordingStopReason::Host)])
        .when(RoomCommand::StopRecording { actor: HOST })
        .then_expect_error(RoomError::NotRecording);
}

#[test]
fn the_host_leaving_stops_the_recording_and_others_leaving_do_not() {
    room()
        .given(vec![created(), joined(HOST), joined(ALICE), started()])
        .when(RoomCommand::Leave { user: HOST })
        .then_expect_events(vec![
            RoomEvent::ParticipantLeft { user_id: HOST },
            stopped(Some(HOST), RecordingStopReason::HostLeft),
        ]);
    room()
        .given(vec![created(), joined(HOST), joined(ALICE), started()])
        .when(RoomCommand::Leave { user: ALICE })
        .then_expect_events(vec![RoomEvent::ParticipantLeft { user_id: ALICE }]);
}

#[test]
fn ending_the_room_stops_the_recording_first() {
    room()
        .given(vec![created(), joined(HOST), started()])
        .when(RoomCommand::End { actor: HOST })
        .then_expect_events(vec![stopped(None, RecordingStopReason::RoomEnded), RoomEvent::RoomEnded {}]);
    room().given(vec![created(), started()]).when(RoomCommand::End { actor: HOST }).then_expect_events(vec![
        stopped(None, RecordingStopReason::RoomEnded),
        RoomEvent::RoomCancelled { cancelled_by: HOST },
        RoomEvent::RoomEnded {},
    ]);
}

#[test]
fn a_finished_track_is_recorded_once_even_after_the_room_ended() {
    let ended = vec![
        created(),
        joined(HOST),
        started(),
        stopped(None, RecordingStopReason::RoomEnded),
        RoomEvent::RoomEnded {},
    ];
    room()
        .given(ended.clone())
        .when(RoomCommand::FinishTrackRecording { recording: track(1) })
        .then_expect_events(vec![finished(1)]);
    let mut once = ended;
    once.push(finished(1));
    room().given(once).when(RoomCommand::FinishTrackRecording { recording: track(1) }).then_expect_events(vec![]);
    room()
        .given_no_previous_events()
        .when(RoomCommand::FinishTrackRecording { recording: track(1) })
        .then_expect_error(RoomError::NotFound);
}

#[test]
fn a_track_recording_expires_once_and_only_if_it_exists() {
    let id = track(1).id;
    let expired = RoomEvent::TrackRecordingExpired { track_recording_id: id };
    room()
        .given(vec![created(), finished(1), RoomEvent::RoomEnded {}])
        .when(RoomCommand::ExpireTrackRecording { track_recording_id: id })
        .then_expect_events(vec![expired.clone()]);
    room()
        .given(vec![created(), finished(1), expired])
        .when(RoomCommand::ExpireTrackRecording { track_recording_id: id })
        .then_expect_events(vec![]);
    room()
        .given(vec![created()])
        .when(RoomCommand::ExpireTrackRecording { track_recording_id: track(2).id })
        .then_expect_events(vec![]);
}

#[test]
fn recording_events_keep_their_stored_shape() {
    let json = serde_json::to_value(finished(1)).expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({"TrackRecordingFinished": {"recording": {
            "id": "00000000-0000-0000-0000-000000000065",
            "userId": "00000000-0000-0000-0000-000000000002",
            "codec": "opus",
            "startedAt": "2026-11-27T10:00:00Z",
            "durationMs": 10000,
            "bytes": 20000
        }}})
    );
    let json = serde_json::to_value(stopped(None, RecordingStopReason::RoomEnded)).expect("serialises");
    assert_eq!(json, serde_json::json!({"RecordingStopped": {"reason": "roomEnded"}}));
}
