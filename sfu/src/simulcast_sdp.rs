//! Keeping a simulcast track's layers across renegotiations.
//!
//! webrtc-rs rebuilds the receiving track of every m-section that names a track
//! (`a=msid`) each time a remote description is applied, and a simulcast track
//! is rebuilt without its SSRCs: it learns them again only from packets that
//! carry the rid header extension. Chrome stops sending that extension once the
//! SFU's receiver reports acknowledged an SSRC, so after the first
//! renegotiation (someone joins, a screen share starts) the layers would never
//! be matched again and the camera would freeze for everyone.
//!
//! So before a client's offer or answer is applied, the m-sections of simulcast
//! tracks that already play, the same track on the same mid, lose their track
//! naming lines (`a=msid`, `a=ssrc`, `a=ssrc-group`). Without them webrtc-rs
//! leaves that receiver, and the SSRCs it learnt, as they are. Everything the
//! answer is built from (direction, rids, codecs, extensions) is left in place.

/// A simulcast track that already plays: its m-section's mid and its track id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayingTrack {
    pub mid: String,
    pub track_id: String,
}

/// `sdp` with the track naming lines removed from the m-sections of `playing`
/// tracks that still offer the same rids (a changed track or a single-stream
/// m-section is left alone, so it is bound afresh as it should be).
pub fn keep_playing_layers(sdp: &str, playing: &[PlayingTrack]) -> String {
    if playing.is_empty() {
        return sdp.to_owned();
    }
    let mut kept = String::with_capacity(sdp.len());
    let mut section: Vec<&str> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut kept, &mut section, playing);
        }
        section.push(line);
    }
    flush(&mut kept, &mut section, playing);
    kept
}

/// Appends one section (the session part, or one m-section) to `kept`.
fn flush(kept: &mut String, section: &mut Vec<&str>, playing: &[PlayingTrack]) {
    let attribute = |name: &str| section.iter().find_map(|line| line.trim_end().strip_prefix(name).map(str::to_owned));
    let is_media = section.first().is_some_and(|line| line.starts_with("m="));
    let has_rids = section.iter().any(|line| line.starts_with("a=rid:"));
    let mid = attribute("a=mid:");
    let track_id = attribute("a=msid:").and_then(|msid| msid.split(' ').nth(1).map(str::to_owned));
    let keep_receiver = is_media
        && has_rids
        && matches!((&mid, &track_id), (Some(mid), Some(track_id))
            if playing.iter().any(|known| &known.mid == mid && &known.track_id == track_id));
    for line in section.drain(..) {
        let names_track =
            line.starts_with("a=msid:") || line.starts_with("a=ssrc:") || line.starts_with("a=ssrc-group:");
        if !(keep_receiver && names_track) {
            kept.push_str(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:s1 audio1\r\na=ssrc:11 msid:s1 audio1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:s1 video1\r\n\
        a=rid:q send\r\na=rid:h send\r\na=simulcast:send q;h\r\n";

    fn playing(mid: &str, track_id: &str) -> Vec<PlayingTrack> {
        vec![PlayingTrack { mid: mid.to_owned(), track_id: track_id.to_owned() }]
    }

    #[test]
    fn a_playing_simulcast_section_loses_only_its_track_naming() {
        let kept = keep_playing_layers(OFFER, &playing("1", "video1"));
        let video = &kept[kept.find("m=video").expect("a video section")..];
        assert!(!video.contains("a=msid:"), "{kept}");
        assert!(video.contains("a=rid:q send\r\na=rid:h send\r\na=simulcast:send q;h\r\n"), "{kept}");
        // The audio section is no simulcast track: untouched.
        assert!(kept.contains("a=msid:s1 audio1\r\na=ssrc:11 msid:s1 audio1\r\n"), "{kept}");
        assert_eq!(kept.len(), OFFER.len() - "a=msid:s1 video1\r\n".len());
    }

    #[test]
    fn a_new_or_changed_track_is_left_to_bind_afresh() {
        assert_eq!(keep_playing_layers(OFFER, &playing("1", "video2")), OFFER);
        assert_eq!(keep_playing_layers(OFFER, &playing("2", "video1")), OFFER);
        assert_eq!(keep_playing_layers(OFFER, &[]), OFFER);
    }

    #[test]
    fn a_single_stream_section_is_never_changed() {
        assert_eq!(keep_playing_layers(OFFER, &playing("0", "audio1")), OFFER);
    }
}
