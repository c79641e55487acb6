//! [`PortAllocator`]: hands out RTP/RTCP port pairs (an even RTP port and
//! RTCP at +1, RFC 3550 §11) from a configured range, bound and ready.
//!
//! Invariants:
//! - A pair is never handed out twice while its [`PortLease`] is alive; the
//!   lease frees it on drop.
//! - A port the operating system refuses (in use by another program, or
//!   privileged) is skipped, not reported, so a busy host still allocates.
//! - Allocation walks the range round-robin, so a freed pair is the last to
//!   be reused: late packets of an ended call rarely reach the next call.
//! - Thread-safe through one mutex over a small table. This runs at call
//!   setup, never on the packet path.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use super::MediaError;

#[derive(Debug)]
struct Pool {
    first: u16,
    in_use: Vec<bool>,
    cursor: usize,
}

impl Pool {
    fn port(&self, index: usize) -> u16 {
        // index < in_use.len(), which fits the range, so this cannot overflow.
        self.first + 2 * index as u16
    }
}

/// See the module documentation. Cheap to clone; clones share the range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    pool: Arc<Mutex<Pool>>,
}

/// Sockets for one media stream, non-blocking and ready for tokio. Drop the
/// sockets before (or with) the lease: declaration order does that here.
#[derive(Debug)]
pub struct AllocatedPorts {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortLease,
}

/// Holds a port pair; dropping it returns the pair to the allocator.
#[derive(Debug)]
pub struct PortLease {
    index: usize,
    rtp_port: u16,
    pool: Arc<Mutex<Pool>>,
}

impl PortLease {
    pub fn rtp_port(&self) -> u16 {
        self.rtp_port
    }

    pub fn rtcp_port(&self) -> u16 {
        self.rtp_port + 1
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(slot) = lock(&self.pool).in_use.get_mut(self.index) {
            *slot = false;
        }
    }
}

/// The table stays consistent even if a holder panicked, so a poisoned
/// lock is simply taken over.
fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PortAllocator {
    /// Pairs start at the first even port ≥ `min`; the last pair's RTCP
    /// port must be ≤ `max`.
    pub fn new(min: u16, max: u16) -> Result<Self, MediaError> {
        let first = min.checked_add(min & 1).filter(|&p| p != 0);
        let pairs = first
            .filter(|&f| f < max)
            .map(|f| usize::from((max - f - 1) / 2) + 1)
            .ok_or(MediaError::PortRange { min, max })?;
        Ok(Self {
            pool: Arc::new(Mutex::new(Pool {
                first: first.unwrap_or(min),
                in_use: vec![false; pairs],
                cursor: 0,
            })),
        })
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        lock(&self.pool).in_use.len()
    }

    /// Number of pairs currently leased.
    pub fn in_use(&self) -> usize {
        lock(&self.pool).in_use.iter().filter(|&&b| b).count()
    }

    /// Binds the next free pair on `ip`.
    pub fn allocate(&self, ip: IpAddr) -> Result<AllocatedPorts, MediaError> {
        let mut pool = lock(&self.pool);
        let pairs = pool.in_use.len();
        for step in 0..pairs {
            let index = (pool.cursor + step) % pairs;
            if pool.in_use.get(index).copied().unwrap_or(true) {
                continue;
            }
            let port = pool.port(index);
            let Some((rtp, rtcp)) = bind_pair(ip, port)? else {
                continue;
            };
            if let Some(slot) = pool.in_use.get_mut(index) {
                *slot = true;
            }
            pool.cursor = (index + 1) % pairs;
            let lease = PortLease {
                index,
                rtp_port: port,
                pool: Arc::clone(&self.pool),
            };
            return Ok(AllocatedPorts { rtp, rtcp, lease });
        }
        Err(MediaError::PortsExhausted)
    }
}

/// `Ok(None)` when the OS refuses this pair and the next should be tried;
/// an error when binding cannot work at all (an address not on this host).
fn bind_pair(ip: IpAddr, port: u16) -> Result<Option<(UdpSocket, UdpSocket)>, MediaError> {
    let Some(rtp) = bind_one(ip, port)? else {
        return Ok(None);
    };
    let Some(rtcp) = bind_one(ip, port + 1)? else {
        return Ok(None);
    };
    Ok(Some((rtp, rtcp)))
}

