use super::*;

/// A VP8 payload: the descriptor (with a 15-bit picture id) and a frame header.
fn vp8(start: bool, keyframe: bool, height: u16) -> Vec<u8> {
    let mut payload = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x81, 0x23];
    if keyframe {
        let [w0, w1] = 1280u16.to_le_bytes();
        let [h0, h1] = height.to_le_bytes();
        payload.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]);
    } else {
        payload.extend_from_slice(&[0x11, 0x02, 0x00, 0xaa]);
    }
    payload
}

#[test]
fn a_vp8_keyframe_start_is_seen_with_its_height() {
    assert_eq!(vp8_keyframe_start(&vp8(true, true, 720)), Some(Some(720)));
    assert_eq!(vp8_keyframe_start(&vp8(true, false, 0)), None, "an interframe");
    assert_eq!(vp8_keyframe_start(&vp8(false, true, 720)), None, "not the partition's start");
    // No extension byte: the frame header follows the first byte.
    assert_eq!(vp8_keyframe_start(&[0x10, 0x50, 0x02, 0x00]), Some(None), "a keyframe with a short header");
    assert_eq!(vp8_keyframe_start(&[0x10]), None, "truncated");
    assert_eq!(vp8_keyframe_start(&[]), None);
    assert_eq!(vp8_keyframe_start(&[0x90, 0x80]), None, "picture id missing");
}

#[test]
fn h264_keyframes_alone_aggregated_and_fragmented() {
    assert_eq!(keyframe_start(CodecFamily::H264, &[0x65, 0]), Some(None), "an IDR slice");
    assert_eq!(keyframe_start(CodecFamily::H264, &[0x41, 0]), None, "a non-IDR slice");
    assert_eq!(keyframe_start(CodecFamily::H264, &[0x18, 0, 2, 0x67, 0, 0, 1, 0x68]), Some(None), "STAP-A with SPS");
    assert_eq!(keyframe_start(CodecFamily::H264, &[0x7c, 0x85]), Some(None), "FU-A start of an IDR");
    assert_eq!(keyframe_start(CodecFamily::H264, &[0x7c, 0x05]), None, "FU-A middle");
}

#[test]
fn rids_name_layers_low_to_high() {
    assert_eq!(["q", "h", "f"].map(layer_of_rid), [Some(0), Some(1), Some(2)]);
    assert_eq!(layer_of_rid("x"), None);
    assert_eq!([0, 1, 2].map(rid_of_layer), ["q", "h", "f"]);
}

fn tag(layer: u8, keyframe: bool) -> LayerTag {
    LayerTag { layer, keyframe, height: None }
}

#[test]
fn the_highest_layer_that_fits_the_shown_height_is_wanted() {
    let mut forwarder = LayerForwarder::new(90_000);
    assert_eq!(forwarder.wanted(), 2, "no constraint: full size");
    forwarder.set_max_height(Some(400));
    assert_eq!(forwarder.wanted(), 1);
    forwarder.set_max_height(Some(100));
    assert_eq!(forwarder.wanted(), 0, "the lowest at least");

    // Heights learnt from keyframes replace the assumed ones.
    let mut forwarder = LayerForwarder::new(90_000);
    let now = Instant::now();
    forwarder.handle(LayerTag { layer: 2, keyframe: true, height: Some(1080) }, 1, 0, now);
    forwarder.handle(LayerTag { layer: 1, keyframe: true, height: Some(540) }, 1, 0, now);
    forwarder.set_max_height(Some(720));
    assert_eq!(forwarder.wanted(), 1);
    forwarder.set_max_height(Some(300));
    assert_eq!(forwarder.wanted(), 0, "the lowest is taken as half the middle: 270");

    // Only the top layer seen (a browser that drops its small layers): the others scale from it.
    let mut forwarder = LayerForwarder::new(90_000);
    forwarder.handle(LayerTag { layer: 2, keyframe: true, height: Some(360) }, 1, 0, now);
    forwarder.set_max_height(Some(200));
    assert_eq!(forwarder.wanted(), 1, "180 high");
}

