//! A peer whose ICE connected and whose DTLS handshake never finished is
//! failed and closed (`peer_handshake.rs`), on the simulated clock.

use super::*;
use crate::peer::DTLS_HANDSHAKE_LIMIT;

fn failed(net: &Net, peer: u64) -> bool {
    net.reports.iter().any(|(reported, output)| *reported == peer && matches!(output, PeerOutput::Failed(_)))
}

/// In a connect storm on a starved SFU the client's DTLS flights came too late
/// or not at all: the SFU's DTLS server gave up, ICE stayed connected, and
/// neither side closed, so the client never tried again. Now, when only the
/// client's hellos get through (its flight with the keys and Finished is lost,
/// with every resend), the peer fails when the SFU's DTLS server runs out of
/// retransmissions (about 8 s after the hello); when none of its DTLS gets
/// through (nothing reports an error), at the backstop bound.
#[test]
fn a_peer_whose_dtls_handshake_does_not_finish_after_ice_connected_fails() {
    let at_bound = (DTLS_HANDSHAKE_LIMIT - Duration::from_millis(100), DTLS_HANDSHAKE_LIMIT + Duration::from_secs(1));
    // The client's DTLS datagrams: two hellos (the second with the cookie), then its flight.
    for (delivered, (not_before, by)) in [(0, at_bound), (2, (Duration::from_secs(7), Duration::from_secs(10)))] {
        let mut net = Net::new();
        let mut dtls = 0;
        net.lose_to_sfu = Some(Box::new(move |datagram: &[u8]| {
            let is_dtls = matches!(datagram.first(), Some(20..=63));
            dtls += usize::from(is_dtls);
            is_dtls && dtls > delivered
        }));
        let client = net.join(false);
        let peer = net.clients[client].peer;
        let started = net.now;
        assert!(!net.run_until(not_before, |net| failed(net, peer)), "{delivered} delivered: failed too early");
        assert!(!net.clients[client].connected, "{delivered} delivered: connected all the same");
        assert!(
            net.run_until(by - not_before, |net| failed(net, peer)),
            "{delivered} delivered: not failed {:?} after the start",
            net.now.duration_since(started)
        );
        assert!(!net.core.peers.contains_key(&peer), "{delivered} delivered: the worker forgot the peer");
    }
}

#[test]
fn a_connected_peer_is_not_failed_by_the_handshake_bound() {
    let mut net = Net::new();
    let client = net.join(false);
    let peer = net.clients[client].peer;
    assert!(net.run_until(CONNECT, |net| net.clients[client].connected));
    net.run_until(DTLS_HANDSHAKE_LIMIT * 3, |_| false);
    assert!(
        net.reports.iter().all(
            |(reported, output)| *reported != peer || !matches!(output, PeerOutput::Failed(_) | PeerOutput::Closed)
        )
    );
    assert!(net.clients[client].connected && net.core.peers.contains_key(&peer));
}
