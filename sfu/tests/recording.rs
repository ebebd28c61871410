//! Recording (SPEC §10) end to end: real webrtc-rs peers publish real Opus and
//! VP8 (made by Debian's ffmpeg) through the SFU over DTLS/SRTP, the host starts
//! and stops the recording through the room's commands, and Debian's ffprobe
//! and ffmpeg read and decode every file the SFU wrote. Needs `ffprobe` and
//! `ffmpeg` (`infra/services.sh ffprobe-bin` installs them; RAPAT_TEST_FFPROBE
//! names the ffprobe to use).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Harness, eventually, harness, harness_with};
use rapat_domain::envelope::decode_known_event;
use rapat_domain::ids::{RoomId, TrackRecordingId};
use rapat_domain::room::{RecordingCodec, RoomCommand, RoomEvent, TrackRecording};
use rapat_sfu::loopback_client::{ClientOptions, MediaClip};
use rapat_sfu::{FinishedTrack, SfuConfig};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use uuid::Uuid;

const TEST_LIMIT: Duration = Duration::from_secs(120);

fn ffprobe() -> PathBuf {
    std::env::var_os("RAPAT_TEST_FFPROBE").map_or_else(|| PathBuf::from("ffprobe"), PathBuf::from)
}

/// The ffmpeg of the same install as ffprobe.
fn ffmpeg() -> PathBuf {
    let probe = ffprobe();
    match probe.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffmpeg"),
        _ => PathBuf::from("ffmpeg"),
    }
}

fn run(program: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|error| {
        panic!("{} runs ({error}); infra/services.sh ffprobe-bin installs it", program.display())
    })
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rapat-recording-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Two seconds of a tone as 20 ms Opus packets and of a test picture as 30 fps
/// VP8 frames (320x240) with a keyframe every `gop` frames, encoded by ffmpeg.
fn clip(dir: &Path, gop: u32) -> MediaClip {
    let ogg = dir.join("tone.ogg");
    let ivf = dir.join("picture.ivf");
    let gop = gop.to_string();
    let audio = run(
        &ffmpeg(),
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-ac",
            "2",
            "-ar",
            "48000",
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            "-frame_duration",
            "20",
            ogg.to_str().expect("path"),
        ],
    );
    assert!(audio.status.success(), "ffmpeg made Opus: {}", String::from_utf8_lossy(&audio.stderr));
    let video = run(
        &ffmpeg(),
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30:duration=2",
            "-c:v",
            "libvpx",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-b:v",
            "400k",
            "-auto-alt-ref",
            "0",
            "-lag-in-frames",
            "0",
            "-deadline",
            "realtime",
            ivf.to_str().expect("path"),
        ],
    );
    assert!(video.status.success(), "ffmpeg made VP8: {}", String::from_utf8_lossy(&video.stderr));
    let opus = ogg_packets(&std::fs::read(&ogg).expect("the .ogg"));
    let vp8 = ivf_frames(&std::fs::read(&ivf).expect("the .ivf"));
    assert!(opus.len() >= 90 && vp8.len() >= 55, "{} Opus packets, {} VP8 frames", opus.len(), vp8.len());
    MediaClip { opus, vp8, frames_per_second: 30, lose_every: None }
}

/// The audio packets of an Ogg Opus file (its two header packets left out).
fn ogg_packets(mut bytes: &[u8]) -> Vec<Bytes> {
    let mut packets = Vec::new();
    let mut partial = Vec::new();
    while bytes.len() >= 27 && &bytes[..4] == b"OggS" {
        let segments = usize::from(bytes[26]);
        let laces = &bytes[27..27 + segments];
        let mut at = 27 + segments;
        for &lace in laces {
            partial.extend_from_slice(&bytes[at..at + usize::from(lace)]);
            at += usize::from(lace);
            if lace < 255 {
                packets.push(Bytes::from(std::mem::take(&mut partial)));
            }
        }
        bytes = &bytes[at..];
    }
    packets.split_off(2.min(packets.len()))
}

