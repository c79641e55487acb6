//! A bad network between the node and its trunk: an echo on the trunk's
//! media port ([`ImpairedEcho`]) that loses and delays what it sends back
//! for a stretch of the call, and echoes cleanly before and after.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::rtp::RtpPacket;

/// How long the echo holds back a delayed packet.
pub const HOLD: Duration = Duration::from_millis(60);

/// What the echo does to its `n`th echoed packet (from 0) while impaired:
/// every fourth is lost, and every other one of the rest is held back
/// [`HOLD`], so 25 % loss and interarrival jitter of about 40 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lost,
    Held,
    Sent,
}

pub fn fate(n: u64) -> Fate {
    match n % 4 {
        0 => Fate::Lost,
        1 | 3 => Fate::Held,
        _ => Fate::Sent,
    }
}

/// How the echo treated the packets it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Treated {
    pub lost: u64,
    pub held: u64,
    pub sent: u64,
}

/// See the module documentation.
pub struct ImpairedEcho {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Treated>>,
}

impl ImpairedEcho {
    /// Echoes on a free loopback port, impaired over `bad` (counted from
    /// the first packet); `no_echo_type` (telephone-event) is never echoed.
    /// A stream that is bad from its first packet never passes RFC 3550's
    /// probation (two packets in sequence), so a receiver counts nothing
    /// lost: start `bad` a second or two in, as a network going bad would.
    pub fn start(no_echo_type: u8, bad: Range<Duration>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the echo's socket");
        let port = socket.local_addr().expect("echo address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || run(&socket, no_echo_type, bad, &stopped));
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port to name in the trunk's SDP (`-key sink_port`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the echo: how it treated what it got.
    pub fn stop(mut self) -> Treated {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("echo thread"))
            .unwrap_or_default()
    }
}

impl Drop for ImpairedEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(socket: &UdpSocket, no_echo_type: u8, bad: Range<Duration>, stop: &AtomicBool) -> Treated {
    socket
        .set_read_timeout(Some(Duration::from_millis(2)))
        .expect("set the echo's read timeout");
    let mut held: VecDeque<(Instant, Vec<u8>, SocketAddr)> = VecDeque::new();
    let mut treated = Treated::default();
    let mut first: Option<Instant> = None;
    let mut echoed = 0u64;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _, _)| *due <= now) {
            if let Some((_, bytes, to)) = held.pop_front() {
                let _ = socket.send_to(&bytes, to);
            }
        }
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let is_echoed =
            RtpPacket::parse(&buf[..len]).is_some_and(|p| p.payload_type != no_echo_type);
        if !is_echoed {
            continue;
        }
        let started = *first.get_or_insert(now);
        let fate = match bad.contains(&now.duration_since(started)) {
            true => fate(echoed),
            false => Fate::Sent,
        };
        echoed += 1;
        match fate {
            Fate::Lost => treated.lost += 1,
            Fate::Held => {
                treated.held += 1;
                held.push_back((now + HOLD, buf[..len].to_vec(), from));
            }
            Fate::Sent => {
                treated.sent += 1;
                let _ = socket.send_to(&buf[..len], from);
            }
        }
    }
    treated
}
