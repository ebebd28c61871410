//! The SFU's own ICE candidates: a host candidate on its UDP socket and, when it
//! listens on TCP, a passive ICE-TCP one (RFC 6544). ICE-lite: the SFU gathers
//! nothing else and sends them only inside its first answer.

use std::net::SocketAddr;

use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};

/// The ICE host candidate of a UDP socket at `addr`.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, rtc::shared::error::Error> {
    candidate_on("udp", addr, Default::default())
}

/// The passive ICE-TCP host candidate of a listener at `addr` (RFC 6544): clients connect to it.
pub fn tcp_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, rtc::shared::error::Error> {
    candidate_on("tcp", addr, rtc::ice::tcp_type::TcpType::Passive)
}

fn candidate_on(
    network: &str,
    addr: SocketAddr,
    tcp_type: rtc::ice::tcp_type::TcpType,
) -> Result<RTCIceCandidateInit, rtc::shared::error::Error> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}
