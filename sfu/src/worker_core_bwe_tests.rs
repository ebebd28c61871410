//! Layer choice by the subscriber's downlink estimate, through the worker
//! core: a three-layer publisher with a microphone beside its camera (the
//! audio shares the link and is never switched down), and two subscribers, one behind a shaped
//! link (a token bucket of a given rate whose queue drops what would wait
//! longer than [`QUEUE_LIMIT`], plus a propagation delay and a little loss) on
//! the simulated clock. The SFU numbers what it sends, the subscriber's
//! webrtc-rs client sends TWCC feedback as a browser does, and the estimate
//! alone moves the shaped subscriber's layer.

use std::collections::VecDeque;

use bytes::BytesMut;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;

use super::*;

/// Propagation delay of a shaped link.
const PROPAGATION: Duration = Duration::from_millis(20);
/// A shaped link's queue holds this much time of its rate.
const QUEUE_LIMIT: Duration = Duration::from_millis(250);
/// Every this-many-th datagram on a shaped link is lost.
const LOSS_EVERY: usize = 200;
/// Bytes per frame of each layer: 150 kbit/s, 500 kbit/s and 1.2 Mbit/s at 30 frames a second.
const FRAME_BYTES: [usize; 3] = [625, 2_080, 5_000];
const PACKET_BYTES: usize = 1_100;
/// Opus as browsers send it: 50 packets a second, about 85 kbit/s on the wire.
const AUDIO_EVERY: Duration = Duration::from_millis(20);
const AUDIO_BYTES: usize = 160;
/// The last byte of an audio packet: no layer, so not taken for a video frame.
const AUDIO_MARK: u8 = 0xff;
/// How long the link stays at 400 kbit/s: long enough for several probes.
const LIMITED: Duration = Duration::from_secs(15);
/// The full layer is back within this after the limit is lifted: the longest
/// wait for the next probe (4 s, `layer_fit.rs`), that probe and the step up to
/// the half layer (2 s), the half layer proving itself and the probe for the
/// full one (2 s), and a second for keyframes to come.
const BACK_WITHIN: Duration = Duration::from_secs(9);

/// A publisher's microphone: its sender, SSRC, next sequence number and when its next packet is due.
pub(crate) struct Microphone {
    sender: RTCRtpSenderId,
    ssrc: u32,
    sequence: u16,
    next: Instant,
}

impl Net {
    /// A client publishing a microphone and a camera in three simulcast layers.
    fn join_camera_and_microphone(&mut self) -> (usize, Microphone) {
        let ssrc = rand::random::<u32>();
        let mut sender = None;
        let client = self.join_with(false, |pc| {
            let codec = RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_string(),
                clock_rate: 48_000,
                channels: 2,
                ..Default::default()
            };
            let track = super::single_stream_track("microphone", RtpCodecKind::Audio, codec, ssrc);
            sender = Some(pc.add_track(track).expect("an audio track"));
            add_simulcast_camera(pc)
        });
        let sender = sender.expect("the audio sender");
        (client, Microphone { sender, ssrc, sequence: 1, next: self.now })
    }

    /// The audio packets due by now.
    fn speak(&mut self, client: usize, microphone: &mut Microphone) {
        let mut rtp_sender = self.clients[client].pc.rtp_sender(microphone.sender).expect("the audio sender");
        let payload_type =
            rtp_sender.get_parameters().rtp_parameters.codecs.first().expect("a negotiated codec").payload_type;
        while microphone.next <= self.now {
            let header = rtc::rtp::header::Header {
                version: 2,
                payload_type,
                sequence_number: microphone.sequence,
                timestamp: u32::from(microphone.sequence) * 960,
                ssrc: microphone.ssrc,
                ..Default::default()
            };
            let mut payload = vec![0x78; AUDIO_BYTES];
            payload[AUDIO_BYTES - 1] = AUDIO_MARK;
            rtp_sender
                .write_rtp(self.now, rtp::Packet { header, payload: Bytes::from(payload) })
                .expect("the packet is written");
            microphone.sequence = microphone.sequence.wrapping_add(1);
            microphone.next += AUDIO_EVERY;
        }
    }
}

/// The SFU's side of a link to one client: a rate limit with a bounded queue.
pub(crate) struct Link {
    /// `None`: not limited.
    pub rate_bps: Option<f64>,
    free_at: Option<Instant>,
    in_flight: VecDeque<(Instant, BytesMut)>,
    sent: usize,
    pub dropped: usize,
}

