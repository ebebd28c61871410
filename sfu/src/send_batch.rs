//! A media worker's outgoing UDP datagrams, handed to the kernel together.
//!
//! A worker used to send each datagram with its own `send_to`: at 1→400
//! forwarding that is one system call per subscriber per packet, and a fifth
//! of the SFU threads' time went to the kernel. Now the worker queues a wake's
//! datagrams per socket and sends them with `sendmmsg` (Linux), up to
//! [`MAX_MESSAGES`] per call, in the order they were queued, so each
//! destination still gets its datagrams in order.
//!
//! A datagram the kernel refuses is dropped and logged as `send_to` failures
//! were, and the datagrams after it are still sent: `sendmmsg` stops at the
//! first failing message and reports how many went out before it (or the error
//! itself when that was the first), so the batch resumes after the failed one.
//!
//! `sendmmsg` comes from rustix (a safe wrapper; the workspace forbids unsafe
//! code). quinn-udp was the first choice but sends one destination per call
//! (GSO segments to a single address), and a fan-out wake has one or a few
//! datagrams for each of hundreds of addresses, so it would save nothing here.

use std::net::{SocketAddr, UdpSocket};

use bytes::BytesMut;

/// At most this many datagrams in one `sendmmsg` (the kernel's limit is 1024,
/// UIO_MAXIOV); a bigger batch is sent in several calls.
pub const MAX_MESSAGES: usize = 256;

/// Datagrams queued for each of the SFU's UDP sockets, in queuing order.
pub struct SendBatch {
    queued: Vec<Vec<(SocketAddr, BytesMut)>>,
}

/// What one flush did: datagrams the kernel took, and system calls made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: u64,
    pub calls: u64,
}

impl SendBatch {
    pub fn new(sockets: usize) -> Self {
        Self { queued: (0..sockets).map(|_| Vec::new()).collect() }
    }

    pub fn push(&mut self, socket: usize, to: SocketAddr, bytes: BytesMut) {
        self.queued[socket].push((to, bytes));
    }

    /// Datagrams waiting on all sockets.
    pub fn len(&self) -> usize {
        self.queued.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.iter().all(Vec::is_empty)
    }

    /// Sends everything queued; `sockets[i]` is the socket of queue `i`.
    pub fn flush<'a>(&mut self, sockets: impl IntoIterator<Item = &'a UdpSocket>) -> Flushed {
        let mut total = Flushed::default();
        for (queue, socket) in self.queued.iter_mut().zip(sockets) {
            if queue.is_empty() {
                continue;
            }
            let flushed = send_all(socket, queue);
            total.sent += flushed.sent;
            total.calls += flushed.calls;
            queue.clear();
        }
        total
    }
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, datagrams: &[(SocketAddr, BytesMut)]) -> Flushed {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::io::IoSlice;

    let mut flushed = Flushed::default();
    let mut next = 0;
    while next < datagrams.len() {
        let chunk = &datagrams[next..datagrams.len().min(next + MAX_MESSAGES)];
        let addresses: Vec<SocketAddrAny> = chunk.iter().map(|(to, _)| SocketAddrAny::from(*to)).collect();
        let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, bytes)| [IoSlice::new(bytes)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            chunk.iter().map(|_| SendAncillaryBuffer::default()).collect();
        let mut messages: Vec<MMsgHdr<'_>> = addresses
            .iter()
            .zip(&slices)
            .zip(controls.iter_mut())
            .map(|((address, slice), control)| MMsgHdr::new_with_addr(address, slice, control))
            .collect();
        flushed.calls += 1;
        match sendmmsg(socket, &mut messages, SendFlags::empty()) {
            // Zero is not returned for a non-empty batch; count it as the first
            // datagram failing so the loop always moves on.
            Ok(0) => {
                tracing::trace!(to = %chunk[0].0, "send failed: nothing sent");
                next += 1;
            }
            Ok(count) => {
                flushed.sent += count as u64;
                next += count;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => {
                let error = std::io::Error::from(error);
                tracing::trace!(to = %chunk[0].0, %error, "send failed");
                next += 1;
            }
        }
    }
    flushed
}

#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, datagrams: &[(SocketAddr, BytesMut)]) -> Flushed {
    let mut flushed = Flushed::default();
    for (to, bytes) in datagrams {
        flushed.calls += 1;
        match socket.send_to(bytes, to) {
            Ok(_) => flushed.sent += 1,
            Err(error) => tracing::trace!(%to, %error, "send failed"),
        }
    }
    flushed
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use bytes::BytesMut;

    use super::*;

    fn receiver() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        socket.set_read_timeout(Some(Duration::from_secs(2))).expect("a read timeout");
        socket
    }

    fn received(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| {
                let (len, _) = socket.recv_from(&mut buf).expect("every datagram arrives");
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn sends_every_datagram_in_order_per_destination_in_few_calls() {
        let sender = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let (a, b) = (receiver(), receiver());
        let mut batch = SendBatch::new(1);
        let count = MAX_MESSAGES + 10;
        for i in 0..count {
            let to = if i % 2 == 0 { &a } else { &b };
            batch.push(0, to.local_addr().expect("bound"), BytesMut::from(&(i as u32).to_be_bytes()[..]));
        }
        assert_eq!(batch.len(), count);
        let flushed = batch.flush([&sender]);
        assert_eq!(flushed.sent, count as u64);
        assert!(batch.is_empty());
        if cfg!(target_os = "linux") {
            assert_eq!(flushed.calls, 2, "one sendmmsg per {MAX_MESSAGES} datagrams");
        }
        let expect = |parity: usize| -> Vec<Vec<u8>> {
            (0..count).filter(|i| i % 2 == parity).map(|i| (i as u32).to_be_bytes().to_vec()).collect()
        };
        assert_eq!(received(&a, count / 2), expect(0));
        assert_eq!(received(&b, count / 2), expect(1));
    }

    #[test]
    fn a_refused_datagram_does_not_drop_the_others() {
        let sender = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let good = receiver();
        let to = good.local_addr().expect("bound");
        // An IPv6 destination on an IPv4 socket fails (EAFNOSUPPORT / EINVAL) before and after good ones.
        let bad = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9));
        let mut batch = SendBatch::new(1);
        batch.push(0, bad, BytesMut::from(&b"x"[..]));
        batch.push(0, to, BytesMut::from(&b"1"[..]));
        batch.push(0, bad, BytesMut::from(&b"y"[..]));
        batch.push(0, to, BytesMut::from(&b"2"[..]));
        let flushed = batch.flush([&sender]);
        assert_eq!(flushed.sent, 2);
        assert_eq!(received(&good, 2), vec![b"1".to_vec(), b"2".to_vec()]);
    }
}
