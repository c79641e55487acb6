//! Free loopback ports for peers that must be told their port up front.
//!
//! Ports come from 20000..32000, below Linux's ephemeral range
//! (32768..60999), so sockets that bind port 0 elsewhere never take them
//! between the check here and the peer binding them. Each port is probed by
//! binding it, and is handed out at most once per test process, so tests
//! running in parallel threads never share one. Another process may still
//! race for the same port; that is the usual, small, price of passing ports
//! to external programs.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
static DRAWS: AtomicU32 = AtomicU32::new(0);

/// A UDP port free on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    free_udp_ports(1, false)
}

/// The first of a node's browser ports: media shard `i` listens on this
/// port + `i`, so room is kept for as many shards as a test machine has
/// cores (up to 8).
pub fn free_browser_ports() -> u16 {
    free_udp_ports(8, false)
}

/// A TCP port free on 127.0.0.1 (and free for UDP too, for peers that
/// listen on both).
pub fn free_tcp_port() -> u16 {
    reserve(1, false, |port| {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
}

/// The first of `count` consecutive ports free for both UDP and TCP, for
/// peers that listen on both (baresip: SIP over UDP and TCP on `p`, TLS on
/// `p + 1`).
pub fn free_udp_tcp_ports(count: u16) -> u16 {
    reserve(count, false, |port| {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
}

/// An even UDP port `p` with `p + 1` free too: an RTP/RTCP pair.
pub fn free_udp_port_pair() -> u16 {
    free_udp_ports(2, true)
}

/// The first of `count` consecutive free UDP ports, even when `even`.
/// sipp with `-rtp_echo -mp P` wants P..P+3 (audio, video and their RTCP).
pub fn free_udp_ports(count: u16, even: bool) -> u16 {
    reserve(count, even, |port| {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
}

fn reserve(count: u16, even: bool, is_free: impl Fn(u16) -> bool) -> u16 {
    assert!((1..=64).contains(&count), "ask for 1 to 64 ports");
    for _ in 0..10_000 {
        let mut base = candidate();
        if even {
            base &= !1;
        }
        let Some(last) = base.checked_add(count - 1).filter(|last| *last < LAST) else {
            continue;
        };
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.range(base..=last).next().is_some() {
            continue;
        }
        if (base..=last).all(&is_free) {
            handed_out.extend(base..=last);
            return base;
        }
    }
    panic!("no {count} consecutive free loopback ports in {FIRST}..{LAST}");
}

/// A pseudo-random port in the range: per process (pid) and per draw, so
/// parallel test binaries start from different places.
fn candidate() -> u16 {
    let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = (u64::from(std::process::id()) << 32) ^ (u64::from(draw) << 16) ^ u64::from(nanos);
    // splitmix64 finaliser: spreads neighbouring seeds over the range.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let span = u64::from(LAST - FIRST);
    FIRST + u16::try_from(x % span).unwrap_or(0)
}
