//! Recording (SPEC §10) over REST: the host starts and stops it, lists the
//! recorded tracks and downloads their files (with Range); everyone else gets
//! 403; retention deletes old files. Files are put into the store the way the
//! SFU does (write a partial file, commit it, record it with
//! `FinishTrackRecording`), since the media server's writer is not part of these
//! tests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rapat_commands::{Argon2idHasher, CommandBus, JetStreamEventStore};
use rapat_domain::ids::{RoomId, TrackRecordingId, UserId};
use rapat_domain::room::{RecordingCodec, Room, TrackRecording};
use rapat_domain::services::DomainServices;
use rapat_gateway::{RecordingRetention, RetentionConfig};
use rapat_projections::{Projection, ProjectionPositions};
use rapat_recording::{LocalDirStore, RecordingKey, RecordingStore};
use reqwest::header;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, nats_url, spawn_app_with};
use crate::rooms::{join, leave, room_body};

/// A gateway whose recording store is a fresh directory of its own.
pub(crate) async fn app_with_store() -> (TestApp, LocalDirStore) {
    let dir = std::env::temp_dir().join(format!("rapat-recordings-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("store directory");
    let store = LocalDirStore::new(dir.clone());
    let app = spawn_app_with(|config| config.recordings_dir = dir).await;
    (app, store)
}

pub(crate) async fn start(app: &TestApp, user: &TestUser, room: &str) -> crate::helpers::TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/recording/start"), Some(&user.token), json!({})).await
}

pub(crate) async fn stop(app: &TestApp, user: &TestUser, room: &str) -> crate::helpers::TestResponse {
    app.post(&format!("/api/v1/rooms/{room}/recording/stop"), Some(&user.token), json!({})).await
}

async fn room_bus(app: &TestApp) -> CommandBus<Room> {
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let store = JetStreamEventStore::<Room>::open(nats, app.event_store.clone()).await.expect("store");
    CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new())))
}

/// Writes `content` as one track's file, commits it and records it on the room
/// as the SFU does; waits until the read model lists it.
async fn record_file(
    app: &TestApp,
    store: &LocalDirStore,
    room: &str,
    publisher: &TestUser,
    codec: RecordingCodec,
    started_at: DateTime<Utc>,
    content: &[u8],
) -> TrackRecordingId {
    let room = RoomId::from_uuid(room.parse().expect("room id"));
    let id = TrackRecordingId::from_uuid(Uuid::new_v4());
    let mut file = store.create(RecordingKey::for_track(room, id, codec)).expect("partial file");
    file.write_all(content).expect("write");
    let bytes = store.commit(file).expect("commit");
    let recording = TrackRecording {
        id,
        user_id: UserId::from_uuid(publisher.id.parse().expect("user id")),
        codec,
        started_at,
        duration_ms: 4_000,
        bytes,
    };
    let bus = room_bus(app).await;
    let outcome =
        rapat_commands::recording::finish_track_recording(&bus, room, recording.clone()).await.expect("recorded");
    assert_eq!(outcome.events.len(), 1, "the first report of a file is recorded");
    let again = rapat_commands::recording::finish_track_recording(&bus, room, recording).await.expect("again");
    assert!(again.events.is_empty(), "a repeated report records nothing");
    ProjectionPositions::start(app.db.clone())
        .wait_for(&[Projection::Rooms], outcome.stream_sequence, Duration::from_secs(10))
        .await
        .expect("visible");
    id
}

async fn room_events(app: &TestApp, host: &TestUser, room: &str) -> Vec<Value> {
    let events = app.get(&format!("/api/v1/rooms/{room}/events?limit=100"), &host.token).await;
    events.expect(200);
    events.data().as_array().expect("events").clone()
}

