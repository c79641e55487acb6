//! [`ReceiveBatch`]: reads up to [`BATCH`] datagrams from a UDP socket in
//! one `recvmmsg(2)` call, each with the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`), so a busy port costs one system call per batch and
//! the relay latency of a datagram counts the time it waited in the
//! socket's queue; and, where asked (`SO_RXQ_OVFL`), how many datagrams
//! the kernel has dropped on the socket so far for want of room in its
//! receive buffer.
//!
//! [`SendBatch`] is the other way: datagrams for many peers queued as they
//! are made and put on the socket in one `sendmmsg(2)`.
//!
//! Invariants: the payload buffers are allocated once (the message
//! headers are rebuilt per batch: nix's hold raw pointers, so they cannot
//! live across the receive task's awaits); a datagram longer than
//! [`MAX_DATAGRAM`] arrives truncated and is reported as such, never
//! routed; a missing timestamp falls back to the time of the read.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Datagrams read per system call.
pub const BATCH: usize = 32;
/// Larger than any datagram a browser sends (MTU-sized DTLS records, RTP).
pub const MAX_DATAGRAM: usize = 2048;

/// One datagram of a batch, in the batch's buffer: the caller may work on
/// it in place (decrypt it) until the next datagram is handed over.
#[derive(Debug)]
pub struct Received<'a> {
    pub from: SocketAddr,
    pub bytes: &'a mut [u8],
    /// When the kernel received it, on the caller's clock.
    pub received_at: Instant,
    /// Longer than [`MAX_DATAGRAM`]: `bytes` is a truncated prefix.
    pub truncated: bool,
}

/// Per datagram of the last batch: source, length, kernel time, truncated.
type Meta = (Option<SocketAddr>, usize, Option<SystemTime>, bool);

/// See the module documentation.
pub struct ReceiveBatch {
    buffers: Vec<u8>,
    meta: Vec<Meta>,
    capacity: usize,
    /// The socket's drop count, as the last read's latest datagram
    /// carried it.
    overflowed: Option<u32>,
}

/// Asks the kernel to stamp every datagram `socket` receives.
pub fn enable_timestamps(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Asks the kernel to tell, with every datagram `socket` receives, how many
/// it has dropped on the socket so far because its receive buffer was full
/// ([`ReceiveBatch::overflowed`]).
pub fn enable_overflow_count(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::RxqOvfl, &1).map_err(io::Error::from)
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        Self::with_capacity(BATCH)
    }
}