#[test]
fn one_layer_is_forwarded_and_a_switch_waits_for_a_keyframe_of_the_target() {
    let start = Instant::now();
    let mut forwarder = LayerForwarder::new(90_000);
    forwarder.set_max_height(Some(200));
    // Only the low layer is wanted; its interframes wait for its keyframe.
    let first = forwarder.handle(tag(0, false), 100, 9_000, start);
    assert_eq!(first, Decision { forward: None, wants_keyframe: Some(0) });
    let key = forwarder.handle(tag(0, true), 101, 12_000, start);
    assert_eq!(key, Decision { forward: Some((101, 12_000)), wants_keyframe: None });
    assert_eq!(forwarder.resend_from(), Some(101));
    assert_eq!(forwarder.handle(tag(2, true), 5_000, 700, start).forward, None, "another layer is dropped");
    assert_eq!(forwarder.handle(tag(0, false), 102, 15_000, start).forward, Some((102, 15_000)));

    // The subscriber shows it larger: the high layer, once it has a keyframe.
    forwarder.set_max_height(Some(720));
    let later = start + Duration::from_millis(33);
    let waiting = forwarder.handle(tag(2, false), 5_001, 3_700, later);
    assert_eq!(waiting, Decision { forward: None, wants_keyframe: Some(2) });
    let meanwhile = forwarder.handle(tag(0, false), 103, 18_000, later);
    assert_eq!(meanwhile.forward, Some((103, 18_000)), "the old layer goes on until the switch");
    let later = later + Duration::from_millis(10);
    let switched = forwarder.handle(tag(2, true), 5_002, 6_700, later);
    // Sequence continues by one; the timestamp by the 10 ms since the last sent (900 ticks).
    assert_eq!(switched.forward, Some((104, 18_900)));
    assert_eq!(forwarder.current(), Some(2));
    assert_eq!(forwarder.resend_from(), Some(104), "nothing before the new layer's keyframe is worth resending");
    assert_eq!(forwarder.handle(tag(2, false), 5_003, 9_700, later).forward, Some((105, 21_900)));
    assert_eq!(forwarder.handle(tag(0, false), 104, 21_000, later).forward, None, "the old layer stops");
    assert_eq!(forwarder.handle(tag(2, false), 5_001, 3_700, later).forward, None, "from before the switch");
}

#[test]
fn a_layer_that_no_longer_fits_stops_after_the_frame_in_flight_until_the_switch() {
    let mut now = Instant::now();
    let mut forwarder = LayerForwarder::new(90_000);
    // Layers at 150, 500 and 1,200 kbit/s, each frame in two packets.
    let frame = |forwarder: &mut LayerForwarder, n: u16, now: Instant, budget: u64| {
        let timestamp = u32::from(n) * 3_000;
        let mut forwarded = Vec::new();
        for (layer, bps) in [(0u8, 150_000u64), (1, 500_000), (2, 1_200_000)] {
            for part in 0..2u16 {
                forwarder.observe(layer, (bps / 8 / 60) as usize, Some(budget), now);
                let tag = tag(layer, n == 0 && part == 0);
                forwarded.push(forwarder.handle(tag, n * 2 + part, timestamp, now));
            }
        }
        forwarded
    };
    for n in 0..60 {
        frame(&mut forwarder, n, now, 3_000_000);
        now += Duration::from_millis(33);
    }
    assert_eq!(forwarder.current(), Some(2));
    // The downlink narrows in the middle of a full-layer frame: the frame's
    // second packet still goes (a frame cut short is lost whole)...
    let timestamp = 60 * 3_000;
    forwarder.observe(2, 2_500, Some(3_000_000), now);
    assert!(forwarder.handle(tag(2, false), 120, timestamp, now).forward.is_some());
    forwarder.observe(2, 2_500, Some(300_000), now);
    assert_eq!(forwarder.wanted(), 0, "the quarter layer fits");
    assert!(forwarder.handle(tag(2, false), 121, timestamp, now).forward.is_some(), "the frame in flight ends");
    // ...the next ones do not, while the quarter layer's keyframe is asked for.
    now += Duration::from_millis(33);
    let next = frame(&mut forwarder, 61, now, 300_000);
    assert!(next.iter().all(|decision| decision.forward.is_none()), "{next:?}");
    assert_eq!(next[4].wants_keyframe, Some(0));
    // The keyframe switches, and the sequence numbers run on from the last sent.
    let switched = forwarder.handle(tag(0, true), 124, 62 * 3_000, now + Duration::from_millis(33));
    assert_eq!(switched.forward.map(|(sequence, _)| sequence), Some(122));
    assert_eq!(forwarder.current(), Some(0));
}

