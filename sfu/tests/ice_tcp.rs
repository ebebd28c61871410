//! The SFU's ICE-TCP listener against strangers: a connection that does not
//! start with a binding request verified by an existing peer's ICE password is
//! closed, and routes nothing. (Media over ICE-TCP with a real browser is
//! e2e/connectivity.test.mjs.)

mod common;

use std::time::Duration;

use common::harness_with;
use rapat_sfu::SfuConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// RFC 4571: a two-byte length, then the packet.
fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

/// Whether the SFU closes the connection within `limit` after `bytes`.
async fn closed_after(to: std::net::SocketAddr, bytes: &[u8], limit: Duration) -> bool {
    let mut stream = TcpStream::connect(to).await.expect("connects");
    if !bytes.is_empty() {
        stream.write_all(bytes).await.expect("writes");
    }
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(limit, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_that_does_not_verify_is_closed_and_routes_nothing() {
    let mut config = SfuConfig::new("127.0.0.1:0".parse().expect("address"));
    config.tcp_bind = Some("127.0.0.1:0".parse().expect("address"));
    config.workers = 1;
    let h = harness_with(config).await;
    let tcp = h.sfu.tcp_announced_addr().expect("an ICE-TCP listener");
    assert_ne!(tcp.port(), 0);

    // DTLS-looking junk, then a STUN binding request for a peer that does not exist.
    let junk = framed(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert!(closed_after(tcp, &junk, Duration::from_secs(5)).await, "junk first: closed");
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[7u8; 12]);
    assert!(closed_after(tcp, &framed(&request), Duration::from_secs(5)).await, "an unknown binding request: closed");
    assert_eq!(h.sfu.handle().routes(), 0);
    assert_eq!(h.sfu.handle().counters().datagrams_in, 0, "nothing reached a worker");
}