impl ReceiveBatch {
    /// A batch of up to `capacity` datagrams (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buffers: vec![0; capacity * MAX_DATAGRAM],
            meta: Vec::with_capacity(capacity),
            capacity,
            overflowed: None,
        }
    }

    /// How many datagrams the kernel had dropped on the socket of the last
    /// read that returned datagrams (for want of room, or refused by its
    /// filter) by the time the latest one was queued: a running total
    /// (wrapping at `u32::MAX`), `None` if none of them carried it (see
    /// [`enable_overflow_count`]; the kernel adds it once the socket has
    /// had a drop). One batch may read many sockets in turn, so read it
    /// only after a read that returned `Ok`.
    pub fn overflowed(&self) -> Option<u32> {
        self.overflowed
    }

    /// The most datagrams one read returns; a read that returns fewer has
    /// emptied the socket's queue.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reads what the socket holds, up to the batch's capacity, without
    /// waiting (`WouldBlock` when there is nothing), and hands each to
    /// `each`. `now` is the caller's clock at the read: kernel timestamps
    /// are moved onto it.
    pub fn receive(
        &mut self,
        socket: &impl AsRawFd,
        now: Instant,
        mut each: impl FnMut(Received<'_>),
    ) -> io::Result<usize> {
        self.read(socket)?;
        let wall = SystemTime::now();
        let buffers = self.buffers.chunks_mut(MAX_DATAGRAM);
        for (&(from, len, stamp, truncated), buffer) in self.meta.iter().zip(buffers) {
            let Some(from) = from else { continue };
            let waited = stamp
                .and_then(|at| wall.duration_since(at).ok())
                .unwrap_or(Duration::ZERO);
            each(Received {
                from,
                bytes: &mut buffer[..len],
                received_at: now.checked_sub(waited).unwrap_or(now),
                truncated,
            });
        }
        Ok(self.meta.len())
    }

    /// One `recvmmsg`; fills `meta` and leaves the payloads in `buffers`.
    fn read(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        self.meta.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(
            self.capacity,
            Some(nix::cmsg_space!(TimeSpec, u32)),
        );
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .chunks_mut(MAX_DATAGRAM)
            .map(|chunk| [IoSliceMut::new(chunk)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        self.overflowed = None;
        for message in results {
            let mut stamp = None;
            for cmsg in message.cmsgs().into_iter().flatten() {
                match cmsg {
                    ControlMessageOwned::ScmTimestampns(at) => stamp = Some(system_time(at)),
                    ControlMessageOwned::RxqOvfl(dropped) => self.overflowed = Some(dropped),
                    _ => {}
                }
            }
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            let from = message.address.as_ref().and_then(socket_addr);
            self.meta
                .push((from, message.bytes.min(MAX_DATAGRAM), stamp, truncated));
        }
        Ok(())
    }
}

/// Datagrams queued for one socket, sent together. See the module
/// documentation.
pub struct SendBatch {
    buffers: Vec<u8>,
    /// Destination and length of each queued datagram, in order.
    queued: Vec<(SocketAddr, usize)>,
    capacity: usize,
}

/// What one [`SendBatch::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// Refused by the socket (its buffer full): lost, as a lone send's
    /// would be.
    pub failed: usize,
}

impl SendBatch {
    /// Room for `capacity` datagrams of up to [`MAX_DATAGRAM`] bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buffers: vec![0; capacity * MAX_DATAGRAM],
            queued: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub fn is_full(&self) -> bool {
        self.queued.len() == self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Queues a copy of `bytes` for `to`; false (nothing queued) if the
    /// batch is full or `bytes` is longer than [`MAX_DATAGRAM`].
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        if self.is_full() || bytes.len() > MAX_DATAGRAM {
            return false;
        }
        let start = self.queued.len() * MAX_DATAGRAM;
        self.buffers[start..start + bytes.len()].copy_from_slice(bytes);
        self.queued.push((to, bytes.len()));
        true
    }

    /// Puts every queued datagram on `socket`, in order, without waiting,
    /// and empties the batch.
    pub fn flush(&mut self, socket: &impl AsRawFd) -> Flushed {
        let mut flushed = Flushed::default();
        let mut next = 0;
        while next < self.queued.len() {
            match self.send_from(socket, next) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // The socket's buffer is full: the rest would not fit.
                    flushed.failed += self.queued.len() - next;
                    break;
                }
                Ok(0) | Err(_) => {
                    // The datagram at `next` was refused; the rest may fit.
                    flushed.failed += 1;
                    next += 1;
                }
                Ok(sent) => {
                    flushed.sent += sent;
                    next += sent;
                }
            }
        }
        self.queued.clear();
        flushed
    }

    /// One `sendmmsg` of the queued datagrams from `first` on; how many
    /// the kernel took.
    fn send_from(&self, socket: &impl AsRawFd, first: usize) -> io::Result<usize> {
        let queued = self.queued.get(first..).unwrap_or_default();
        let addresses: Vec<Option<SockaddrStorage>> = queued
            .iter()
            .map(|&(to, _)| Some(SockaddrStorage::from(to)))
            .collect();
        let slices: Vec<[IoSlice<'_>; 1]> = queued
            .iter()
            .enumerate()
            .map(|(offset, &(_, len))| {
                let start = (first + offset) * MAX_DATAGRAM;
                [IoSlice::new(&self.buffers[start..start + len])]
            })
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(queued.len(), None);
        let no_control: [ControlMessage<'_>; 0] = [];
        let results = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices,
            &addresses,
            no_control,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(results.count())
    }
}

fn system_time(at: TimeSpec) -> SystemTime {
    let since_epoch = Duration::new(
        u64::try_from(at.tv_sec()).unwrap_or_default(),
        u32::try_from(at.tv_nsec()).unwrap_or_default(),
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_batch_delivers_each_datagram_to_its_peer_in_order() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peers: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut batch = SendBatch::with_capacity(4);
        for i in 0..4u8 {
            let peer = &peers[usize::from(i) % 3];
            assert!(batch.push(peer.local_addr().unwrap(), &[0x80, i]));
        }
        assert!(batch.is_full());
        assert!(!batch.push(peers[0].local_addr().unwrap(), &[1]));
        assert!(
            !SendBatch::with_capacity(1)
                .push(peers[0].local_addr().unwrap(), &[0; MAX_DATAGRAM + 1])
        );
        assert_eq!(batch.flush(&sender), Flushed { sent: 4, failed: 0 });
        assert!(batch.is_empty());
        let mut buf = [0u8; 8];
        let mut got = |peer: &std::net::UdpSocket| {
            peer.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            buf[..n].to_vec()
        };
        assert_eq!(got(&peers[0]), vec![0x80, 0]);
        assert_eq!(got(&peers[0]), vec![0x80, 3], "in order");
        assert_eq!(got(&peers[1]), vec![0x80, 1]);
        assert_eq!(got(&peers[2]), vec![0x80, 2]);
    }

    #[test]
    fn a_batch_reads_every_queued_datagram_with_its_source_and_kernel_time() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        port.set_nonblocking(true).unwrap();
        enable_timestamps(&port).unwrap();
        // Linux turns receive stamping on for the host in deferred work.
        std::thread::sleep(Duration::from_millis(100));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = port.local_addr().unwrap();
        for i in 0..40u8 {
            peer.send_to(&[0x80, i], to).unwrap();
        }
        peer.send_to(&vec![7u8; MAX_DATAGRAM + 10], to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = ReceiveBatch::default();
        let mut seen = Vec::new();
        let mut waited = Duration::ZERO;
        let now = Instant::now();
        while let Ok(n) = batch.receive(&port, now, |d| {
            waited = waited.max(now.duration_since(d.received_at));
            seen.push((d.from, d.bytes.to_vec(), d.truncated));
        }) {
            assert!(n <= BATCH);
        }
        assert_eq!(seen.len(), 41);
        assert!(
            seen.iter()
                .all(|(from, _, _)| *from == peer.local_addr().unwrap())
        );
        assert_eq!(seen[39].1, vec![0x80, 39], "in order, payload intact");
        assert!(seen[40].2, "the oversized datagram is marked truncated");
        assert!(
            waited >= Duration::from_millis(15),
            "the time queued in the socket counts: {waited:?}"
        );
    }

    #[test]
    fn a_batch_tells_how_many_datagrams_the_full_socket_dropped() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        port.set_nonblocking(true).unwrap();
        socket2::SockRef::from(&port)
            .set_recv_buffer_size(4096)
            .unwrap();
        enable_overflow_count(&port).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = port.local_addr().unwrap();
        let mut batch = ReceiveBatch::default();
        let read = |batch: &mut ReceiveBatch| {
            let mut count = 0;
            while batch.receive(&port, Instant::now(), |_| count += 1).is_ok() {}
            count
        };
        peer.send_to(&[0x80, 0], to).unwrap();
        assert_eq!(read(&mut batch), 1);
        assert_eq!(batch.overflowed(), None, "nothing dropped yet");

        let sent = 500;
        for i in 0..sent {
            peer.send_to(&[0x80; 200], to)
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        let kept = read(&mut batch);
        assert!(kept < sent, "a 4 KiB buffer holds far fewer than {sent}");
        // The count rides on the next datagram queued after the drops.
        peer.send_to(&[0x80, 1], to).unwrap();
        assert_eq!(read(&mut batch), 1);
        assert_eq!(
            batch.overflowed(),
            Some(u32::try_from(sent - kept).unwrap())
        );
    }
}
