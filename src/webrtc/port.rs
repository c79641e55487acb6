//! The browser port: how a UDP port that many calls share is bound, and
//! [`BrowserRoutes`], its routing table, sans-IO.
//!
//! A browser's first datagrams are STUN connectivity checks whose USERNAME
//! starts with our ICE username fragment, which is random per call; the
//! table routes those to the call that owns the fragment. The call's
//! session verifies each check (MESSAGE-INTEGRITY under the call's ICE
//! password) and only then does the host have the table learn the
//! browser's address (a peer-reflexive candidate, RFC 8445 §7.3.1.3).
//! Every later datagram (DTLS, SRTP, SRTCP, consent checks) is routed by
//! its source address, and the session authenticates it too (DTLS
//! fingerprint, SRTP tags), so a forged datagram can at worst be dropped
//! by the call it reached, and forged checks teach the table nothing.
//!
//! Invariants:
//! - The socket asks the kernel for a receive buffer of
//!   [`RECV_BUFFER_BYTES`]: one port carries many calls, so a short stall
//!   of its reader must not cost datagrams.
//! - Datagrams that are neither STUN, DTLS nor RTP never leave the kernel
//!   ([`super::kernel_filter`]); the table refuses any that do.
//! - Checks from addresses a call has not verified (each costs the call an
//!   HMAC) reach it at most [`UNVERIFIED_CHECKS_PER_SECOND`] a second, and
//!   all calls together at most [`UNVERIFIED_CHECKS_PER_SOURCE`] a second
//!   from one IP address; the rest are shed ([`Routed::OverBudget`]), so a
//!   flood of forged checks naming a call, or naming many calls from one
//!   host, cannot crowd media out. Checks from verified addresses are not
//!   limited. The per-source budgets live in a fixed table of
//!   [`SOURCE_BUCKETS`] entries hashed with a per-port key, so a flood
//!   from random addresses grows no state.
//! - An address belongs to at most one call; the first call to learn it
//!   keeps it until that call forgets it or leaves the table.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::batch::{enable_overflow_count, enable_timestamps};
use super::demux::{PacketClass, classify, local_ufrag};

/// The kernel receive buffer asked for on a browser port. Every call's
/// datagrams queue here whenever its reader is not running, and the kernel
/// drops what does not fit: its default (about 200 KiB, some 13 ms of 300
/// calls) overflowed under load. 8 MiB holds about 160 ms of 1,000 calls at
/// 50 packets a second, counting the ~1 KiB Linux charges per small
/// datagram. The kernel caps it at `net.core.rmem_max`.
pub const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// A browser paces its checks (RFC 8445 §6.1.4.2: one every 50 ms across
/// all its pairs, plus retransmissions), so 100 a second leaves a real
/// browser ample room.
pub const UNVERIFIED_CHECKS_PER_SECOND: u32 = 100;
/// Browsers behind one NAT or one TURN server share its address, and each
/// needs only a check or two before one verifies (its address is then
/// known): 1,000 a second lets dozens set up at once.
pub const UNVERIFIED_CHECKS_PER_SOURCE: u32 = 1_000;
/// Entries of the per-source budget table: two sources share an entry
/// only by a hash collision, which a per-port key makes unpredictable.
pub const SOURCE_BUCKETS: usize = 4096;

/// Counters of a browser port, read by the metrics exporter.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// From an address no call knows, or STUN for an unknown fragment.
    pub unknown_peer: AtomicU64,
    /// Neither STUN, DTLS nor RTP (RFC 7983), or truncated.
    pub malformed: AtomicU64,
    /// Checks from unverified addresses over a call's or a source's budget.
    pub unverified_checks: AtomicU64,
    pub send_failed: AtomicU64,
    /// Audio of transcoded calls the shard had no time for (waited too
    /// long to be converted, or found the queue full).
    pub queue_full: AtomicU64,
    /// Datagrams the kernel dropped: those its socket filter refused and
    /// those that found the port's receive buffer full (the kernel counts
    /// both as one); its running total, as the port's latest datagram told
    /// it.
    pub kernel_dropped: AtomicU64,
    /// Checks and DTLS records over the shard's handshake work per turn
    /// that found its queue of waiting ones full.
    pub handshake_shed: AtomicU64,
    /// Datagrams the kernel dropped on the shard's trunk sockets (their
    /// receive buffers full), summed over the calls' sockets.
    pub trunk_kernel_dropped: AtomicU64,
}