/// The frames of an IVF file.
fn ivf_frames(bytes: &[u8]) -> Vec<Bytes> {
    let header = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    let mut at = header;
    let mut frames = Vec::new();
    while at + 12 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        frames.push(Bytes::copy_from_slice(&bytes[at + 12..at + 12 + size]));
        at += 12 + size;
    }
    frames
}

/// What ffprobe says of a file: (codec, duration in seconds, frames decoded).
fn probe(file: &Path) -> (String, f64, u64) {
    let output = run(
        &ffprobe(),
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_name,nb_read_frames",
            "-of",
            "json",
            file.to_str().expect("path"),
        ],
    );
    assert!(output.status.success(), "ffprobe reads {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ffprobe's JSON");
    let stream = &json["streams"][0];
    let codec = stream["codec_name"].as_str().unwrap_or_default().to_string();
    let duration = json["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    let frames = stream["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    (codec, duration, frames)
}

/// ffmpeg decodes the whole file without an error.
fn assert_decodes(file: &Path) {
    let output = run(&ffmpeg(), &["-v", "error", "-i", file.to_str().expect("path"), "-f", "null", "-"]);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && errors.trim().is_empty(), "{} decodes: {errors}", file.display());
}

/// The `TrackRecordingFinished` events in the room's stream.
async fn finished_tracks(h: &Harness) -> Vec<TrackRecording> {
    let commits = h.rooms.store().read_events(&h.room.to_string()).await.expect("the room's events");
    commits
        .iter()
        .flat_map(|(_, commit)| commit.events.iter())
        .filter_map(|stored| match decode_known_event::<RoomEvent>(stored) {
            Ok(Some(RoomEvent::TrackRecordingFinished { recording })) => Some(recording),
            _ => None,
        })
        .collect()
}

async fn wait_for_tracks(h: &Harness, count: usize) -> Vec<TrackRecording> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tracks = finished_tracks(h).await;
        if tracks.len() >= count || Instant::now() > deadline {
            return tracks;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn file_of(dir: &Path, room: Uuid, track: &TrackRecording) -> PathBuf {
    dir.join(room.to_string()).join(format!("{}.{}", track.id, track.codec.file_extension()))
}

/// Two publishers (Opus and VP8 each) and the host watching; returns when the
/// host gets every track, so the recording starts on flowing media.
async fn room_with_two_publishers(h: &Harness, options: ClientOptions) -> Vec<common::Client> {
    h.join(h.host).await;
    let mut clients = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let user = h.participant().await;
        clients.push(h.connect(user, options.clone()).await);
        streams.push(user.to_string());
    }
    let host = h.connect(h.host, ClientOptions::subscriber()).await;
    let stats = host.stats();
    eventually("both publishers' audio and video at the host", Duration::from_secs(20), || {
        streams.iter().all(|stream| {
            stats.packets_from(stream, RtpCodecKind::Video) > 30 && stats.packets_from(stream, RtpCodecKind::Audio) > 20
        })
    })
    .await;
    clients.push(host);
    clients
}

