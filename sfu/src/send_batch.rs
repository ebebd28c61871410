//! A media worker's outgoing UDP datagrams, handed to the kernel together.
//!
//! A worker used to send each datagram with its own `send_to`: at 1→400
//! forwarding that is one system call per subscriber per packet. Now the
//! worker queues a wake's datagrams per socket and flushes them at the end of
//! the wake (or when many wait). On Linux:
//! - datagrams of one size to one address (a burst of a video frame to one
//!   subscriber) go out as one UDP GSO send, which the kernel cuts into
//!   datagrams after one pass through the UDP/IP stack;
//! - the others go out with `sendmmsg`, up to [`MAX_MESSAGES`] per call.
//!
//! Each destination gets its datagrams in the order they were queued.
//!
//! A datagram the kernel refuses is dropped and logged as `send_to` failures
//! were, and the datagrams after it are still sent: `sendmmsg` stops at the
//! first failing message and reports how many went out before it (or the error
//! itself when that was the first), so the batch resumes after the failed one.
//! A failed GSO send is retried datagram by datagram; after EIO or EINVAL (a
//! kernel or device without UDP GSO) the worker stops using GSO.
//!
//! The system calls come from rustix (`sendmmsg`) and nix (`sendmsg` with a
//! UDP_SEGMENT control message, which rustix does not offer), both safe
//! wrappers: the workspace forbids unsafe code. quinn-udp does not fit: it
//! sends one destination per call (so a fan-out wake, one or two datagrams
//! for each of hundreds of addresses, would save nothing), and its socket
//! setup turns on UDP_GRO, IP_PKTINFO, IP_RECVTOS and PMTU probing on the
//! socket, which the receive loop (`udp.rs`) reads with a plain `recv_from`:
//! with GRO on it would be handed several datagrams glued together.

use std::net::{SocketAddr, UdpSocket};

use bytes::BytesMut;

/// At most this many datagrams in one `sendmmsg` (the kernel's limit is 1024,
/// UIO_MAXIOV); a bigger batch is sent in several calls.
pub const MAX_MESSAGES: usize = 256;
/// At most this many datagrams in one GSO send (older kernels take 64).
const MAX_SEGMENTS: usize = 64;
/// GSO only for datagrams this small: a segment must fit the path MTU, and a
/// bigger datagram (which the IP layer would fragment) is sent alone.
const MAX_SEGMENT_SIZE: usize = 1400;
/// A GSO send's payload stays under the 64 KiB UDP limit.
const MAX_GSO_BYTES: usize = 60_000;

type Datagram = (SocketAddr, BytesMut);

/// Datagrams queued for each of the SFU's UDP sockets, in queuing order.
pub struct SendBatch {
    queued: Vec<Vec<Datagram>>,
    /// Whether same-size datagrams to one address go out as one GSO send. Off
    /// where the kernel or the device refused it once (EIO or EINVAL).
    gso: bool,
}

/// What one flush did: datagrams the kernel took, and system calls made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: u64,
    pub calls: u64,
}

impl Flushed {
    fn add(&mut self, other: Flushed) {
        self.sent += other.sent;
        self.calls += other.calls;
    }
}

impl SendBatch {
    pub fn new(sockets: usize) -> Self {
        Self { queued: (0..sockets).map(|_| Vec::new()).collect(), gso: cfg!(target_os = "linux") }
    }

    /// Without GSO: every datagram is its own message in a `sendmmsg`.
    #[cfg(test)]
    fn without_gso(self) -> Self {
        Self { gso: false, ..self }
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
            if self.gso {
                total.add(send_grouped(socket, queue, &mut self.gso));
            } else {
                total.add(send_each(socket, &queue.iter().collect::<Vec<_>>()));
            }
            queue.clear();
        }
        total
    }
}

/// Same-size datagrams to one address as GSO sends, the rest with `sendmmsg`.
///
/// The datagrams are ordered by destination (a stable sort: each address's
/// datagrams keep their order), and a run of equal sizes to one address, the
/// last possibly shorter, becomes one send the kernel cuts into datagrams.
/// What is left waits for one `sendmmsg`, sent before the next group so no
/// destination sees its datagrams reordered.
fn send_grouped(socket: &UdpSocket, queue: &[Datagram], gso: &mut bool) -> Flushed {
    let mut flushed = Flushed::default();
    let mut order: Vec<&Datagram> = queue.iter().collect();
    order.sort_by_key(|(to, _)| *to);
    let mut singles: Vec<&Datagram> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let end = group_end(&order, start);
        if end - start < 2 || !*gso {
            singles.extend(&order[start..end]);
        } else {
            flushed.add(send_each(socket, &singles));
            singles.clear();
            match send_segments(socket, &order[start..end]) {
                Ok(()) => flushed.add(Flushed { sent: (end - start) as u64, calls: 1 }),
                Err(error) => {
                    // Without GSO in the kernel or the device, the send fails
                    // with EIO or EINVAL: stop trying. Any failure: send the
                    // group's datagrams one by one, each failing or not as it would.
                    if matches!(error.raw_os_error(), Some(EIO | EINVAL)) {
                        tracing::info!(%error, "UDP GSO send failed; sending datagrams one by one from now on");
                        *gso = false;
                    }
                    flushed.calls += 1;
                    flushed.add(send_each(socket, &order[start..end]));
                }
            }
        }
        start = end;
    }
    flushed.add(send_each(socket, &singles));
    flushed
}

