//! [`BrowserPort`]: the one UDP port every browser call shares.
//!
//! A browser's first datagrams are STUN connectivity checks whose USERNAME
//! starts with our ICE username fragment, which is random per call; the port
//! routes those to the call that owns the fragment. The call's session
//! verifies each check (MESSAGE-INTEGRITY under the call's ICE password)
//! and only then has the port learn the browser's address (a
//! peer-reflexive candidate, RFC 8445 §7.3.1.3) through
//! [`Registration::learn`]. Every later datagram (DTLS, SRTP, SRTCP,
//! consent checks) is routed by its source address, and the session
//! authenticates it too (DTLS fingerprint, SRTP tags), so a forged datagram
//! can at worst be dropped by the call it reached, and forged checks teach
//! the port nothing.
//!
//! Invariants:
//! - The receive loop reads in batches ([`super::batch`]) and stamps each
//!   datagram with the kernel's receive time, so relay latency counts the
//!   time a datagram waited in the socket's queue.
//! - The socket asks the kernel for a receive buffer of
//!   [`RECV_BUFFER_BYTES`]: one port carries every call, so a short stall of
//!   the receive loop must not cost datagrams.
//! - Datagrams that are neither STUN, DTLS nor RTP never leave the kernel
//!   ([`super::kernel_filter`]).
//! - The receive loop never waits on a call: each call has a bounded inbox,
//!   and a full inbox costs that datagram only (counted as `queue_full`).
//! - Checks from addresses a call has not verified (each costs the call an
//!   HMAC) reach it at most [`UNVERIFIED_CHECKS_PER_SECOND`] a second; the
//!   rest are shed in the receive loop and counted (`unverified_checks`),
//!   so a flood of forged checks naming a call cannot crowd its media out
//!   of its inbox. Checks from verified addresses are not limited.
//! - An address belongs to at most one call; the first call to learn it
//!   keeps it until that call forgets it or its [`Registration`] is dropped.
//! - Datagrams for nobody are counted and dropped; logs never carry addresses.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use dashmap::DashMap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batch::{ReceiveBatch, Received, enable_timestamps};
use super::demux::{PacketClass, classify, local_ufrag};

/// The kernel receive buffer asked for on the shared port. Every call's
/// datagrams queue here whenever the receive loop is not running, and the
/// kernel drops what does not fit: its default (about 200 KiB, some 13 ms
/// of 300 calls) overflowed under load. 8 MiB holds about 160 ms of 1,000
/// calls at 50 packets a second, counting the ~1 KiB Linux charges per
/// small datagram. The kernel caps it at `net.core.rmem_max`.
pub const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// About 2.5 s of 20 ms packets in both directions' worth of control traffic.
pub const INBOX_CAPACITY: usize = 128;
/// A browser paces its checks (RFC 8445 §6.1.4.2: one every 50 ms across
/// all its pairs, plus retransmissions), so 100 a second leaves a real
/// browser ample room.
pub const UNVERIFIED_CHECKS_PER_SECOND: u32 = 100;

/// One datagram for a call.
#[derive(Debug)]
pub struct Datagram {
    pub from: SocketAddr,
    pub bytes: BytesMut,
    pub received_at: Instant,
}

/// Counters of the shared port, read by the metrics exporter.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// From an address no call knows, or STUN for an unknown fragment.
    pub unknown_peer: AtomicU64,
    /// Neither STUN, DTLS nor RTP (RFC 7983).
    pub malformed: AtomicU64,
    /// The call's inbox was full.
    pub queue_full: AtomicU64,
    /// Checks from unverified addresses over a call's budget.
    pub unverified_checks: AtomicU64,
    pub send_failed: AtomicU64,
}

#[derive(Clone)]
struct Route {
    call: u64,
    inbox: mpsc::Sender<Datagram>,
}

/// A call's budget of checks from unverified addresses: a count per
/// one-second window. Only the receive loop touches it.
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

    /// Whether one more check fits at `now`.
    fn take(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.spent = 0;
        }
        self.spent += 1;
        self.spent <= UNVERIFIED_CHECKS_PER_SECOND
    }
}

/// What the port keeps per ICE fragment.
struct FragmentRoute {
    route: Route,
    budget: CheckBudget,
}

struct Shared {
    send_socket: std::net::UdpSocket,
    by_ufrag: DashMap<String, FragmentRoute>,
    by_addr: DashMap<SocketAddr, Route>,
    counters: Arc<PortCounters>,
    next_call: AtomicU64,
}