impl Link {
    fn new(rate_bps: f64) -> Self {
        Self { rate_bps: Some(rate_bps), free_at: None, in_flight: VecDeque::new(), sent: 0, dropped: 0 }
    }

    pub fn send(&mut self, now: Instant, bytes: BytesMut) {
        self.sent += 1;
        if self.sent.is_multiple_of(LOSS_EVERY) {
            self.dropped += 1;
            return;
        }
        let start = self.free_at.map_or(now, |free| free.max(now));
        let departs = match self.rate_bps {
            Some(rate) => {
                if start.saturating_duration_since(now) > QUEUE_LIMIT {
                    self.dropped += 1;
                    return;
                }
                // IP and UDP headers count against the rate too.
                let bits = (bytes.len() + 28) as f64 * 8.0;
                start + Duration::from_secs_f64(bits / rate)
            }
            None => now,
        };
        self.free_at = Some(departs);
        self.in_flight.push_back((departs + PROPAGATION, bytes));
    }

    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    fn take_arrived(&mut self, now: Instant) -> Vec<BytesMut> {
        let mut arrived = Vec::new();
        while self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            arrived.extend(self.in_flight.pop_front().map(|(_, bytes)| bytes));
        }
        arrived
    }
}

impl Net {
    /// Hands the clients what their links delivered by now; whether anything was.
    pub(crate) fn release_links(&mut self) -> bool {
        let mut moved = false;
        for (address, link) in &mut self.links {
            let Some(client) = self.clients.iter_mut().find(|client| client.address == *address) else { continue };
            for bytes in link.take_arrived(self.now) {
                moved = true;
                let datagram =
                    TaggedBytesMut { now: self.now, transport: context(client.address, sfu_address()), message: bytes };
                let _ = client.pc.handle_read(datagram);
            }
        }
        moved
    }

    /// One frame of every layer, split into packets; `keyframes` says which layers start a keyframe.
    fn publish_sized_frame(&mut self, client: usize, keyframes: [bool; 3], timestamp: u32) {
        let now = self.now;
        let client = &mut self.clients[client];
        let (sender, ssrcs, sequences) = client.simulcast.as_mut().expect("a simulcast publisher");
        let mid = client
            .pc
            .rtp_transceiver(RTCRtpTransceiverId::from(*sender))
            .and_then(|transceiver| transceiver.mid().clone())
            .expect("a negotiated mid");
        let mut rtp_sender = client.pc.rtp_sender(*sender).expect("the sender");
        let parameters = rtp_sender.get_parameters();
        let id = |uri: &str| {
            parameters.rtp_parameters.header_extensions.iter().find(|ext| ext.uri == uri).map(|ext| ext.id as u8)
        };
        let payload_type = parameters.rtp_parameters.codecs.first().expect("a negotiated codec").payload_type;
        let (mid_id, rid_id) = (id(MID_URI).expect("mid negotiated"), id(RID_URI).expect("rid negotiated"));
        for layer in 0..3u8 {
            let index = usize::from(layer);
            let count = FRAME_BYTES[index].div_ceil(PACKET_BYTES);
            for part in 0..count {
                let mut header = rtc::rtp::header::Header {
                    version: 2,
                    marker: part + 1 == count,
                    payload_type,
                    sequence_number: sequences[index],
                    timestamp: timestamp.wrapping_add(u32::from(layer) * 1_000_000),
                    ssrc: ssrcs[index],
                    ..Default::default()
                };
                header.set_extension(mid_id, Bytes::from(mid.clone().into_bytes())).expect("mid extension");
                header.set_extension(rid_id, Bytes::from_static(["q", "h", "f"][index].as_bytes())).expect("rid");
                // The first packet starts the VP8 frame; the last two bytes say how many
                // packets the frame has and which layer it is.
                let mut payload = if part == 0 {
                    vp8_frame(layer, keyframes[index], sequences[index] & 0x7fff).to_vec()
                } else {
                    vec![0x00]
                };
                payload.resize(PACKET_BYTES.min(FRAME_BYTES[index] - part * PACKET_BYTES).max(8) - 2, 0);
                payload.extend_from_slice(&[count as u8, layer]);
                rtp_sender
                    .write_rtp(now, rtp::Packet { header, payload: Bytes::from(payload) })
                    .expect("the packet is written");
                sequences[index] = sequences[index].wrapping_add(1);
            }
        }
    }

