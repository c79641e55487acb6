//! [`ReceiveBatch`]: reads up to [`BATCH`] datagrams from a UDP socket in
//! one `recvmmsg(2)` call, each with the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`), so a busy port costs one system call per batch and
//! the relay latency of a datagram counts the time it waited in the
//! socket's queue.
//!
//! Invariants: the payload buffers are allocated once (the message
//! headers are rebuilt per batch: nix's hold raw pointers, so they cannot
//! live across the receive task's awaits); a datagram longer than
//! [`MAX_DATAGRAM`] arrives truncated and is reported as such, never
//! routed; a missing timestamp falls back to the time of the read.

use std::io;
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Datagrams read per system call.
pub const BATCH: usize = 32;
/// Larger than any datagram a browser sends (MTU-sized DTLS records, RTP).
pub const MAX_DATAGRAM: usize = 2048;

/// One datagram of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub from: SocketAddr,
    pub bytes: &'a [u8],
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
}

/// Asks the kernel to stamp every datagram `socket` receives.
pub fn enable_timestamps(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        Self {
            buffers: vec![0; BATCH * MAX_DATAGRAM],
            meta: Vec::with_capacity(BATCH),
        }
    }
}

impl ReceiveBatch {
    /// Reads what the socket holds, up to [`BATCH`] datagrams, without
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
        for (index, &(from, len, stamp, truncated)) in self.meta.iter().enumerate() {
            let Some(from) = from else { continue };
            let waited = stamp
                .and_then(|at| wall.duration_since(at).ok())
                .unwrap_or(Duration::ZERO);
            let start = index * MAX_DATAGRAM;
            each(Received {
                from,
                bytes: self.buffers.get(start..start + len).unwrap_or_default(),
                received_at: now.checked_sub(waited).unwrap_or(now),
                truncated,
            });
        }
        Ok(self.meta.len())
    }

    /// One `recvmmsg`; fills `meta` and leaves the payloads in `buffers`.
    fn read(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        self.meta.clear();
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)));
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
        for message in results {
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(at) => Some(system_time(at)),
                    _ => None,
                })
            });
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            let from = message.address.as_ref().and_then(socket_addr);
            self.meta
                .push((from, message.bytes.min(MAX_DATAGRAM), stamp, truncated));
        }
        Ok(())
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
}
