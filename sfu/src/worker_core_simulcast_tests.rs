//! Simulcast through the worker core: a webrtc-rs client publishes three
//! layers (rid q, h, f, each its own SSRC, marked with the mid and rid header
//! extensions as a browser does), and a subscriber gets exactly one of them,
//! switched only at a keyframe, numbered as one stream.

use rtc::rtp_transceiver::RTCRtpTransceiverId;

use super::*;

const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const HEIGHTS: [u16; 3] = [180, 360, 720];
/// 30 frames a second, in simulated time and in 90 kHz ticks.
const FRAME: Duration = Duration::from_millis(33);
const FRAME_TICKS: u32 = 2_970;

/// A VP8 packet of one whole frame of `layer` with a 15-bit `picture_id`; its last byte names the layer.
fn vp8_frame(layer: u8, keyframe: bool, picture_id: u16) -> Bytes {
    let [high, low] = picture_id.to_be_bytes();
    let mut payload = vec![0x90, 0x80, 0x80 | (high & 0x7f), low];
    if keyframe {
        let [w0, w1] = (HEIGHTS[usize::from(layer)] * 16 / 9).to_le_bytes();
        let [h0, h1] = HEIGHTS[usize::from(layer)].to_le_bytes();
        payload.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]);
    } else {
        payload.extend_from_slice(&[0x01, 0x00, 0x00]);
    }
    payload.push(layer);
    Bytes::from(payload)
}

/// A layer's picture id for its packet `sequence` (one packet a frame): each
/// layer counts in its own range, as each simulcast encoding does.
fn picture_id(layer: u8, sequence: u16) -> u16 {
    sequence.wrapping_add(u16::from(layer) * 10_000) & 0x7fff
}

/// The picture id of a VP8 payload made by [`vp8_frame`].
fn picture_id_of(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[2] & 0x7f, payload[3]])
}

impl Net {
    /// A client publishing one VP8 camera track in three simulcast layers.
    fn join_simulcast(&mut self) -> usize {
        self.join_with(false, add_simulcast_camera)
    }

    /// One packet (a whole frame) on each of `layers` (layer, keyframe), now.
    fn publish_frame(&mut self, client: usize, layers: &[(u8, bool)], timestamp: u32) {
        let now = self.now;
        let client = &mut self.clients[client];
        let (sender, ssrcs, sequences) = client.simulcast.as_mut().expect("a simulcast publisher");
        let mid = client
            .pc
            .rtp_transceiver(RTCRtpTransceiverId::from(*sender))
            .and_then(|transceiver| transceiver.mid().clone())
            .expect("a negotiated mid");
        let mut rtp_sender = client.pc.rtp_sender(*sender).expect("the sender");
        let (payload_type, mid_id, rid_id) = {
            let parameters = rtp_sender.get_parameters();
            let id = |uri: &str| {
                parameters.rtp_parameters.header_extensions.iter().find(|ext| ext.uri == uri).map(|ext| ext.id as u8)
            };
            let payload_type = parameters.rtp_parameters.codecs.first().expect("a negotiated codec").payload_type;
            (payload_type, id(MID_URI).expect("mid negotiated"), id(RID_URI).expect("rid negotiated"))
        };
        for (layer, keyframe) in layers {
            let index = usize::from(*layer);
            let mut header = rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: sequences[index],
                // Each layer's own random-looking timestamp base, as encoders have.
                timestamp: timestamp.wrapping_add(u32::from(*layer) * 1_000_000),
                ssrc: ssrcs[index],
                ..Default::default()
            };
            header.set_extension(mid_id, Bytes::from(mid.clone().into_bytes())).expect("mid extension");
            header.set_extension(rid_id, Bytes::from_static(["q", "h", "f"][index].as_bytes())).expect("rid");
            rtp_sender
                .write_rtp(
                    now,
                    rtp::Packet { header, payload: vp8_frame(*layer, *keyframe, picture_id(*layer, sequences[index])) },
                )
                .expect("the packet is written");
            sequences[index] = sequences[index].wrapping_add(1);
        }
    }

    /// The layers the subscriber legs reported wanting, in order.
    fn layers_wanted(&self) -> Vec<u8> {
        self.reports
            .iter()
            .filter_map(|(_, output)| match output {
                PeerOutput::LayerWanted { layer, forwarded, .. } if layer == forwarded => Some(*layer),
                _ => None,
            })
            .collect()
    }

    fn layer_keyframes_wanted(&self) -> Vec<(SourceId, u8)> {
        self.reports
            .iter()
            .filter_map(|(_, output)| match output {
                PeerOutput::LayerKeyframeWanted { source, layer } => Some((*source, *layer)),
                _ => None,
            })
            .collect()
    }

    /// `frames` frames on every layer, none a keyframe, one every [`FRAME`].
    fn interframes(&mut self, publisher: usize, frames: u32, timestamp: &mut u32) {
        for _ in 0..frames {
            self.publish_frame(publisher, &[(0, false), (1, false), (2, false)], *timestamp);
            *timestamp += FRAME_TICKS;
            self.run_until(FRAME, |_| false);
        }
    }
}

/// Adds a VP8 camera track in three simulcast layers to `pc`: its sender, the
/// layers' SSRCs and their next sequence numbers.
fn add_simulcast_camera(pc: &mut RTCPeerConnection) -> Option<(RTCRtpSenderId, [u32; 3], [u16; 3])> {
    let ssrcs: [u32; 3] = [rand::random(), rand::random(), rand::random()];
    let codec = RTCRtpCodec { mime_type: MIME_TYPE_VP8.to_string(), clock_rate: 90_000, ..Default::default() };
    let encodings = ["q", "h", "f"]
        .into_iter()
        .zip(ssrcs)
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.to_string(),
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: codec.clone(),
            ..Default::default()
        })
        .collect();
    let track =
        MediaStreamTrack::new("camera".into(), "camera-video".into(), "video".into(), RtpCodecKind::Video, encodings);
    Some((pc.add_track(track).expect("a simulcast track"), ssrcs, [1, 1, 1]))
}

