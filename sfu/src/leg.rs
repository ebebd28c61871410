//! How one publisher's packet is rewritten for one subscriber leg.
//!
//! A publisher and each of its subscribers negotiate their own SDP, so the same
//! codec may have a different payload type on each leg, header-extension ids are
//! per leg, and the SFU sends each forwarded track under an SSRC of its own. The
//! webrtc-rs sender refuses a packet whose SSRC, payload type or extension id is
//! not negotiated on its leg, so every packet is translated here first. Pure data,
//! no I/O: the tables are built from negotiated parameters and unit tested.

use bytes::Bytes;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpParameters;

/// Extension URIs the SFU does not pass through: transport-wide sequence numbers
/// belong to the publisher's transport, and RTP stream ids to its encodings.
const TRANSPORT_CC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
/// The media id names the subscriber's own m-line, so it is rewritten, not copied.
pub const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// A codec as the two legs can agree on it: MIME type (case-insensitive) and fmtp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecKey {
    pub mime_type: String,
    pub fmtp: String,
}

impl CodecKey {
    pub fn new(mime_type: &str, fmtp: &str) -> Self {
        Self { mime_type: mime_type.to_ascii_lowercase(), fmtp: fmtp.to_string() }
    }
}

/// What the publisher negotiated for one received track.
#[derive(Clone, Debug, Default)]
pub struct SourceParameters {
    pub payload_types: Vec<(u8, CodecKey)>,
    pub extensions: Vec<(u8, String)>,
}

/// What a subscriber leg negotiated for the track the SFU sends it.
#[derive(Clone, Debug, Default)]
pub struct LegParameters {
    pub payload_types: Vec<(u8, CodecKey)>,
    pub extensions: Vec<(u8, String)>,
    pub mid: Option<String>,
}

impl SourceParameters {
    /// From a receiver's negotiated parameters, as webrtc-rs reports them.
    pub fn negotiated(parameters: &RTCRtpParameters) -> Self {
        let payload_types = parameters
            .codecs
            .iter()
            .map(|codec| {
                (codec.payload_type, CodecKey::new(&codec.rtp_codec.mime_type, &codec.rtp_codec.sdp_fmtp_line))
            })
            .collect();
        // Ids above 255 cannot be carried in an RTP header extension at all.
        let extensions = parameters
            .header_extensions
            .iter()
            .filter_map(|ext| Some((u8::try_from(ext.id).ok()?, ext.uri.clone())))
            .collect();
        Self { payload_types, extensions }
    }
}

impl LegParameters {
    /// From a sender's negotiated parameters and its m-line's mid.
    pub fn negotiated(parameters: &RTCRtpParameters, mid: Option<String>) -> Self {
        let SourceParameters { payload_types, extensions } = SourceParameters::negotiated(parameters);
        Self { payload_types, extensions, mid }
    }
}

/// The translation for one (publisher track, subscriber leg) pair.
#[derive(Clone, Debug)]
pub struct Translation {
    pub ssrc: u32,
    /// Publisher payload type → leg payload type; `None`: not sendable on this leg.
    payload_types: [Option<u8>; 128],
    /// Publisher extension id → leg extension id (one-byte ids are 1..=14, two-byte up to 255).
    extensions: Vec<(u8, u8)>,
    mid: Option<(u8, Bytes)>,
}

impl Translation {
    pub fn new(ssrc: u32, source: &SourceParameters, leg: &LegParameters) -> Self {
        let mut payload_types = [None; 128];
        for (source_pt, codec) in &source.payload_types {
            let exact = leg.payload_types.iter().find(|(_, candidate)| candidate == codec);
            let same_mime = || leg.payload_types.iter().find(|(_, candidate)| candidate.mime_type == codec.mime_type);
            if let Some((leg_pt, _)) = exact.or_else(same_mime)
                && let Some(slot) = payload_types.get_mut(usize::from(*source_pt))
            {
                *slot = Some(*leg_pt);
            }
        }
        let passes = |uri: &str| uri != TRANSPORT_CC_URI && uri != RID_URI && uri != REPAIRED_RID_URI && uri != MID_URI;
        let extensions = source
            .extensions
            .iter()
            .filter(|(_, uri)| passes(uri))
            .filter_map(|(source_id, uri)| {
                let (leg_id, _) = leg.extensions.iter().find(|(_, leg_uri)| leg_uri == uri)?;
                Some((*source_id, *leg_id))
            })
            .collect();
        let mid = leg.mid.as_ref().and_then(|mid| {
            let (id, _) = leg.extensions.iter().find(|(_, uri)| uri == MID_URI)?;
            Some((*id, Bytes::copy_from_slice(mid.as_bytes())))
        });
        Self { ssrc, payload_types, extensions, mid }
    }

