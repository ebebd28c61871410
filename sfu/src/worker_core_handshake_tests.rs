//! A peer whose ICE connected and whose DTLS handshake never finished is
//! failed and closed (`peer_handshake.rs`), on the simulated clock.

use super::*;
use crate::peer::DTLS_HANDSHAKE_LIMIT;

fn failed(net: &Net, peer: u64) -> bool {
    net.reports.iter().any(|(reported, output)| *reported == peer && matches!(output, PeerOutput::Failed(_)))
}

/// In a connect storm on a starved SFU the client's DTLS flights came too late
/// or not at all: the SFU's DTLS server gave up, ICE stayed connected, and
/// neither side closed, so the client never tried again. Whether none of the
/// client's DTLS gets through or only its hellos do (the flight with its keys
/// and Finished is lost, with every resend), the SFU now fails the peer once
/// the bound has passed, and not before.
#[test]
fn a_peer_whose_dtls_handshake_does_not_finish_after_ice_connected_fails() {
    // The client's DTLS datagrams: two hellos (the second with the cookie), then its flight.
    for delivered in [0, 2] {
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
        let limit = DTLS_HANDSHAKE_LIMIT - Duration::from_millis(100);
        assert!(!net.run_until(limit, |net| failed(net, peer)), "{delivered} delivered: failed before the bound");
        assert!(!net.clients[client].connected, "{delivered} delivered: connected all the same");
        assert!(
            net.run_until(Duration::from_secs(1), |net| failed(net, peer)),
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
