use std::io::Cursor;

use bytes::Bytes;
use rtc_rtp::Header;

use super::*;
use crate::vp8::tests::{keyframe_start, payload};

fn packet(ssrc: u32, sequence: u16, timestamp: u32, marker: bool, payload: Bytes) -> Arc<Packet> {
    let header = Header { ssrc, sequence_number: sequence, timestamp, marker, payload_type: 96, ..Header::default() };
    Arc::new(Packet { header, payload })
}

fn opus(ssrc: u32, sequence: u16, timestamp: u32) -> Arc<Packet> {
    packet(ssrc, sequence, timestamp, false, Bytes::from_static(&[0xf8, 0xff, 0xfe]))
}

/// A 30 fps VP8 frame in two packets.
fn vp8_frame(ssrc: u32, index: u16, keyframe: bool) -> [Arc<Packet>; 2] {
    let data = if keyframe { keyframe_start() } else { vec![0x01, 0x00, 0x00, 0x11, 0x22, 0x33] };
    let timestamp = u32::from(index) * 3000;
    let sequence = index.wrapping_mul(2);
    [
        packet(ssrc, sequence, timestamp, false, payload(true, &data[..3])),
        packet(ssrc, sequence.wrapping_add(1), timestamp, true, payload(false, &data[3..])),
    ]
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn opus_out_of_order_and_with_losses_lasts_as_long_as_was_sent() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Opus, Cursor::new(Vec::new())).expect("recorder");
    // 6 s of 20 ms packets starting near the timestamp wrap; every 20th lost;
    // pairs swapped.
    let base = u32::MAX - 48_000;
    let mut order: Vec<u16> = (0..300).filter(|n| n % 20 != 7).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for n in order {
        let sequence = 65_400u16.wrapping_add(n);
        let at = start + ms(u64::from(n) * 20);
        recorder.push(opus(1, sequence, base.wrapping_add(u32::from(n) * 960)), None, at).expect("push");
    }
    assert_eq!(recorder.packets_lost, 15, "a gap for each lost packet, once its wait is over or at the end");
    let (file, written) = recorder.finish().expect("finish");
    assert_eq!(written, Written { duration_ms: 6_000, empty: false });
    let bytes = file.into_inner();
    assert_eq!(bytes.windows(4).filter(|window| window == b"OggS").count(), 2 + 285);
}

#[test]
fn video_after_a_lost_packet_waits_for_a_keyframe_and_asks_for_one() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Vp8, Cursor::new(Vec::new())).expect("recorder");
    // 6 s at 30 fps, a keyframe every 60 frames; the second packet of frame 10 lost.
    for index in 0..=180u16 {
        let at = start + ms(u64::from(index) * 100 / 3);
        for (part, packet) in vp8_frame(1, index, index % 60 == 0).into_iter().enumerate() {
            if index == 10 && part == 1 {
                continue;
            }
            recorder.push(packet, None, at).expect("push");
        }
        if index == 30 {
            assert!(recorder.take_keyframe_request(), "the loss asked for a keyframe");
            assert!(!recorder.take_keyframe_request(), "once");
        }
    }
    assert_eq!(recorder.packets_lost, 1);
    assert_eq!(recorder.frames_dropped, 50, "frame 10 and those up to the keyframe at 60");
    let (file, written) = recorder.finish().expect("finish");
    assert_eq!(written, Written { duration_ms: 6_034, empty: false });
    assert!(file.into_inner().windows(5).any(|window| window == b"V_VP8"));
}

#[test]
fn video_without_a_keyframe_is_empty() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Vp8, Cursor::new(Vec::new())).expect("recorder");
    for index in 1..10u16 {
        for packet in vp8_frame(1, index, false) {
            recorder.push(packet, None, start).expect("push");
        }
    }
    let (file, written) = recorder.finish().expect("finish");
    assert!(written.empty);
    assert!(file.into_inner().is_empty());
}