#[test]
fn a_subscriber_gets_one_layer_switched_at_keyframes_and_numbered_as_one_stream() {
    let mut net = Net::new();
    let publisher = net.join_simulcast();
    let subscriber = net.join(false);
    assert!(net.run_until(CONNECT, |net| net.clients.iter().all(|client| client.connected)), "both connect");
    net.publish_frame(publisher, &[(0, true), (1, true), (2, true)], 0);
    assert!(net.run_until(CONNECT, |net| !net.reports.is_empty()), "the SFU sees the simulcast track");
    let sources = net.subscribe_the_others();
    assert_eq!(sources.len(), 1, "three layers are one published track");
    let source = sources[0];
    assert!(net.run_until(CONNECT, |net| net.clients[subscriber].offers == 1), "offered to the subscriber");
    net.run_until(Duration::from_millis(100), |_| false);

    // Interframes only: the leg has nothing it could start decoding at, so it
    // sends nothing and asks for a keyframe of the layer it wants (the top one).
    let mut timestamp = FRAME_TICKS;
    net.interframes(publisher, 5, &mut timestamp);
    assert!(net.clients[subscriber].received.is_empty(), "nothing before a keyframe");
    assert_eq!(net.layer_keyframes_wanted(), [(source, 2)], "one request within 500 ms");
    let publisher_peer = net.clients[publisher].peer;
    net.core.handle_input(net.now, WorkerInput::LayerKeyframe { peer: publisher_peer, source, layer: 2 });
    let full_ssrc = net.clients[publisher].simulcast.as_ref().map(|(_, ssrcs, _)| ssrcs[2]).expect("ssrcs");
    assert!(
        net.run_until(Duration::from_secs(1), |net| net.clients[publisher].keyframe_ssrcs.contains(&full_ssrc)),
        "the publisher is asked for a keyframe of the full layer, on its SSRC"
    );

    // A keyframe of the full layer: from there the subscriber gets that layer only.
    net.publish_frame(publisher, &[(0, false), (1, false), (2, true)], timestamp);
    timestamp += FRAME_TICKS;
    net.run_until(FRAME, |_| false);
    net.interframes(publisher, 4, &mut timestamp);
    assert_eq!(net.clients[subscriber].received.len(), 5, "one packet per frame");

    // Shown small now: the quarter layer is wanted, and switched to at its keyframe.
    net.reports.clear();
    let publisher_user = net.clients[publisher].key.user;
    let subscriber_peer = net.clients[subscriber].peer;
    let constraint = WorkerInput::VideoConstraint { peer: subscriber_peer, publisher: publisher_user, max_height: 200 };
    net.core.handle_input(net.now, constraint);
    net.interframes(publisher, 3, &mut timestamp);
    assert_eq!(net.layer_keyframes_wanted(), [(source, 0)]);
    assert_eq!(net.layers_wanted(), [0], "for the room core, which pauses unneeded layers");
    net.publish_frame(publisher, &[(0, true), (1, false), (2, false)], timestamp);
    timestamp += FRAME_TICKS;
    net.run_until(FRAME, |_| false);
    net.interframes(publisher, 4, &mut timestamp);

    let received = &net.clients[subscriber].received;
    let layers: Vec<u8> = received.iter().map(|packet| *packet.payload.last().expect("a payload")).collect();
    let expected: Vec<u8> = [2; 8].into_iter().chain([0; 5]).collect();
    assert_eq!(layers, expected, "the full layer until the quarter layer's keyframe, then only that");
    assert_eq!(received[8].payload[4..], vp8_frame(0, true, 0)[4..], "the switch is at a keyframe");
    assert!(received.iter().all(|packet| packet.header.ssrc == received[0].header.ssrc), "one SSRC");
    for pair in received.windows(2) {
        let (before, after) = (&pair[0].header, &pair[1].header);
        assert_eq!(after.sequence_number, before.sequence_number.wrapping_add(1), "sequence numbers run on");
        assert_eq!(after.timestamp.wrapping_sub(before.timestamp), FRAME_TICKS, "one frame's time apart");
        // A receiver takes a jump in picture ids for frames it has not received yet, and waits for them.
        let (before, after) = (picture_id_of(&pair[0].payload), picture_id_of(&pair[1].payload));
        assert_eq!(after, (before + 1) & 0x7fff, "picture ids run on");
    }

    // The subscriber's own keyframe request is for the layer it gets.
    net.reports.clear();
    net.run_until(Duration::from_millis(500), |_| false);
    net.request_keyframes(subscriber);
    net.run_until(Duration::from_millis(1), |_| false);
    assert_eq!(net.layer_keyframes_wanted(), [(source, 0)]);
    assert!(net.keyframes_wanted().is_empty(), "not for the track as a whole");

    // The room core's answer to the wanted layers reaches the publisher's client.
    let active = WorkerInput::PublisherLayers { peer: publisher_peer, source, active: [true, false, false] };
    net.core.handle_input(net.now, active);
    net.run_until(Duration::from_millis(1), |_| false);
    let told = net.clients[publisher].publisher_layers.clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["active"], serde_json::json!(["q"]));
    assert!(told[0]["mid"].is_string() && told[0]["trackId"].is_string(), "names the track: {}", told[0]);
}

#[path = "worker_core_bwe_tests.rs"]
pub(super) mod bwe;
