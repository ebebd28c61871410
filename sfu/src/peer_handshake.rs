//! A peer whose DTLS handshake failed after ICE connected, found and failed.
//!
//! webrtc-rs (`rtc` 0.21) never reports a failed DTLS handshake as a state: its
//! DTLS transport goes "connected" or "closed", never "failed", so the peer
//! connection stays "connecting". When the SFU's DTLS server has resent its
//! flight 7 times (1 s apart, counted when its timer is served) without the
//! client's answer, the association is dead (`HandshakeState::Errored`: every
//! later flight of the client is refused), and the only sign is one error out
//! of `RTCPeerConnection::handle_timeout`, `ErrInvalidFsmTransition`, which the
//! worker used to log and drop. In a connect storm on a starved SFU this left
//! clients with ICE connected and DTLS never finished, their peers open on both
//! sides and nobody trying again.
//!
//! Now that error, while ICE is connected and the handshake is not done, fails
//! the peer; and a handshake that has not finished [`DTLS_HANDSHAKE_LIMIT`]
//! after ICE connected (or after the client's first DTLS datagram, if later)
//! fails it too, for what leaves no error (a client whose DTLS never starts or
//! gave up first). A failed peer is closed and the room core tells the client
//! (`peer_failed`), so it makes a new peer connection. A peer's closing is
//! here too; `peer.rs` stays about negotiation.

use std::time::{Duration, Instant};

use rtc::sansio::Protocol;

use super::{Peer, PeerOutput};

/// 20 s: the backstop, for a handshake that ends with no error. Over twice the
/// SFU's own retransmission budget (8 s from the client's hello when the
/// worker keeps up; longer when it is starved, since the resends are counted
/// as its timer is served), so a handshake that is only slow, on a worker
/// that is behind, is never cut short by it: the budget's end, reported by the
/// error, comes first. Counted from the client's first DTLS datagram when that
/// comes after ICE connected (a starved SFU may see it seconds later).
pub const DTLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(20);

impl Peer {
    /// A datagram from the client is about to be read: the first DTLS one
    /// starts the handshake's clock.
    pub fn datagram_in(&mut self, datagram: &[u8], now: Instant) {
        if !self.connected {
            self.handshake.datagram(datagram.first().copied(), now);
        }
    }

    /// `handle_timeout` failed: if that was the DTLS server running out of
    /// retransmissions while ICE is connected, the handshake is dead.
    pub fn timeout_failed(&mut self, error: &rtc::shared::error::Error) {
        let dead = matches!(error, rtc::shared::error::Error::ErrInvalidFsmTransition);
        if dead && !self.closed && !self.connected && self.handshake.ice_is_connected() {
            tracing::warn!(peer = %self.key, "the DTLS handshake ran out of retransmissions; closing the peer");
            self.fail("the DTLS handshake ran out of retransmissions");
        }
    }

    /// Fails a peer whose DTLS handshake did not finish in time after ICE connected.
    pub fn check_handshake(&mut self, now: Instant) {
        if !self.closed && self.handshake.failed(now) {
            tracing::warn!(peer = %self.key, "ICE connected but the DTLS handshake never finished; closing the peer");
            self.fail("the DTLS handshake did not finish");
        }
    }

    /// Closes a peer whose connection failed; the room core tells its client.
    pub(super) fn fail(&mut self, why: &'static str) {
        if !self.closed {
            let _ = self.pc.close();
            self.mark_closed(PeerOutput::Failed(why));
        }
    }

    pub fn close(&mut self) {
        if !self.closed {
            let _ = self.pc.close();
            self.mark_closed(PeerOutput::Closed);
        }
    }

    /// The peer is gone: its tracks are unpublished, then `last` is reported.
    pub(super) fn mark_closed(&mut self, last: PeerOutput) {
        if self.closed {
            return;
        }
        self.closed = true;
        for inbound in self.inbound.drain() {
            self.outputs.push(PeerOutput::Unpublished(inbound.1.source));
        }
        self.outputs.push(last);
    }
}

/// When a peer's ICE connected and its DTLS started, until the handshake finished.
#[derive(Debug, Default)]
pub struct HandshakeWatch {
    ice_connected: Option<Instant>,
    dtls_started: Option<Instant>,
    finished: bool,
}

impl HandshakeWatch {
    /// ICE connected (the first time counts).
    pub fn ice_connected(&mut self, now: Instant) {
        self.ice_connected.get_or_insert(now);
    }

    pub fn ice_is_connected(&self) -> bool {
        self.ice_connected.is_some()
    }

    /// A datagram from the client, by its first byte: the first DTLS one
    /// (RFC 7983: 20..=63) starts the handshake's clock.
    pub fn datagram(&mut self, first_byte: Option<u8>, now: Instant) {
        if !self.finished && self.dtls_started.is_none() && matches!(first_byte, Some(20..=63)) {
            self.dtls_started = Some(now);
        }
    }

    /// The peer connection reached "connected": ICE and DTLS are done.
    pub fn finished(&mut self) {
        self.finished = true;
    }

    /// When the handshake counts as failed if it has not finished by then.
    pub fn deadline(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let ice = self.ice_connected?;
        Some(self.dtls_started.map_or(ice, |dtls| dtls.max(ice)) + DTLS_HANDSHAKE_LIMIT)
    }

    pub fn failed(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_not_finished_in_time_after_ice_or_its_first_datagram_has_failed() {
        let start = Instant::now();
        let mut watch = HandshakeWatch::default();
        watch.datagram(Some(22), start);
        assert_eq!(watch.deadline(), None, "nothing runs before ICE connects");

        let ice = start + Duration::from_secs(1);
        watch.ice_connected(ice);
        watch.ice_connected(ice + Duration::from_secs(5));
        assert_eq!(watch.deadline(), Some(ice + DTLS_HANDSHAKE_LIMIT), "a hello before ICE counts from ICE");
        assert!(!watch.failed(ice + DTLS_HANDSHAKE_LIMIT - Duration::from_millis(1)));
        assert!(watch.failed(ice + DTLS_HANDSHAKE_LIMIT));

        let mut late = HandshakeWatch::default();
        late.ice_connected(ice);
        late.datagram(Some(0x00), ice + Duration::from_secs(1));
        late.datagram(Some(0x80), ice + Duration::from_secs(2));
        assert_eq!(late.deadline(), Some(ice + DTLS_HANDSHAKE_LIMIT), "STUN and SRTP do not start DTLS");
        let hello = ice + Duration::from_secs(3);
        late.datagram(Some(22), hello);
        late.datagram(Some(22), hello + Duration::from_secs(1));
        assert_eq!(late.deadline(), Some(hello + DTLS_HANDSHAKE_LIMIT), "a hello after ICE counts from the hello");

        late.finished();
        assert_eq!(late.deadline(), None);
        assert!(!late.failed(hello + Duration::from_secs(60)));
    }
}
