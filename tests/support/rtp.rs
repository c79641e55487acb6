//! RTP (RFC 3550) as a test sees it: a UDP socket the test owns, named in
//! an SDP offer, that sends speech paced like a phone (20 ms packets) and
//! records what comes back.
//!
//! The parser is deliberately separate from the node's: a test must not
//! trust the code it checks. It takes the fixed 12-byte header, skips CSRCs
//! and a header extension, strips padding, and refuses anything shorter than
//! it claims to be.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ports;

/// µ-law silence: what fills a gap left by a lost packet.
pub const ULAW_SILENCE: u8 = 0xff;
/// 20 ms of 8 kHz G.711: the payload of one packet.
pub const SAMPLES_PER_PACKET: usize = 160;
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl RtpPacket {
    /// Parses one RTP packet; `None` for anything that is not RTP version 2
    /// or is shorter than its header, CSRC list, extension or padding say.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let first = *buf.first()?;
        if first >> 6 != 2 {
            return None;
        }
        let second = *buf.get(1)?;
        let csrc_count = usize::from(first & 0x0f);
        let mut offset = 12 + 4 * csrc_count;
        if first & 0x10 != 0 {
            let words = buf.get(offset + 2..offset + 4)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = buf.len();
        if first & 0x20 != 0 {
            let padding = usize::from(*buf.last()?);
            if padding == 0 {
                return None;
            }
            end = end.checked_sub(padding)?;
        }
        let payload = buf.get(offset..end)?.to_vec();
        Some(Self {
            payload_type: second & 0x7f,
            marker: second & 0x80 != 0,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload,
        })
    }

    /// The packet on the wire (no CSRCs, extension or padding).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.payload.len());
        out.push(0x80);
        out.push((self.payload_type & 0x7f) | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// The audio in `packets` of `payload_type`, in sequence order, with lost
/// packets' time (from the timestamps) filled with µ-law silence so that
/// timing survives loss. Assumes 1-byte-per-sample payloads (G.711).
pub fn ulaw_audio(packets: &[RtpPacket], payload_type: u8) -> Vec<u8> {
    let mut media: Vec<&RtpPacket> = packets
        .iter()
        .filter(|p| p.payload_type == payload_type)
        .collect();
    let Some(first) = media.first() else {
        return Vec::new();
    };
    // Order by sequence, wrap-aware, allowing packets that arrive up to
    // 1024 places late.
    let base_seq = first.sequence.wrapping_sub(1024);
    media.sort_by_key(|p| p.sequence.wrapping_sub(base_seq));
    media.dedup_by_key(|p| p.sequence);
    let base_ts = media[0].timestamp;
    let mut audio = Vec::new();
    for packet in media {
        let at = usize::try_from(packet.timestamp.wrapping_sub(base_ts)).unwrap_or(usize::MAX);
        // A timestamp jump of more than a minute is a new stream, not loss.
        if at > audio.len() && at - audio.len() < 60 * 8000 {
            audio.resize(at, ULAW_SILENCE);
        }
        audio.extend_from_slice(&packet.payload);
    }
    audio
}

/// One captured packet: when and from where it came.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at: Instant,
    pub from: SocketAddr,
    pub packet: RtpPacket,
}

/// The packets of a capture, without arrival details.
pub fn packets(arrivals: &[Arrival]) -> Vec<RtpPacket> {
    arrivals.iter().map(|a| a.packet.clone()).collect()
}

/// A loopback UDP socket owned by the test, for one RTP stream each way.
#[derive(Clone, Debug)]
pub struct RtpSocket {
    socket: Arc<UdpSocket>,
}

impl RtpSocket {
    /// Binds an even port on 127.0.0.1 (RTP convention, RFC 3550 11).
    pub fn bind() -> Self {
        let port = ports::free_udp_port_pair();
        let socket = UdpSocket::bind(("127.0.0.1", port)).expect("bind RTP socket");
        Self {
            socket: Arc::new(socket),
        }
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("RTP socket address")
    }

    /// Sends `ulaw` to `to` as PCMU (payload type 0) in 20 ms packets, paced
    /// in real time, from a thread; join the handle to wait for the end.
    pub fn send_ulaw(&self, to: SocketAddr, ulaw: &[u8]) -> JoinHandle<()> {
        let socket = Arc::clone(&self.socket);
        let audio = ulaw.to_vec();
        std::thread::spawn(move || {
            let start = Instant::now();
            let ssrc = 0x5eed_0000 ^ std::process::id();
            for (index, chunk) in audio.chunks(SAMPLES_PER_PACKET).enumerate() {
                let index32 = u32::try_from(index).unwrap_or(u32::MAX);
                let due = start + PACKET_INTERVAL * index32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let packet = RtpPacket {
                    payload_type: 0,
                    marker: index == 0,
                    sequence: u16::try_from(index % 65_536).unwrap_or(0),
                    timestamp: index32.wrapping_mul(160),
                    ssrc,
                    payload: chunk.to_vec(),
                };
                let _ = socket.send_to(&packet.to_bytes(), to);
            }
        })
    }

    /// Receives for `duration` (or until `idle` passes without a packet once
    /// one has arrived) and returns the RTP packets in arrival order.
    pub fn capture(&self, duration: Duration, idle: Duration) -> Vec<Arrival> {
        let deadline = Instant::now() + duration;
        let mut last_packet: Option<Instant> = None;
        let mut packets = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let now = Instant::now();
            let idle_end = last_packet.map(|at| at + idle).unwrap_or(deadline);
            let until = deadline.min(idle_end);
            let Some(left) = until.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                return packets;
            };
            self.socket
                .set_read_timeout(Some(left))
                .expect("set RTP read timeout");
            if let Ok((len, from)) = self.socket.recv_from(&mut buf) {
                if let Some(packet) = RtpPacket::parse(&buf[..len]) {
                    let at = Instant::now();
                    last_packet = Some(at);
                    packets.push(Arrival { at, from, packet });
                }
            }
        }
    }
}