#[test]
fn a_new_ssrc_continues_the_timeline() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Opus, Cursor::new(Vec::new())).expect("recorder");
    for n in 0..100u16 {
        recorder.push(opus(1, n, 1_000 + u32::from(n) * 960), None, start + ms(u64::from(n) * 20)).expect("push");
    }
    // The publisher restarted its sender: new SSRC, sequence and timestamps, 1 s later.
    for n in 0..100u16 {
        let at = start + ms(3_000 + u64::from(n) * 20);
        recorder.push(opus(2, 40_000 + n, 7_777_777 + u32::from(n) * 960), None, at).expect("push");
    }
    let (_, written) = recorder.finish().expect("finish");
    assert_eq!(written.duration_ms, 5_000, "2 s of audio each side of a 1 s pause");
}

#[test]
fn simulcast_records_the_highest_layer_from_its_keyframe() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Vp8, Cursor::new(Vec::new())).expect("recorder");
    // Layer 0 (SSRC 10) from the start; layer 2 (SSRC 12) from frame 15, its
    // first keyframe at frame 30.
    for index in 0..90u16 {
        let at = start + ms(u64::from(index) * 100 / 3);
        for packet in vp8_frame(10, index, index == 0) {
            recorder.push(packet, Some(0), at).expect("push");
        }
        if index >= 15 {
            for packet in vp8_frame(12, index, index == 30) {
                recorder.push(packet, Some(2), at).expect("push");
            }
        }
    }
    assert_eq!(recorder.stream, Some((12, Some(2))));
    assert_eq!(recorder.frames_dropped, 0, "the switch waited for the keyframe");
    let (_, written) = recorder.finish().expect("finish");
    assert!((2_900..=3_100).contains(&written.duration_ms), "{written:?}");
}

#[test]
fn a_recording_that_starts_mid_stream_asks_for_a_keyframe_of_the_highest_layer() {
    let start = Instant::now();
    let mut recorder = TrackRecorder::new(RecordingCodec::Vp8, Cursor::new(Vec::new())).expect("recorder");
    // Layers 0 and 2 already flowing, no keyframe in sight: the browser sends one
    // only when asked.
    let mut asked = Vec::new();
    for index in 1..31u16 {
        let at = start + ms(u64::from(index) * 100 / 3);
        for (ssrc, layer) in [(10, 0), (12, 2)] {
            for packet in vp8_frame(ssrc, index, false) {
                recorder.push(packet, Some(layer), at).expect("push");
                if recorder.take_keyframe_request() {
                    asked.push((layer, index));
                }
            }
        }
    }
    // The very first packet is the only layer heard yet; the top one is asked at
    // once when it is heard, then again every 500 ms.
    assert_eq!(asked, vec![(0, 1), (2, 1), (2, 16)], "asked on the top layer, at most every 500 ms");
    // The keyframe comes; the top layer is recorded from it.
    for index in 31..61u16 {
        let at = start + ms(u64::from(index) * 100 / 3);
        for packet in vp8_frame(12, index, index == 31) {
            recorder.push(packet, Some(2), at).expect("push");
        }
    }
    assert_eq!(recorder.stream, Some((12, Some(2))));
    // The top layer is paused: after a second of silence the low layer is asked
    // for a keyframe and taken up from it.
    asked.clear();
    for index in 61..121u16 {
        let at = start + ms(u64::from(index) * 100 / 3);
        for packet in vp8_frame(10, index, index == 100) {
            recorder.push(packet, Some(0), at).expect("push");
            if recorder.take_keyframe_request() {
                asked.push((0, index));
            }
        }
    }
    assert!(asked.first().is_some_and(|&(layer, index)| layer == 0 && index >= 90), "{asked:?}");
    assert_eq!(recorder.stream, Some((10, Some(0))));
    let (_, written) = recorder.finish().expect("finish");
    assert!((2_900..=3_000).contains(&written.duration_ms), "from frame 31 to 120: {written:?}");
}