/// See the module documentation.
pub struct BrowserPort {
    shared: Arc<Shared>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

/// A call's claim on the port; dropping it forgets the call's fragment and
/// addresses.
pub struct Registration {
    shared: Arc<Shared>,
    call: u64,
    ufrag: String,
    inbox: mpsc::Sender<Datagram>,
}

impl BrowserPort {
    /// Binds `listen` and starts the receive loop.
    pub async fn bind(listen: SocketAddr) -> io::Result<Self> {
        let send_socket = bind_socket(listen)?;
        let local = send_socket.local_addr()?;
        let recv_socket = UdpSocket::from_std(send_socket.try_clone()?)?;
        let shared = Arc::new(Shared {
            send_socket,
            by_ufrag: DashMap::new(),
            by_addr: DashMap::new(),
            counters: Arc::default(),
            next_call: AtomicU64::new(1),
        });
        let task = tokio::spawn(receive_loop(recv_socket, shared.clone()));
        Ok(Self {
            shared,
            local,
            task,
        })
    }

    /// The bound address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The receive buffer the kernel granted, in bytes (Linux reports
    /// twice what was set, its bookkeeping overhead included).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        socket2::SockRef::from(&self.shared.send_socket).recv_buffer_size()
    }

    pub fn counters(&self) -> Arc<PortCounters> {
        self.shared.counters.clone()
    }

    /// Routes checks for `ufrag` to a new inbox. `None` if the fragment is
    /// taken (fragments are random, so this means a bug or a collision).
    pub fn register(&self, ufrag: &str) -> Option<(Registration, mpsc::Receiver<Datagram>)> {
        let call = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        let (inbox, rx) = mpsc::channel(INBOX_CAPACITY);
        match self.shared.by_ufrag.entry(ufrag.to_owned()) {
            dashmap::Entry::Occupied(_) => return None,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(FragmentRoute {
                    route: Route {
                        call,
                        inbox: inbox.clone(),
                    },
                    budget: CheckBudget::new(Instant::now()),
                });
            }
        }
        let registration = Registration {
            shared: self.shared.clone(),
            call,
            ufrag: ufrag.to_owned(),
            inbox,
        };
        Some((registration, rx))
    }

    /// Calls currently registered.
    pub fn registered(&self) -> usize {
        self.shared.by_ufrag.len()
    }
}

impl Drop for BrowserPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Registration {
    /// Routes `address`'s datagrams to this call, once the session verified
    /// a check from it. An address another call holds stays that call's.
    pub fn learn(&self, address: SocketAddr) {
        self.shared.by_addr.entry(address).or_insert_with(|| Route {
            call: self.call,
            inbox: self.inbox.clone(),
        });
    }

    /// Stops routing `address` to this call.
    pub fn forget(&self, address: SocketAddr) {
        self.shared
            .by_addr
            .remove_if(&address, |_, route| route.call == self.call);
    }

    /// Sends one datagram without waiting; a full socket buffer costs this
    /// datagram only.
    pub fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let counters = &self.shared.counters;
        match self.shared.send_socket.send_to(bytes, to) {
            Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.send_failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .by_ufrag
            .remove_if(&self.ufrag, |_, entry| entry.route.call == self.call);
        self.shared
            .by_addr
            .retain(|_, route| route.call != self.call);
    }
}

/// A non-blocking UDP socket on `listen` with [`RECV_BUFFER_BYTES`] asked
/// for; a smaller buffer than asked is no reason not to serve.
fn bind_socket(listen: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(RECV_BUFFER_BYTES);
    super::kernel_filter::attach(&socket)?;
    // Without kernel timestamps, latency is counted from the read.
    let _ = enable_timestamps(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

async fn receive_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let mut batch = ReceiveBatch::default();
    loop {
        if socket.readable().await.is_err() {
            // The runtime is shutting down.
            return;
        }
        loop {
            let now = tokio::time::Instant::now().into_std();
            let read = socket.try_io(Interest::READABLE, || {
                batch.receive(&socket, now, |datagram| accept(&shared, datagram))
            });
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here on some
                // systems; they concern one peer, not the port.
                Ok(_) | Err(_) => {}
            }
            // A flood must not keep this task from yielding to the rest.
            tokio::task::consume_budget().await;
        }
    }
}