fn event_types(events: &[Value]) -> Vec<String> {
    events.iter().filter_map(|event| event["eventType"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn the_host_starts_and_stops_recording_and_the_room_shows_it() {
    let (app, _store) = app_with_store().await;
    let host = app.new_user("Ana").await;
    let guest = app.new_user("Budi").await;
    let room = app.create_room(&host, room_body("Recorded")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);

    start(&app, &guest, &room).await.expect_error(403, "not_host");
    stop(&app, &host, &room).await.expect_error(409, "not_recording");

    let started = start(&app, &host, &room).await;
    started.expect(200);
    assert_eq!(started.data()["recording"], true, "{:#}", started.body);
    let read = app.get(&format!("/api/v1/rooms/{room}"), &guest.token).await;
    assert_eq!(read.data()["recording"], true, "everyone can see the room is recorded");
    start(&app, &host, &room).await.expect_error(409, "already_recording");
    stop(&app, &guest, &room).await.expect_error(403, "not_host");

    let stopped = stop(&app, &host, &room).await;
    stopped.expect(200);
    assert_eq!(stopped.data()["recording"], false);

    // The host leaving stops a recording (an explicit leave).
    start(&app, &host, &room).await.expect(200);
    leave(&app, &host, &room).await.expect(200);
    let read = app.get(&format!("/api/v1/rooms/{room}"), &guest.token).await;
    assert_eq!(read.data()["recording"], false, "{:#}", read.body);

    let events = room_events(&app, &host, &room).await;
    let recording: Vec<String> =
        event_types(&events).into_iter().filter(|kind| kind.starts_with("Recording")).collect();
    assert_eq!(recording, ["RecordingStarted", "RecordingStopped", "RecordingStarted", "RecordingStopped"]);
    let last_stop = events.iter().rev().find(|event| event["eventType"] == "RecordingStopped").expect("a stop");
    assert_eq!(last_stop["payload"]["reason"], "hostLeft", "{last_stop:#}");
}

#[tokio::test]
async fn the_host_lists_and_downloads_recorded_tracks_with_ranges_and_others_get_403() {
    let (app, store) = app_with_store().await;
    let host = app.new_user("Ana").await;
    let guest = app.new_user("Budi").await;
    let room = app.create_room(&host, room_body("Recorded")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    join(&app, &guest, &room, json!({})).await.expect(200);
    start(&app, &host, &room).await.expect(200);

    let audio: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let started_at = Utc::now() - chrono::Duration::seconds(5);
    let audio_id = record_file(&app, &store, &room, &guest, RecordingCodec::Opus, started_at, &audio).await;
    let video_id = record_file(&app, &store, &room, &host, RecordingCodec::Vp8, started_at, b"webm bytes").await;

    let listed = app.get(&format!("/api/v1/rooms/{room}/recordings"), &host.token).await;
    listed.expect(200);
    let entries = listed.data().as_array().expect("a list").clone();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let audio_entry = entries.iter().find(|entry| entry["id"] == audio_id.to_string()).expect("audio listed");
    assert_eq!(audio_entry["userId"], guest.id);
    assert_eq!(audio_entry["kind"], "audio");
    assert_eq!(audio_entry["codec"], "opus");
    assert_eq!(audio_entry["durationMs"], 4_000);
    assert_eq!(audio_entry["bytes"], 10_000);
    assert!(audio_entry["startedAt"].is_string());
    let video_entry = entries.iter().find(|entry| entry["id"] == video_id.to_string()).expect("video listed");
    assert_eq!((&video_entry["kind"], &video_entry["codec"]), (&json!("video"), &json!("vp8")));

    app.get(&format!("/api/v1/rooms/{room}/recordings"), &guest.token).await.expect_error(403, "not_host");
    let audio_path = format!("/api/v1/rooms/{room}/recordings/{audio_id}");
    app.get(&audio_path, &guest.token).await.expect_error(403, "not_host");
    let unknown = format!("/api/v1/rooms/{room}/recordings/{}", Uuid::new_v4());
    app.get(&unknown, &host.token).await.expect_error(404, "recording_not_found");

    let whole = download(&app, &host, &audio_path, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()[header::CONTENT_TYPE], "audio/ogg");
    assert_eq!(whole.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.bytes().await.expect("body").as_ref(), audio.as_slice());

    let part = download(&app, &host, &audio_path, Some("bytes=1000-1499")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 1000-1499/10000");
    assert_eq!(part.headers()[header::CONTENT_TYPE], "audio/ogg");
    assert_eq!(part.bytes().await.expect("body").as_ref(), &audio[1000..1500]);

    let beyond = download(&app, &host, &audio_path, Some("bytes=20000-")).await;
    assert_eq!(beyond.status(), 416);

    let video = download(&app, &host, &format!("/api/v1/rooms/{room}/recordings/{video_id}"), None).await;
    assert_eq!(video.headers()[header::CONTENT_TYPE], "video/webm");
    assert_eq!(video.bytes().await.expect("body").as_ref(), b"webm bytes");
}

async fn download(app: &TestApp, user: &TestUser, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(format!("{}{path}", app.base_url)).bearer_auth(&user.token);
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    request.send().await.expect("answers")
}

#[tokio::test]
async fn retention_deletes_old_recordings_and_keeps_recent_ones() {
    let (app, store) = app_with_store().await;
    let host = app.new_user("Ana").await;
    let room = app.create_room(&host, room_body("Recorded")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    start(&app, &host, &room).await.expect(200);
    let old_start = Utc::now() - chrono::Duration::days(40);
    let old = record_file(&app, &store, &room, &host, RecordingCodec::Opus, old_start, b"old").await;
    let recent = record_file(&app, &store, &room, &host, RecordingCodec::Opus, Utc::now(), b"recent").await;
    // The room's end does not touch its files.
    crate::rooms::end(&app, &host, &room).await.expect(200);

    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let config = RetentionConfig { keep_for: Some(Duration::from_secs(30 * 24 * 3600)), ..Default::default() };
    let retention =
        RecordingRetention::open(nats, app.event_store.clone(), app.db.clone(), Arc::new(store.clone()), config)
            .await
            .expect("retention");
    let cutoff = Utc::now() - chrono::Duration::days(30);
    assert_eq!(retention.expire_started_before(cutoff).await.expect("expired"), 1);

    let room_id = RoomId::from_uuid(room.parse().expect("room id"));
    let old_key = RecordingKey::for_track(room_id, old, RecordingCodec::Opus);
    assert_eq!(store.download(&old_key).expect("look up"), None, "the old file is gone");
    let recent_key = RecordingKey::for_track(room_id, recent, RecordingCodec::Opus);
    assert!(store.download(&recent_key).expect("look up").is_some(), "the recent file is kept");

    // The expiry reaches the read model: the list and the download leave it out.
    let listed = wait_for_list_len(&app, &host, &room, 1).await;
    assert_eq!(listed[0]["id"], recent.to_string());
    app.get(&format!("/api/v1/rooms/{room}/recordings/{old}"), &host.token)
        .await
        .expect_error(404, "recording_not_found");

    // A second pass finds nothing more to do.
    assert_eq!(retention.expire_started_before(cutoff).await.expect("expired"), 0);
    std::fs::remove_dir_all(PathBuf::from(store.dir())).expect("clean up");
}

async fn wait_for_list_len(app: &TestApp, host: &TestUser, room: &str, len: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = app.get(&format!("/api/v1/rooms/{room}/recordings"), &host.token).await;
        listed.expect(200);
        let entries = listed.data().as_array().expect("a list").clone();
        if entries.len() == len || tokio::time::Instant::now() > deadline {
            assert_eq!(entries.len(), len, "{entries:#?}");
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