const EIO: i32 = 5;
const EINVAL: i32 = 22;

/// Where the GSO group starting at `start` ends (exclusive): same address,
/// same size, at most one shorter datagram last, within the GSO limits.
fn group_end(order: &[&Datagram], start: usize) -> usize {
    let (to, first) = order[start];
    let size = first.len();
    if size == 0 || size > MAX_SEGMENT_SIZE {
        return start + 1;
    }
    let mut end = start + 1;
    let mut bytes = size;
    while end < order.len() && end - start < MAX_SEGMENTS {
        let (next_to, next) = order[end];
        if next_to != to || next.is_empty() || next.len() > size || bytes + next.len() > MAX_GSO_BYTES {
            break;
        }
        bytes += next.len();
        end += 1;
        if next.len() < size {
            break;
        }
    }
    end
}

/// One GSO send: the datagrams (same address, equal sizes but the last) as
/// one payload of several slices, cut by the kernel at the first one's size.
#[cfg(target_os = "linux")]
fn send_segments(socket: &UdpSocket, group: &[&Datagram]) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let to = SockaddrStorage::from(group[0].0);
    let size = u16::try_from(group[0].1.len()).map_err(|_| std::io::Error::from_raw_os_error(EINVAL))?;
    let slices: Vec<IoSlice<'_>> = group.iter().map(|(_, bytes)| IoSlice::new(bytes)).collect();
    loop {
        match sendmsg(
            socket.as_raw_fd(),
            &slices,
            &[ControlMessage::UdpGsoSegments(&size)],
            MsgFlags::empty(),
            Some(&to),
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(std::io::Error::from(errno)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn send_segments(_socket: &UdpSocket, _group: &[&Datagram]) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(EINVAL))
}

/// Each datagram on its own, in order, with as few `sendmmsg` calls as fit.
#[cfg(target_os = "linux")]
fn send_each(socket: &UdpSocket, datagrams: &[&Datagram]) -> Flushed {
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
fn send_each(socket: &UdpSocket, datagrams: &[&Datagram]) -> Flushed {
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
        let mut batch = SendBatch::new(1).without_gso();
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
    fn same_size_datagrams_to_one_address_go_out_as_one_gso_send_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let (a, b) = (receiver(), receiver());
        let (to_a, to_b) = (a.local_addr().expect("bound"), b.local_addr().expect("bound"));
        let mut batch = SendBatch::new(1);
        // Five full datagrams and a shorter last one to a, interleaved with b's.
        let mut sent_a = Vec::new();
        for i in 0..6u8 {
            let size = if i == 5 { 300 } else { 1200 };
            let datagram = vec![i; size];
            batch.push(0, to_a, BytesMut::from(&datagram[..]));
            sent_a.push(datagram);
            batch.push(0, to_b, BytesMut::from(&[100 + i][..]));
        }
        let flushed = batch.flush([&sender]);
        assert_eq!(flushed.sent, 12);
        if cfg!(target_os = "linux") {
            // b's one-byte datagrams also share a size: two GSO sends.
            assert_eq!(flushed.calls, 2, "one GSO send per destination");
        }
        assert_eq!(received(&a, 6), sent_a);
        assert_eq!(received(&b, 6), (0..6u8).map(|i| vec![100 + i]).collect::<Vec<_>>());
    }

    #[test]
    fn a_group_ends_at_another_size_a_bigger_one_or_the_segment_limit() {
        let at: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 1));
        let other: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 2));
        let datagram = |to, size: usize| (to, BytesMut::from(&vec![0u8; size][..]));
        let queue = [datagram(at, 100), datagram(at, 100), datagram(at, 50), datagram(at, 100)];
        let order: Vec<&Datagram> = queue.iter().collect();
        assert_eq!(group_end(&order, 0), 3, "a shorter datagram ends the group");
        assert_eq!(group_end(&order, 3), 4);
        let queue = [datagram(at, 100), datagram(at, 200), datagram(other, 100)];
        let order: Vec<&Datagram> = queue.iter().collect();
        assert_eq!(group_end(&order, 0), 1, "a bigger one is not a segment");
        assert_eq!(group_end(&order, 1), 2, "nor is another address");
        let queue: Vec<Datagram> = (0..MAX_SEGMENTS + 3).map(|_| datagram(at, 100)).collect();
        let order: Vec<&Datagram> = queue.iter().collect();
        assert_eq!(group_end(&order, 0), MAX_SEGMENTS);
        let queue = [datagram(at, MAX_SEGMENT_SIZE + 1), datagram(at, MAX_SEGMENT_SIZE + 1)];
        let order: Vec<&Datagram> = queue.iter().collect();
        assert_eq!(group_end(&order, 0), 1, "too big for one segment");
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