fn accept(shared: &Shared, datagram: Received<'_>) {
    shared.counters.received.fetch_add(1, Ordering::Relaxed);
    if datagram.truncated {
        shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    route(shared, datagram.from, datagram.bytes, datagram.received_at);
}

fn route(shared: &Shared, from: SocketAddr, datagram: &[u8], received_at: Instant) {
    let counters = &shared.counters;
    let class = classify(datagram);
    if class == PacketClass::Other {
        counters.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let known = shared.by_addr.get(&from).map(|r| r.clone());
    let route = match known {
        Some(route) => route,
        None => match by_fragment(shared, datagram, class, received_at) {
            Fragment::Route(route) => route,
            Fragment::OverBudget => {
                counters.unverified_checks.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Fragment::Unknown => {
                counters.unknown_peer.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    let message = Datagram {
        from,
        bytes: BytesMut::from(datagram),
        received_at,
    };
    if route.inbox.try_send(message).is_err() {
        counters.queue_full.fetch_add(1, Ordering::Relaxed);
    }
}

enum Fragment {
    Route(Route),
    OverBudget,
    Unknown,
}

/// A STUN check from an address no call knows yet names the call by our
/// fragment, within the call's budget; the call learns the address only
/// once the check verified.
fn by_fragment(shared: &Shared, datagram: &[u8], class: PacketClass, now: Instant) -> Fragment {
    let ufrag = match class {
        PacketClass::Stun => local_ufrag(datagram),
        _ => None,
    };
    let Some(mut entry) = ufrag.and_then(|ufrag| shared.by_ufrag.get_mut(ufrag)) else {
        return Fragment::Unknown;
    };
    match entry.budget.take(now) {
        true => Fragment::Route(entry.route.clone()),
        false => Fragment::OverBudget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    async fn next(rx: &mut mpsc::Receiver<Datagram>) -> Option<Datagram> {
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn the_shared_port_gets_a_large_receive_buffer() {
        let port = BrowserPort::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let granted = port.recv_buffer_size().unwrap();
        assert!(
            granted >= RECV_BUFFER_BYTES.min(cap),
            "asked for {RECV_BUFFER_BYTES} bytes (rmem_max {cap}), got {granted}"
        );
    }

    #[tokio::test]
    async fn checks_route_by_fragment_then_datagrams_by_address() {
        let port = BrowserPort::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (registration, mut inbox) = port.register("fragA").unwrap();
        let (_other, mut other_inbox) = port.register("fragB").unwrap();
        assert!(port.register("fragA").is_none(), "fragments are unique");
        let browser = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = port.local_addr();

        stranger.send_to(&[0xff, 1, 2, 3], to).await.unwrap();
        stranger.send_to(&[], to).await.unwrap();
        stranger.send_to(&[0x80, 1, 2, 3], to).await.unwrap();
        browser.send_to(&check_for("fragA"), to).await.unwrap();
        let first = next(&mut inbox).await.expect("check routed by fragment");
        assert_eq!(first.from, browser.local_addr().unwrap());
        browser.send_to(&[22, 254, 253, 0], to).await.unwrap();
        assert!(
            next(&mut inbox).await.is_none(),
            "an unverified check teaches the port no address"
        );
        registration.learn(first.from);
        browser.send_to(&[22, 254, 253, 0], to).await.unwrap();
        let dtls = next(&mut inbox).await.expect("then by address");
        assert_eq!(dtls.bytes.as_ref(), &[22, 254, 253, 0]);
        assert!(next(&mut other_inbox).await.is_none());

        registration.send(browser.local_addr().unwrap(), b"\x80back");
        let mut buf = [0u8; 16];
        let (n, _) = browser.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\x80back");

        drop(registration);
        browser.send_to(&[0x80, 9], to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let counters = port.counters();
        assert_eq!(counters.unknown_peer.load(Ordering::Relaxed), 3);
        assert_eq!(
            counters.received.load(Ordering::Relaxed),
            5,
            "junk and empty datagrams stay in the kernel"
        );
        assert_eq!(counters.malformed.load(Ordering::Relaxed), 0);
        assert_eq!(port.registered(), 1);
    }

    #[tokio::test]
    async fn a_flood_of_checks_naming_a_call_is_shed_past_its_budget() {
        let port = BrowserPort::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (registration, mut inbox) = port.register("fragA").unwrap();
        let (_other, mut other_inbox) = port.register("fragB").unwrap();
        let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let browser = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = port.local_addr();
        let flood = 3 * UNVERIFIED_CHECKS_PER_SECOND;
        for _ in 0..flood {
            attacker.send_to(&check_for("fragA"), to).await.unwrap();
        }
        // The other call's checks and the verified browser's media are
        // not part of that budget.
        let other_browser = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        other_browser
            .send_to(&check_for("fragB"), to)
            .await
            .unwrap();
        registration.learn(browser.local_addr().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        browser.send_to(&[0x80, 0, 0, 1], to).await.unwrap();
        browser.send_to(&check_for("fragA"), to).await.unwrap();

        let mut routed = 0;
        let mut from_browser = 0;
        while let Some(datagram) = next(&mut inbox).await {
            match datagram.from == browser.local_addr().unwrap() {
                true => from_browser += 1,
                false => routed += 1,
            }
        }
        assert_eq!(routed, UNVERIFIED_CHECKS_PER_SECOND, "the budget, no more");
        assert_eq!(from_browser, 2, "the verified address is not limited");
        assert!(
            next(&mut other_inbox).await.is_some(),
            "another call's check"
        );
        let shed = port.counters().unverified_checks.load(Ordering::Relaxed);
        assert_eq!(shed, u64::from(flood - UNVERIFIED_CHECKS_PER_SECOND));
    }
}