/// A non-blocking UDP socket on `listen`, with the kernel filter attached,
/// receive timestamps on and [`RECV_BUFFER_BYTES`] asked for; a smaller
/// buffer than asked is no reason not to serve.
pub fn bind_socket(listen: SocketAddr) -> io::Result<std::net::UdpSocket> {
    bind_with_buffer(listen, RECV_BUFFER_BYTES)
}

/// [`bind_socket`], asking for a receive buffer of `recv_buffer` bytes.
fn bind_with_buffer(listen: SocketAddr, recv_buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(recv_buffer);
    super::kernel_filter::attach(&socket)?;
    // Without kernel timestamps, latency is counted from the read.
    let _ = enable_timestamps(&socket);
    // Without the count, the kernel's drops are seen only in /proc.
    let _ = enable_overflow_count(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed<K> {
    Call(K),
    /// Neither STUN, DTLS nor RTP.
    Malformed,
    /// From an address no call knows, and not a check naming a call.
    Unknown,
    /// A check naming a call from an unverified address, over the call's
    /// budget or its source's.
    OverBudget,
}

/// A call's budget of checks from unverified addresses: a count per
/// one-second window.
#[derive(Debug)]
struct CheckBudget {
    window: Instant,
    spent: u32,
}

impl CheckBudget {
    fn new(now: Instant) -> Self {
        Self {
            window: now,
            spent: 0,
        }
    }

    /// Whether one more check fits at `now`, `limit` a second.
    fn take(&mut self, now: Instant, limit: u32) -> bool {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.spent = 0;
        }
        self.spent = self.spent.saturating_add(1);
        self.spent <= limit
    }

    /// Gives back a check taken but not spent.
    fn refund(&mut self) {
        self.spent = self.spent.saturating_sub(1);
    }
}

/// The budgets of unverified checks per source IP address, in a table of
/// fixed size (see the module documentation).
#[derive(Debug)]
struct SourceBudgets {
    key: RandomState,
    buckets: Box<[CheckBudget]>,
}

impl SourceBudgets {
    fn new(now: Instant) -> Self {
        Self {
            key: RandomState::new(),
            buckets: (0..SOURCE_BUCKETS).map(|_| CheckBudget::new(now)).collect(),
        }
    }

    fn bucket(&mut self, source: IpAddr) -> &mut CheckBudget {
        let slot = self.key.hash_one(source) as usize % SOURCE_BUCKETS;
        &mut self.buckets[slot]
    }
}

/// See the module documentation. `K` names a call to its host.
#[derive(Debug)]
pub struct BrowserRoutes<K> {
    by_ufrag: HashMap<String, (K, CheckBudget)>,
    by_addr: HashMap<SocketAddr, K>,
    sources: SourceBudgets,
}

impl<K> Default for BrowserRoutes<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            sources: SourceBudgets::new(Instant::now()),
        }
    }
}