#[test]
fn sequence_numbers_and_timestamps_wrap_across_a_switch() {
    let now = Instant::now();
    let mut forwarder = LayerForwarder::new(90_000);
    forwarder.set_max_height(Some(180));
    assert_eq!(forwarder.handle(tag(0, true), u16::MAX, u32::MAX - 100, now).forward, Some((u16::MAX, u32::MAX - 100)));
    forwarder.set_max_height(None);
    forwarder.handle(tag(2, false), 7, 50, now);
    let switched = forwarder.handle(tag(2, true), 8, 60, now);
    assert_eq!(switched.forward, Some((0, u32::MAX - 99)), "one on, one tick on");
    assert_eq!(forwarder.handle(tag(2, false), 9, 3_060, now).forward, Some((1, 2_900)));
}

#[test]
fn a_paused_layer_gives_way_to_the_nearest_live_one() {
    let start = Instant::now();
    let mut forwarder = LayerForwarder::new(90_000);
    forwarder.handle(tag(0, false), 1, 0, start);
    assert_eq!(forwarder.target(start), 2, "the other layers' first packets are still to come");
    assert_eq!(forwarder.needed(start), None, "nothing to pause yet");
    for layer in 0..3 {
        forwarder.handle(tag(layer, false), 1, 0, start);
    }
    assert_eq!(forwarder.target(start), 2);
    // Only the low and middle layers keep coming.
    let later = start + Duration::from_secs(2);
    forwarder.handle(tag(0, false), 2, 0, later);
    forwarder.handle(tag(1, false), 2, 0, later);
    assert_eq!(forwarder.target(later), 1);
    forwarder.set_max_height(Some(180));
    let much_later = later + Duration::from_secs(2);
    forwarder.handle(tag(2, false), 3, 0, much_later);
    assert_eq!(forwarder.target(much_later), 2, "only the high one is live: better than nothing");
    assert_eq!(forwarder.needed(much_later), Some((0, 2)));
    let silent = much_later + Duration::from_secs(2);
    assert_eq!(forwarder.needed(silent), Some((0, 2)), "nothing arrives: every layer is needed");
}

#[test]
fn a_probe_pads_only_after_the_newest_frame_end_never_inside_a_frame() {
    let mut now = Instant::now();
    let mut forwarder = LayerForwarder::new(90_000);
    let (mut sequence, mut timestamp) = ([0u16; 3], 0u32);
    // One 30 fps frame of each layer (150, 500 and 1,200 kbit/s, one packet each).
    let mut frame = |forwarder: &mut LayerForwarder, now: Instant, budget: u64, keyframe: bool| {
        timestamp = timestamp.wrapping_add(3_000);
        for (layer, bps) in [150_000u64, 500_000, 1_200_000].into_iter().enumerate() {
            forwarder.observe(layer as u8, (bps / 8 / 30) as usize, Some(budget), now);
            sequence[layer] = sequence[layer].wrapping_add(1);
            let forwarded = forwarder.handle(tag(layer as u8, keyframe), sequence[layer], timestamp, now).forward;
            if forwarded.is_some() {
                // Each packet ends its frame: padding may follow it, as the peer asks.
                forwarder.padding(sequence[layer], now);
            }
        }
        sequence[0]
    };
    for n in 0..60 {
        frame(&mut forwarder, now, 2_000_000, n == 0);
        now += Duration::from_millis(33);
    }
    // 300 kbit/s: the quarter layer (from its next keyframe), then a probe after the hold.
    frame(&mut forwarder, now, 300_000, true);
    let mut waited = Duration::ZERO;
    while !forwarder.probing() {
        now += Duration::from_millis(33);
        waited += Duration::from_millis(33);
        frame(&mut forwarder, now, 300_000, false);
        assert!(waited < Duration::from_secs(10), "no probe");
    }
    assert_eq!(forwarder.current(), Some(0));
    now += Duration::from_millis(500);
    let last = frame(&mut forwarder, now, 300_000, false);
    // The next frame's first packet went out, then the last frame's end comes again (a retransmission).
    now += Duration::from_millis(33);
    let next = forwarder.handle(tag(0, false), last.wrapping_add(1), timestamp.wrapping_add(3_000), now);
    assert!(next.forward.is_some());
    assert_eq!(forwarder.padding(last, now), None, "no padding inside the next frame");
    // After the next frame's end, padding follows.
    let padding = forwarder.padding(last.wrapping_add(1), now).expect("padding after a frame");
    assert_eq!(padding.first, next.forward.map(|(out, _)| out.wrapping_add(1)).expect("forwarded"));
}