/// Records the room for `length`; returns how long it recorded, as the commands saw it.
async fn record_for(h: &Harness, length: Duration) -> Duration {
    h.command(RoomCommand::StartRecording { actor: h.host }).await;
    let started = Instant::now();
    tokio::time::sleep(length).await;
    h.command(RoomCommand::StopRecording { actor: h.host }).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_meeting_gives_one_file_per_track_that_ffprobe_reads_at_its_recorded_length() {
    tokio::time::timeout(TEST_LIMIT, async {
        let dir = scratch_dir("meeting");
        let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
        config.workers = 2;
        config.recordings_dir = dir.join("store");
        let h = harness_with(config.clone()).await;
        // A keyframe in every frame: the video file starts with the recording's first frame.
        let media = Arc::new(clip(&dir, 1));
        let _clients =
            room_with_two_publishers(&h, ClientOptions { clip: Some(media), ..ClientOptions::publisher() }).await;

        let recorded = record_for(&h, Duration::from_secs(6)).await;
        let tracks = wait_for_tracks(&h, 4).await;
        assert_eq!(tracks.len(), 4, "a file for each publisher's audio and video: {tracks:?}");
        for codec in [RecordingCodec::Opus, RecordingCodec::Vp8] {
            assert_eq!(tracks.iter().filter(|track| track.codec == codec).count(), 2, "{codec:?}");
        }
        for track in &tracks {
            let file = file_of(&config.recordings_dir, h.room, track);
            let (codec, duration, frames) = probe(&file);
            assert_eq!(codec, track.codec.as_str(), "{}", file.display());
            let error = (duration - recorded.as_secs_f64()).abs() / recorded.as_secs_f64();
            println!(
                "{}: {codec}, {duration:.3} s for {recorded:?} recorded ({:.2}% off), {frames} frames, {} bytes",
                file.display(),
                error * 100.0,
                track.bytes
            );
            assert!(error <= 0.02, "{codec} lasts {duration} s; recorded {recorded:?}");
            let reported = track.duration_ms as f64 / 1000.0;
            assert!((reported - duration).abs() <= 0.05, "the event says {reported} s, ffprobe {duration} s");
            assert_eq!(std::fs::metadata(&file).expect("the file").len(), track.bytes);
            assert!(frames > 0);
            assert_decodes(&file);
        }
        let unrecorded = config.recordings_dir.join(".unrecorded");
        eventually("no file is left waiting to be recorded", Duration::from_secs(5), || {
            std::fs::read_dir(&unrecorded).map_or(true, |mut entries| entries.next().is_none())
        })
        .await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_losing_five_percent_of_its_packets_still_gives_decodable_files() {
    tokio::time::timeout(TEST_LIMIT, async {
        let dir = scratch_dir("lossy");
        let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
        config.workers = 2;
        config.recordings_dir = dir.join("store");
        let h = harness_with(config.clone()).await;
        // A keyframe a second: after a loss the recording waits for the next.
        let media = MediaClip { lose_every: Some(20), ..clip(&dir, 30) };
        let options = ClientOptions { clip: Some(Arc::new(media)), ..ClientOptions::publisher() };
        let _clients = room_with_two_publishers(&h, options).await;

        record_for(&h, Duration::from_secs(4)).await;
        let tracks = wait_for_tracks(&h, 4).await;
        assert_eq!(tracks.len(), 4, "{tracks:?}");
        for track in &tracks {
            let file = file_of(&config.recordings_dir, h.room, track);
            let (codec, duration, frames) = probe(&file);
            println!("{}: {codec}, {duration:.3} s, {frames} frames decoded", file.display());
            assert_eq!(codec, track.codec.as_str());
            assert!(frames > 20, "{codec}: {frames} frames");
            assert_decodes(&file);
        }
        assert_eq!(h.sfu.handle().recording_packets_dropped(), 0, "the recording thread kept up");
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
    .await
    .expect("the test finishes in time");
}

/// A file committed by an SFU that stopped (or lost NATS for good) before its
/// room had the event is recorded by the next SFU on the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_file_an_earlier_sfu_left_unrecorded_is_recorded_when_the_next_one_starts() {
    tokio::time::timeout(TEST_LIMIT, async {
        let h = harness().await;
        let dir = scratch_dir("left-over");
        let recording = TrackRecording {
            id: TrackRecordingId::new_random(),
            user_id: h.host,
            codec: RecordingCodec::Opus,
            started_at: chrono::Utc::now(),
            duration_ms: 4_000,
            bytes: 40_960,
        };
        let left_over = FinishedTrack { room: RoomId::from_uuid(h.room), recording: recording.clone() };
        let entry = dir.join(".unrecorded").join(format!("{}.json", recording.id));
        std::fs::create_dir_all(entry.parent().expect("a parent")).expect("the entry's directory");
        std::fs::write(&entry, serde_json::to_vec(&left_over).expect("JSON")).expect("the entry");

        let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
        config.workers = 1;
        config.recordings_dir = dir.clone();
        let _next = h.another_sfu_node_with(config).await;
        assert_eq!(wait_for_tracks(&h, 1).await, vec![recording]);
        eventually("the entry is removed once recorded", Duration::from_secs(5), || !entry.exists()).await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
    .await
    .expect("the test finishes in time");
}
