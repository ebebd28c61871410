use rapat_commands::{CommandMetadata, EVENT_TYPES_HEADER};
use rapat_domain::envelope::StoredCommit;
use rapat_domain::ids::UserId;
use rapat_domain::room::{Room, RoomEvent};

use crate::support::{TestStore, create_room, join};

#[tokio::test]
async fn events_round_trip_with_their_envelope() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, host) = create_room(&bus, 5).await;
    let guest = UserId::new_random();
    let metadata = CommandMetadata::by(guest.to_string())
        .with_correlation_id("req-42")
        .with_trace_header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let command_id = metadata.command_id;
    let outcome = bus.execute(&room_id, join(guest), metadata).await.expect("join succeeds");
    assert_eq!(outcome.events, vec![RoomEvent::ParticipantJoined { user_id: guest }]);
    assert_eq!(outcome.version, 2);

    // A second process, with nothing cached, sees the same state.
    let other = test.open::<Room>().await;
    let loaded = other.load(&room_id).await.expect("loads");
    assert_eq!(loaded.state.aggregate, outcome.state);
    assert_eq!(loaded.state.version, 2);
    assert!(loaded.state.aggregate.is_participant(guest));
    assert_eq!(loaded.state.aggregate.host(), Some(host));

    let commits = other.read_events(&room_id).await.expect("reads");
    assert_eq!(commits.len(), 2, "one message per command");
    let joined = &commits[1].1.events[0];
    assert_eq!(joined.aggregate_type, "room");
    assert_eq!(joined.aggregate_id, room_id);
    assert_eq!(joined.aggregate_version, 2);
    assert_eq!(joined.event_type, "ParticipantJoined");
    assert_eq!(joined.schema_version, 1);
    assert_eq!(joined.actor.as_deref(), Some(guest.to_string().as_str()));
    assert_eq!(joined.correlation_id.as_deref(), Some("req-42"));
    assert_eq!(joined.command_id, command_id.to_string());
    assert_eq!(joined.payload["userId"], guest.to_string());

    // The message carries the dedup id, the trace context and the event types.
    let stream = test.jetstream().get_stream(test.config.namespace.events_stream()).await.expect("stream");
    let raw = stream.get_raw_message(commits[1].0).await.expect("message");
    assert_eq!(raw.subject.as_str(), test.config.namespace.event_subject("room", &room_id));
    let header = |name: &str| raw.headers.get(name).map(|value| value.to_string());
    assert_eq!(header("Nats-Msg-Id"), Some(command_id.to_string()));
    assert_eq!(header("traceparent").as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(header(EVENT_TYPES_HEADER).as_deref(), Some("ParticipantJoined"));
    let body: StoredCommit = serde_json::from_slice(&raw.payload).expect("a stored commit");
    assert_eq!(body, commits[1].1);
}

#[tokio::test]
async fn a_rejected_command_appends_nothing_and_leaves_state_alone() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 1).await;
    let first = UserId::new_random();
    bus.execute(&room_id, join(first), CommandMetadata::system()).await.expect("first join");
    let refused = bus.execute(&room_id, join(UserId::new_random()), CommandMetadata::system()).await;
    assert!(matches!(refused, Err(rapat_commands::CommandError::Rejected(rapat_domain::room::RoomError::Full))));
    let commits = bus.store().read_events(&room_id).await.expect("reads");
    assert_eq!(commits.len(), 2);
    let loaded = bus.store().load(&room_id).await.expect("loads");
    assert_eq!(loaded.state.aggregate.participant_count(), 1);
}

#[tokio::test]
async fn a_repeated_join_is_idempotent_and_appends_nothing() {
    let test = TestStore::new().await;
    let bus = test.room_bus().await;
    let (room_id, _host) = create_room(&bus, 3).await;
    let guest = UserId::new_random();
    let first = bus.execute(&room_id, join(guest), CommandMetadata::system()).await.expect("joins");
    let again = bus.execute(&room_id, join(guest), CommandMetadata::system()).await.expect("joins again");
    assert!(again.events.is_empty());
    assert_eq!(again.stream_sequence, first.stream_sequence, "nothing new to wait for");
    assert_eq!(bus.store().read_events(&room_id).await.expect("reads").len(), 2);
}