    /// Runs the publisher at 30 frames a second for `time`, sending a keyframe of
    /// a layer when one is asked for (the room core's routing, by hand).
    fn stream(&mut self, publisher: usize, mut audio: Option<&mut Microphone>, time: Duration, timestamp: &mut u32) {
        let end = self.now + time;
        while self.now < end {
            if let Some(microphone) = audio.as_deref_mut() {
                self.speak(publisher, microphone);
            }
            let mut keyframes = [false; 3];
            for (_, output) in self.reports.drain(..) {
                match output {
                    PeerOutput::LayerKeyframeWanted { layer, .. } => keyframes[usize::from(layer).min(2)] = true,
                    PeerOutput::KeyframeWanted(_) => keyframes = [true; 3],
                    _ => {}
                }
            }
            self.publish_sized_frame(publisher, keyframes, *timestamp);
            *timestamp = timestamp.wrapping_add(FRAME_TICKS);
            self.run_until(FRAME, |_| false);
        }
    }
}

/// Frames a client received whole: (when its last packet came, its layer), in
/// order; a frame completed (by a retransmission) after a newer one is not shown.
fn whole_frames(client: &Client) -> Vec<(Instant, u8)> {
    let mut frames: Vec<(u32, usize, Instant, u8)> = Vec::new();
    let mut whole = Vec::new();
    let mut newest: Option<u32> = None;
    for (packet, at) in client.received.iter().zip(&client.received_at) {
        let [.., count, layer] = packet.payload[..] else { continue };
        if layer == AUDIO_MARK {
            continue;
        }
        let timestamp = packet.header.timestamp;
        let index = match frames.iter().position(|(seen, ..)| *seen == timestamp) {
            Some(index) => index,
            None => {
                frames.push((timestamp, 0, *at, layer));
                frames.len() - 1
            }
        };
        frames[index].1 += 1;
        let late = newest.is_some_and(|newest| (timestamp.wrapping_sub(newest) as i32) <= 0);
        if frames[index].1 == usize::from(count) && !late {
            whole.push((*at, layer));
            newest = Some(timestamp);
        }
        if frames.len() > 64 {
            frames.remove(0);
        }
    }
    whole
}

/// Padding-only packets (no payload left once the padding is taken off) a client received in `from..to`.
fn padding_received(client: &Client, from: Instant, to: Instant) -> usize {
    let between = |at: &&Instant| **at >= from && **at < to;
    client
        .received
        .iter()
        .zip(&client.received_at)
        .filter(|(packet, at)| packet.payload.is_empty() && between(at))
        .count()
}

/// The longest time between two whole frames in `from..to` (and from `from` to the first).
fn longest_freeze(frames: &[(Instant, u8)], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for (at, _) in frames.iter().filter(|(at, _)| *at >= from && *at <= to) {
        longest = longest.max(at.saturating_duration_since(last));
        last = *at;
    }
    longest.max(to.saturating_duration_since(last))
}

fn layers_between(frames: &[(Instant, u8)], from: Instant, to: Instant) -> Vec<u8> {
    let mut layers: Vec<u8> =
        frames.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, layer)| *layer).collect();
    layers.dedup();
    layers
}