    /// The packet as this leg must carry it, or `None` when its codec was not
    /// negotiated here (sending it would be refused by the leg).
    pub fn apply(&self, packet: &rtp::Packet) -> Option<rtp::Packet> {
        let payload_type = (*self.payload_types.get(usize::from(packet.header.payload_type))?)?;
        let mut header = packet.header.clone();
        header.ssrc = self.ssrc;
        header.payload_type = payload_type;
        // Start the extension block afresh: `set_extension` keeps the profile, flag
        // and padding consistent only from an empty block (a stale padding count
        // makes the packet's marshalled size disagree with its declared one).
        header.extensions.clear();
        header.extension = false;
        header.extensions_padding = 0;
        for (source_id, leg_id) in &self.extensions {
            if let Some(payload) = packet.header.get_extension(*source_id) {
                // An id the profile cannot carry only loses that extension.
                let _ = header.set_extension(*leg_id, payload);
            }
        }
        if let Some((id, mid)) = &self.mid {
            let _ = header.set_extension(*id, mid.clone());
        }
        Some(rtp::Packet { header, payload: packet.payload.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

    fn vp8() -> CodecKey {
        CodecKey::new("video/VP8", "")
    }

    fn packet(payload_type: u8, extensions: &[(u8, &'static [u8])]) -> rtp::Packet {
        let mut packet = rtp::Packet::default();
        packet.header.version = 2;
        packet.header.ssrc = 1111;
        packet.header.payload_type = payload_type;
        packet.header.sequence_number = 7;
        for (id, payload) in extensions {
            packet.header.set_extension(*id, Bytes::from_static(payload)).expect("one-byte extension");
        }
        packet.payload = Bytes::from_static(b"frame");
        packet
    }

    #[test]
    fn rewrites_ssrc_payload_type_and_extension_ids() {
        let source = SourceParameters {
            payload_types: vec![(96, vp8())],
            extensions: vec![(3, ABS_SEND_TIME.into()), (5, TRANSPORT_CC_URI.into())],
        };
        let leg = LegParameters {
            payload_types: vec![(120, vp8())],
            extensions: vec![(9, ABS_SEND_TIME.into()), (4, MID_URI.into())],
            mid: Some("2".into()),
        };
        let translation = Translation::new(4242, &source, &leg);

        let out = translation.apply(&packet(96, &[(3, b"abc"), (5, b"\x00\x01")])).expect("VP8 is negotiated");

        assert_eq!(out.header.ssrc, 4242);
        assert_eq!(out.header.payload_type, 120);
        assert_eq!(out.header.sequence_number, 7);
        assert_eq!(out.header.get_extension(9).as_deref(), Some(&b"abc"[..]));
        assert_eq!(out.header.get_extension(4).as_deref(), Some(&b"2"[..]), "mid names the leg's m-line");
        assert_eq!(out.header.get_extension(3), None, "the publisher's id is gone");
        assert_eq!(out.header.get_extension(5), None, "transport-wide cc is per transport");
        assert_eq!(out.payload, Bytes::from_static(b"frame"));
    }

    #[test]
    fn a_rewritten_packet_with_padded_extensions_marshals_and_reads_back() {
        use rtc::shared::marshal::{Marshal, Unmarshal};
        let source = SourceParameters {
            payload_types: vec![(96, vp8())],
            extensions: vec![(2, ABS_SEND_TIME.into()), (3, AUDIO_LEVEL.into()), (5, TRANSPORT_CC_URI.into())],
        };
        let leg =
            LegParameters { payload_types: vec![(96, vp8())], extensions: vec![(7, ABS_SEND_TIME.into())], mid: None };
        // Odd-sized extensions leave padding in the publisher's block, as browsers' do.
        let original = packet(96, &[(2, b"abc"), (3, b"\x01"), (5, b"\x00\x07")]);
        let wire = original.marshal().expect("the publisher's packet marshals");
        let received = rtp::Packet::unmarshal(&mut wire.clone()).expect("and parses");

        let out = Translation::new(77, &source, &leg).apply(&received).expect("VP8 is negotiated");
        let bytes = out.marshal().expect("the rewritten packet marshals");
        let back = rtp::Packet::unmarshal(&mut bytes.clone()).expect("and parses");

        assert_eq!(back.header.ssrc, 77);
        assert_eq!(back.header.get_extension(7).as_deref(), Some(&b"abc"[..]));
        assert_eq!(back.header.extensions.len(), 1);
        assert_eq!(back.payload, original.payload);
    }

    #[test]
    fn a_codec_the_leg_did_not_negotiate_is_not_forwarded() {
        let source = SourceParameters {
            payload_types: vec![(96, vp8()), (111, CodecKey::new("audio/opus", ""))],
            extensions: vec![],
        };
        let leg = LegParameters { payload_types: vec![(100, vp8())], ..Default::default() };
        let translation = Translation::new(1, &source, &leg);

        assert!(translation.apply(&packet(111, &[])).is_none());
        assert!(translation.apply(&packet(97, &[])).is_none(), "unknown payload type");
        assert_eq!(translation.apply(&packet(96, &[])).map(|p| p.header.payload_type), Some(100));
    }

    #[test]
    fn an_extension_the_leg_did_not_negotiate_is_dropped() {
        let source = SourceParameters {
            payload_types: vec![(111, CodecKey::new("audio/opus", "minptime=10;useinbandfec=1"))],
            extensions: vec![(1, AUDIO_LEVEL.into())],
        };
        let leg =
            LegParameters { payload_types: vec![(109, CodecKey::new("AUDIO/OPUS", "other"))], ..Default::default() };
        let translation = Translation::new(9, &source, &leg);

        let out = translation.apply(&packet(111, &[(1, b"\x10")])).expect("opus by MIME type");

        assert_eq!(out.header.payload_type, 109);
        assert!(out.header.extensions.is_empty());
        assert!(!out.header.extension);
    }
}
