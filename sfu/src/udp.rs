//! The SFU's one UDP socket: every peer's ICE, DTLS, SRTP and SRTCP share it.
//!
//! A receive thread reads datagrams and hands each to the worker that owns its
//! peer. A known remote address maps to its peer directly; a new one must start
//! with a STUN binding request whose USERNAME names the peer (`ufrag.rs`). Workers
//! send on the same socket themselves (`send_to` on a shared socket is safe).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{Message, is_stun_message};
use rtc::stun::textattrs::Username;

use crate::worker::WorkerInput;

/// How often an idle receive loop wakes to drop forgotten peers and check for stop.
const IDLE_WAKE: Duration = Duration::from_millis(200);
const MAX_DATAGRAM: usize = 1500;

pub struct ReceiveLoop {
    pub socket: Arc<UdpSocket>,
    pub local_addr: SocketAddr,
    pub workers: Vec<Sender<WorkerInput>>,
    /// Peers that closed: their addresses stop routing.
    pub forget: Receiver<u64>,
    pub stop: Arc<AtomicBool>,
}

impl ReceiveLoop {
    pub fn run(self) {
        if let Err(error) = self.socket.set_read_timeout(Some(IDLE_WAKE)) {
            tracing::error!(%error, "cannot set the SFU socket's read timeout");
        }
        let mut routes: HashMap<SocketAddr, u64> = HashMap::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(peer) = self.forget.try_recv() {
                routes.retain(|_, routed| *routed != peer);
            }
            let (len, from) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                // ICMP errors from a client that went away surface here on Linux.
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(error) => {
                    tracing::warn!(%error, "SFU socket receive failed");
                    continue;
                }
            };
            let datagram = &buf[..len];
            let peer = match routes.get(&from) {
                Some(peer) => *peer,
                None => match peer_of_stun(datagram) {
                    Some(peer) => {
                        routes.insert(from, peer);
                        peer
                    }
                    None => continue,
                },
            };
            let worker = &self.workers[(peer % self.workers.len() as u64) as usize];
            let tagged = TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: self.local_addr,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(datagram),
            };
            if worker.send(WorkerInput::Datagram { peer, datagram: tagged }).is_err() {
                return;
            }
        }
    }
}

fn peer_of_stun(datagram: &[u8]) -> Option<u64> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.unmarshal_binary(datagram).ok()?;
    let username = Username::get_from_as(&message, ATTR_USERNAME).ok()?;
    crate::ufrag::peer_of_username(&username.text)
}