#[test]
fn a_subscriber_whose_downlink_drops_gets_a_fitting_layer_within_three_seconds_and_the_top_one_back_after() {
    let mut net = Net::new();
    let (publisher, mut microphone) = net.join_camera_and_microphone();
    let (shaped, open) = (net.join(false), net.join(false));
    net.links.insert(net.clients[shaped].address, Link::new(2_000_000.0));
    assert!(net.run_until(CONNECT, |net| net.clients.iter().all(|client| client.connected)), "all connect");
    let mut timestamp = 0;
    net.publish_sized_frame(publisher, [true; 3], timestamp);
    net.speak(publisher, &mut microphone);
    assert!(net.run_until(CONNECT, |net| net.reports.len() >= 2), "the SFU sees the camera and the microphone");
    assert_eq!(net.subscribe_the_others().len(), 2);
    assert!(
        net.run_until(CONNECT, |net| net.clients[shaped].offers >= 1 && net.clients[open].offers >= 1),
        "offered to both"
    );
    let offer =
        net.clients[shaped].pc.remote_description().map(|description| description.sdp.clone()).unwrap_or_default();
    assert!(offer.contains("transport-wide-cc"), "the SFU's offer has the transport-cc extension: {offer}");
    assert!(offer.contains("a=rtcp-fb:") && offer.contains(" transport-cc"), "and its rtcp-fb: {offer}");
    let audio =
        |client: &Client| client.received.iter().filter(|packet| packet.payload.last() == Some(&AUDIO_MARK)).count();

    // 2 Mbit/s: the full layer fits beside the audio.
    net.stream(publisher, Some(&mut microphone), Duration::from_secs(6), &mut timestamp);
    let dropped_at = net.now;
    let shaped_frames = whole_frames(&net.clients[shaped]);
    assert_eq!(layers_between(&shaped_frames, dropped_at - Duration::from_secs(2), dropped_at), [2]);
    let estimate = net.core.peers.get(&net.clients[shaped].peer).and_then(|peer| peer.downlink_bps());
    assert!(estimate.is_some_and(|bps| bps > 1_200_000), "an estimate from the feedback: {estimate:?}");
    assert!(audio(&net.clients[shaped]) > 250, "the audio comes too: {}", audio(&net.clients[shaped]));

    // 400 kbit/s: the quarter layer and the audio fit (about 250 kbit/s), the
    // half layer and the audio do not (about 600 kbit/s).
    net.links.get_mut(&net.clients[shaped].address).expect("the link").rate_bps = Some(400_000.0);
    net.stream(publisher, Some(&mut microphone), LIMITED, &mut timestamp);
    let lifted_at = net.now;
    let shaped_frames = whole_frames(&net.clients[shaped]);
    let first_low = shaped_frames.iter().find(|(at, layer)| *at > dropped_at && *layer == 0).map(|(at, _)| *at);
    let settled = first_low.map(|at| at.duration_since(dropped_at));
    assert!(settled.is_some_and(|settled| settled <= Duration::from_secs(3)), "on the quarter layer after {settled:?}");
    // Probes for room pad beside the quarter layer; none finds room for the
    // half layer, so the subscriber never leaves the quarter layer. Each ends as
    // soon as the feedback shows its queue, a few dozen packets in.
    let after = first_low.expect("settled") + Duration::from_millis(500);
    let limited = layers_between(&shaped_frames, after, lifted_at);
    assert_eq!(limited, [0], "only the quarter layer on 400 kbit/s");
    let padding = padding_received(&net.clients[shaped], after, lifted_at);
    assert!(padding > 20, "probes padded: {padding} padding packets");
    // A probe that finds no room costs a short queue, not a freeze.
    let probing_frozen = longest_freeze(&shaped_frames, after, lifted_at);
    assert!(probing_frozen < Duration::from_millis(300), "frozen for {probing_frozen:?} while probing");
    // The longest time without a new frame, over the drop and every probe.
    let frozen = longest_freeze(&shaped_frames, dropped_at, lifted_at);
    assert!(frozen < Duration::from_secs(1), "frozen for {frozen:?}");
    let estimate = net.core.peers.get(&net.clients[shaped].peer).and_then(|peer| peer.downlink_bps());
    assert!(estimate.is_some_and(|bps| bps < 800_000), "the estimate came down: {estimate:?}");
    eprintln!(
        "settled after {settled:?}, {padding} padding packets, longest freeze {frozen:?} \
         ({probing_frozen:?} once settled), estimate {estimate:?}"
    );

    // Lifted: probes find the room, and the layers come back one by one.
    net.links.get_mut(&net.clients[shaped].address).expect("the link").rate_bps = None;
    net.stream(publisher, Some(&mut microphone), Duration::from_secs(20), &mut timestamp);
    let shaped_frames = whole_frames(&net.clients[shaped]);
    let back = shaped_frames.iter().find(|(at, layer)| *at > lifted_at && *layer == 2).map(|(at, _)| *at);
    let back_after = back.map(|at| at.duration_since(lifted_at));
    let frozen = longest_freeze(&shaped_frames, lifted_at, net.now);
    eprintln!("the full layer back after {back_after:?}, longest freeze since the lift {frozen:?}");
    let recovering = layers_between(&shaped_frames, lifted_at, net.now);
    assert!(
        back_after.is_some_and(|after| after <= BACK_WITHIN),
        "the full layer is back: {back_after:?} {recovering:?}"
    );
    assert_eq!(shaped_frames.last().map(|(_, layer)| *layer), Some(2));
    assert!(frozen < Duration::from_secs(1), "frozen for {frozen:?} after the lift");

    // The subscriber with room kept the full layer all along, beside the audio.
    let open_frames = whole_frames(&net.clients[open]);
    let start = open_frames.iter().find(|(_, layer)| *layer == 2).map(|(at, _)| *at).expect("the full layer");
    assert_eq!(layers_between(&open_frames, start, net.now), [2]);
    assert!(longest_freeze(&open_frames, start, net.now) < Duration::from_millis(200));
    assert!(audio(&net.clients[open]) > 2_000, "the audio: {}", audio(&net.clients[open]));
}