/// RFC 4733 telephone-events as a trunk hears them: the digits of the
/// events in `packets` of `payload_type`, each event once (its packets
/// share a timestamp), in order.
pub fn telephone_event_digits(packets: &[RtpPacket], payload_type: u8) -> String {
    const EVENTS: &[u8; 16] = b"0123456789*#ABCD";
    let mut digits = String::new();
    let mut last_timestamp = None;
    for packet in packets.iter().filter(|p| p.payload_type == payload_type) {
        let Some(&event) = packet.payload.first() else {
            continue;
        };
        if last_timestamp == Some(packet.timestamp) {
            continue;
        }
        last_timestamp = Some(packet.timestamp);
        match EVENTS.get(usize::from(event)) {
            Some(&digit) => digits.push(char::from(digit)),
            None => digits.push('?'),
        }
    }
    digits
}

/// A trunk's media endpoint owned by the test: records every RTP packet
/// that arrives and sends each audio packet straight back to where it came
/// from (an echo, like sipp's `-rtp_echo`); telephone-events are recorded,
/// not echoed. Serves any number of streams; [`EchoSink::stop`] returns
/// what arrived.
#[derive(Debug)]
pub struct EchoSink {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<Vec<Arrival>>>,
}

impl EchoSink {
    /// Starts echoing on a free loopback port; `no_echo_type` is the
    /// telephone-event payload type.
    pub fn start(no_echo_type: u8) -> Self {
        let socket = RtpSocket::bind();
        let port = socket.port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let socket = socket.socket;
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("set sink read timeout");
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 2048];
            while !running.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some(packet) = RtpPacket::parse(&buf[..len]) else {
                    continue;
                };
                if packet.payload_type != no_echo_type {
                    let _ = socket.send_to(&buf[..len], from);
                }
                arrivals.push(Arrival {
                    at: Instant::now(),
                    from,
                    packet,
                });
            }
            arrivals
        });
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

    /// Stops the echo and returns every packet that arrived.
    pub fn stop(mut self) -> Vec<Arrival> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("sink thread"))
            .unwrap_or_default()
    }
}

impl Drop for EchoSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The arrivals split into streams by sender, in order of first arrival.
pub fn streams(arrivals: &[Arrival]) -> Vec<Vec<RtpPacket>> {
    let mut senders: Vec<SocketAddr> = Vec::new();
    let mut streams: Vec<Vec<RtpPacket>> = Vec::new();
    for arrival in arrivals {
        let index = match senders.iter().position(|s| *s == arrival.from) {
            Some(index) => index,
            None => {
                senders.push(arrival.from);
                streams.push(Vec::new());
                senders.len() - 1
            }
        };
        streams[index].push(arrival.packet.clone());
    }
    streams
}