impl<K: Copy + Eq> BrowserRoutes<K> {
    /// Routes checks naming `ufrag` to `call`; false if the fragment is
    /// taken (fragments are random, so this means a bug or a collision).
    pub fn register(&mut self, ufrag: &str, call: K, now: Instant) -> bool {
        match self.by_ufrag.entry(ufrag.to_owned()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert((call, CheckBudget::new(now)));
                true
            }
        }
    }

    /// Forgets `call`'s fragment and addresses.
    pub fn remove(&mut self, ufrag: &str, call: K) {
        if self
            .by_ufrag
            .get(ufrag)
            .is_some_and(|(owner, _)| *owner == call)
        {
            self.by_ufrag.remove(ufrag);
        }
        self.by_addr.retain(|_, owner| *owner != call);
    }

    /// Routes `address`'s datagrams to `call`, once its session verified a
    /// check from it. An address another call holds stays that call's.
    pub fn learn(&mut self, address: SocketAddr, call: K) {
        self.by_addr.entry(address).or_insert(call);
    }

    /// Stops routing `address` to `call`.
    pub fn forget(&mut self, address: SocketAddr, call: K) {
        if self.by_addr.get(&address) == Some(&call) {
            self.by_addr.remove(&address);
        }
    }

    /// Calls in the table.
    pub fn len(&self) -> usize {
        self.by_ufrag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty()
    }

    /// Which call `datagram` from `from`, received at `now`, is for.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Routed<K> {
        let class = classify(datagram);
        if class == PacketClass::Other {
            return Routed::Malformed;
        }
        if let Some(call) = self.by_addr.get(&from) {
            return Routed::Call(*call);
        }
        let ufrag = match class {
            PacketClass::Stun => local_ufrag(datagram),
            _ => None,
        };
        let Some((call, budget)) = ufrag.and_then(|ufrag| self.by_ufrag.get_mut(ufrag)) else {
            return Routed::Unknown;
        };
        if !budget.take(now, UNVERIFIED_CHECKS_PER_SECOND) {
            return Routed::OverBudget;
        }
        let source = self.sources.bucket(from.ip());
        if !source.take(now, UNVERIFIED_CHECKS_PER_SOURCE) {
            // Shed for its source: the call's own budget is not spent.
            budget.refund();
            return Routed::OverBudget;
        }
        Routed::Call(*call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_for(ufrag: &str) -> Vec<u8> {
        let username = format!("{ufrag}:remote");
        let mut attrs = vec![0x00, 0x06];
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        message.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        message.extend_from_slice(&[9; 12]);
        message.extend_from_slice(&attrs);
        message
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const DTLS: &[u8] = &[22, 254, 253, 0];

    #[test]
    fn a_browser_port_gets_the_receive_buffer_it_asks_for() {
        let granted = |socket: &std::net::UdpSocket| {
            socket2::SockRef::from(socket).recv_buffer_size().unwrap()
        };
        let stock = granted(&std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        // Any kernel grants a buffer smaller than its default: a port that
        // ends up with the default did not ask.
        let small = bind_with_buffer(addr("127.0.0.1:0"), 4096).unwrap();
        assert!(
            granted(&small) < stock,
            "asked for 4096 bytes, got {} (the default is {stock})",
            granted(&small)
        );
        // The real ask gets as much as net.core.rmem_max lets it have.
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let socket = bind_socket(addr("127.0.0.1:0")).unwrap();
        assert!(
            granted(&socket) >= RECV_BUFFER_BYTES.min(cap).max(stock),
            "asked for {RECV_BUFFER_BYTES} bytes (rmem_max {cap}), got {}",
            granted(&socket)
        );
    }

    #[test]
    fn the_kernel_counts_what_the_filter_dropped() {
        use crate::webrtc::batch::ReceiveBatch;
        let port = bind_socket(addr("127.0.0.1:0")).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = port.local_addr().unwrap();
        let junk = 50;
        for i in 0..junk {
            // First bytes 4..=19: no RFC 7983 class.
            sender.send_to(&[4 + (i % 16) as u8, 1, 2, 3], to).unwrap();
        }
        sender.send_to(&[0x80, 0, 0, 1], to).unwrap();
        let mut batch = ReceiveBatch::default();
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while read.is_empty() && Instant::now() < deadline {
            let _ = batch.receive(&port, Instant::now(), |datagram| {
                read.push(datagram.bytes.to_vec())
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(read, vec![vec![0x80, 0, 0, 1]], "only RTP came through");
        assert_eq!(
            batch.overflowed(),
            Some(junk),
            "each filtered datagram counted"
        );
    }

    #[test]
    fn checks_route_by_fragment_then_datagrams_by_address() {
        let now = Instant::now();
        let mut routes = BrowserRoutes::default();
        assert!(routes.register("fragA", 1, now));
        assert!(routes.register("fragB", 2, now));
        assert!(!routes.register("fragA", 3, now), "fragments are unique");
        let browser = addr("192.0.2.1:5000");
        let stranger = addr("192.0.2.9:5000");

        assert_eq!(
            routes.route(stranger, &[0xff, 1, 2], now),
            Routed::Malformed
        );
        assert_eq!(routes.route(stranger, &[], now), Routed::Malformed);
        assert_eq!(
            routes.route(stranger, &[0x80, 1, 2, 3], now),
            Routed::Unknown
        );
        assert_eq!(
            routes.route(browser, &check_for("fragA"), now),
            Routed::Call(1)
        );
        assert_eq!(
            routes.route(browser, DTLS, now),
            Routed::Unknown,
            "a check teaches the table no address until the call says so"
        );
        routes.learn(browser, 1);
        assert_eq!(routes.route(browser, DTLS, now), Routed::Call(1));
        routes.learn(browser, 2);
        assert_eq!(
            routes.route(browser, DTLS, now),
            Routed::Call(1),
            "the first call to learn an address keeps it"
        );
        routes.forget(browser, 2);
        assert_eq!(routes.route(browser, DTLS, now), Routed::Call(1));

        routes.remove("fragA", 1);
        assert_eq!(routes.route(browser, DTLS, now), Routed::Unknown);
        assert_eq!(
            routes.route(browser, &check_for("fragA"), now),
            Routed::Unknown
        );
        assert_eq!(routes.len(), 1);
    }

    #[test]
    fn a_flood_of_checks_naming_a_call_is_shed_past_its_budget() {
        let start = Instant::now();
        let mut routes = BrowserRoutes::default();
        routes.register("fragA", 1, start);
        routes.register("fragB", 2, start);
        let browser = addr("192.0.2.1:5000");
        routes.learn(browser, 1);
        let flood = 3 * UNVERIFIED_CHECKS_PER_SECOND;
        let mut routed = 0;
        for i in 0..flood {
            let attacker = SocketAddr::new(addr("198.51.100.1:1").ip(), 1000 + i as u16);
            match routes.route(attacker, &check_for("fragA"), start) {
                Routed::Call(1) => routed += 1,
                Routed::OverBudget => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(routed, UNVERIFIED_CHECKS_PER_SECOND, "the budget, no more");
        // The verified browser and another call are not part of that budget.
        assert_eq!(
            routes.route(browser, &check_for("fragA"), start),
            Routed::Call(1)
        );
        assert_eq!(
            routes.route(browser, &[0x80, 0, 0, 1], start),
            Routed::Call(1)
        );
        let other = addr("192.0.2.2:5000");
        assert_eq!(
            routes.route(other, &check_for("fragB"), start),
            Routed::Call(2)
        );
        // A second later the budget is whole again.
        let later = start + Duration::from_secs(1);
        let attacker = addr("198.51.100.1:1");
        assert_eq!(
            routes.route(attacker, &check_for("fragA"), later),
            Routed::Call(1)
        );
    }

    #[test]
    fn one_source_checking_many_calls_is_shed_past_its_own_budget() {
        let now = Instant::now();
        let mut routes = BrowserRoutes::default();
        let calls = 20;
        for call in 0..calls {
            routes.register(&format!("frag{call}"), call, now);
        }
        let attacker = addr("198.51.100.7:1");
        let per_call = UNVERIFIED_CHECKS_PER_SECOND * 4 / 5;
        let mut routed = 0;
        for call in 0..calls {
            for i in 0..per_call {
                let from = SocketAddr::new(attacker.ip(), 1000 + i as u16);
                match routes.route(from, &check_for(&format!("frag{call}")), now) {
                    Routed::Call(to) => {
                        assert_eq!(to, call);
                        routed += 1;
                    }
                    Routed::OverBudget => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(routed, UNVERIFIED_CHECKS_PER_SOURCE, "the source's budget");
        // A browser elsewhere still reaches the last call, whose own budget
        // the shed checks did not spend.
        let browser = addr("192.0.2.1:5000");
        let reached = (0..UNVERIFIED_CHECKS_PER_SECOND)
            .filter(|_| {
                routes.route(browser, &check_for(&format!("frag{}", calls - 1)), now)
                    == Routed::Call(calls - 1)
            })
            .count();
        assert_eq!(reached, UNVERIFIED_CHECKS_PER_SECOND as usize);
        // Later the source may check again (its budget's window began
        // when the table was made, a moment after `now`).
        let later = now + Duration::from_secs(2);
        assert_eq!(
            routes.route(attacker, &check_for("frag0"), later),
            Routed::Call(0)
        );
    }
}