#[test]
fn a_publisher_gets_twcc_feedback_for_what_it_sends() {
    let mut net = Net::new();
    let publisher = net.join_simulcast();
    assert!(net.run_until(CONNECT, |net| net.clients[publisher].connected), "connects");
    let answer =
        net.clients[publisher].pc.remote_description().map(|description| description.sdp.clone()).unwrap_or_default();
    assert!(answer.contains("transport-wide-cc"), "the SFU's answer keeps the transport-cc extension: {answer}");
    assert!(answer.contains(" transport-cc"), "and its rtcp-fb: {answer}");
    assert_eq!(net.clients[publisher].uplink.bps(), None, "no feedback before media");
    let mut timestamp = 0;
    net.publish_sized_frame(publisher, [true; 3], timestamp);
    net.stream(publisher, None, Duration::from_secs(2), &mut timestamp);
    // The client's estimator only moves on feedback naming its packets.
    assert!(net.clients[publisher].uplink.bps().is_some(), "the publisher's estimator got the SFU's feedback");
}

#[test]
fn a_subscriber_showing_one_camera_big_and_one_small_gets_the_top_layer_of_the_big_one() {
    let mut net = Net::new();
    let (big, small) = (net.join_simulcast(), net.join_simulcast());
    let viewer = net.join(false);
    // Room for the full layer and a quarter layer, not for two halves of it.
    net.links.insert(net.clients[viewer].address, Link::new(2_000_000.0));
    assert!(net.run_until(CONNECT, |net| net.clients.iter().all(|client| client.connected)), "all connect");
    let mut timestamp = 0;
    for publisher in [big, small] {
        net.publish_sized_frame(publisher, [true; 3], timestamp);
    }
    assert!(net.run_until(CONNECT, |net| net.reports.len() >= 2), "the SFU sees both cameras");
    assert_eq!(net.subscribe_the_others().len(), 2);
    assert!(net.run_until(CONNECT, |net| net.clients[viewer].offers >= 1), "offered to the viewer");
    let constraint = WorkerInput::VideoConstraint {
        peer: net.clients[viewer].peer,
        publisher: net.clients[small].key.user,
        max_height: 180,
    };
    net.core.handle_input(net.now, constraint);

    // Both cameras at 30 frames a second, keyframes of every layer once a second.
    let start = net.now;
    for frame in 0..(10 * 30) {
        for publisher in [big, small] {
            net.publish_sized_frame(publisher, [frame % 30 == 0; 3], timestamp);
        }
        timestamp = timestamp.wrapping_add(FRAME_TICKS);
        net.run_until(FRAME, |_| false);
    }
    // Over the last 3 s, the layers each of the viewer's two video streams
    // carried, in sequence (not counting retransmissions of older packets).
    let viewer = &net.clients[viewer];
    let mut layers: Vec<(u32, u16, Vec<u8>)> = Vec::new();
    let recent =
        viewer.received.iter().zip(&viewer.received_at).filter(|(_, at)| **at >= start + Duration::from_secs(7));
    for (packet, _) in recent {
        let [.., _, layer] = packet.payload[..] else { continue };
        let (ssrc, sequence) = (packet.header.ssrc, packet.header.sequence_number);
        let Some((_, newest, seen)) = layers.iter_mut().find(|(seen, ..)| *seen == ssrc) else {
            layers.push((ssrc, sequence, vec![layer]));
            continue;
        };
        if (sequence.wrapping_sub(*newest) as i16) <= 0 {
            continue;
        }
        *newest = sequence;
        if seen.last() != Some(&layer) {
            seen.push(layer);
        }
    }
    let mut seen: Vec<Vec<u8>> = layers.into_iter().map(|(.., layers)| layers).collect();
    seen.sort();
    // An even split (1 Mbit/s each) would hold the big one at the half layer.
    assert_eq!(seen, [vec![0], vec![2]], "the thumbnail on the quarter layer, the big one on the full layer");
}