fn bind_one(ip: IpAddr, port: u16) -> Result<Option<UdpSocket>, MediaError> {
    match UdpSocket::bind(SocketAddr::new(ip, port)) {
        Ok(socket) => {
            socket.set_nonblocking(true).map_err(MediaError::Bind)?;
            Ok(Some(socket))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(MediaError::Bind(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn range_is_counted_in_even_pairs() {
        assert_eq!(PortAllocator::new(40_000, 40_009).unwrap().capacity(), 5);
        assert_eq!(PortAllocator::new(40_001, 40_009).unwrap().capacity(), 4);
        assert_eq!(PortAllocator::new(40_000, 40_001).unwrap().capacity(), 1);
        for (min, max) in [
            (40_000, 40_000),
            (40_001, 40_002),
            (0, 10),
            (65_535, 65_535),
            (9, 3),
        ] {
            assert!(
                matches!(
                    PortAllocator::new(min, max),
                    Err(MediaError::PortRange { .. })
                ),
                "{min}..={max}"
            );
        }
    }

    #[test]
    fn pairs_are_even_adjacent_bound_and_exclusive_until_dropped() {
        let alloc = PortAllocator::new(42_100, 42_105).unwrap();
        let a = alloc.allocate(LOOPBACK).unwrap();
        let b = alloc.allocate(LOOPBACK).unwrap();
        let c = alloc.allocate(LOOPBACK).unwrap();
        for p in [&a, &b, &c] {
            assert_eq!(p.lease.rtp_port() % 2, 0);
            assert_eq!(p.rtp.local_addr().unwrap().port(), p.lease.rtp_port());
            assert_eq!(p.rtcp.local_addr().unwrap().port(), p.lease.rtp_port() + 1);
        }
        let ports: HashSet<u16> = [&a, &b, &c].iter().map(|p| p.lease.rtp_port()).collect();
        assert_eq!(ports.len(), 3);
        assert!(matches!(
            alloc.allocate(LOOPBACK),
            Err(MediaError::PortsExhausted)
        ));
        assert_eq!(alloc.in_use(), 3);
        let freed = b.lease.rtp_port();
        drop(b);
        assert_eq!(alloc.in_use(), 2);
        assert_eq!(alloc.allocate(LOOPBACK).unwrap().lease.rtp_port(), freed);
    }

    #[test]
    fn port_the_os_refuses_is_skipped() {
        let alloc = PortAllocator::new(42_200, 42_209).unwrap();
        // Another program holds the RTCP port of the first pair.
        let squatter = UdpSocket::bind((LOOPBACK, 42_201)).unwrap();
        let got = alloc.allocate(LOOPBACK).unwrap();
        assert_eq!(got.lease.rtp_port(), 42_202);
        assert_eq!(alloc.in_use(), 1, "the refused pair must not stay marked");
        drop(squatter);
    }

    #[test]
    fn freed_pair_is_reused_last() {
        let alloc = PortAllocator::new(42_300, 42_307).unwrap();
        let first = alloc.allocate(LOOPBACK).unwrap();
        let port = first.lease.rtp_port();
        drop(first);
        let next = alloc.allocate(LOOPBACK).unwrap();
        assert_ne!(next.lease.rtp_port(), port);
    }

    #[test]
    fn address_not_on_this_host_fails_fast() {
        let alloc = PortAllocator::new(42_400, 42_499).unwrap();
        // TEST-NET-1 (RFC 5737) is never a local address.
        let err = alloc
            .allocate(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
            .unwrap_err();
        assert!(matches!(err, MediaError::Bind(_)), "{err:?}");
        assert_eq!(alloc.in_use(), 0);
    }

    #[test]
    fn concurrent_allocation_never_hands_out_a_port_twice() {
        let alloc = PortAllocator::new(42_500, 42_699).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let alloc = alloc.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|_| alloc.allocate(LOOPBACK).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let held: Vec<AllocatedPorts> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let unique: HashSet<u16> = held.iter().map(|p| p.lease.rtp_port()).collect();
        assert_eq!(unique.len(), 80);
        assert_eq!(alloc.in_use(), 80);
        drop(held);
        assert_eq!(alloc.in_use(), 0);
    }
}
