//! [`Pump`]: one thread that carries the audio of many calls, so the load
//! of a thousand calls fits on one core and the relay under test, not the
//! load tool, is what saturates first.
//!
//! A [`Stream`] is a UDP socket of its own, registered in one mio `Poll`:
//! - a **source** sends a stamped PCMU packet every 20 ms (SRTP-protected
//!   when it has keys) and hands each echo to its [`EchoLedger`];
//! - a **reflector** sends every datagram back where it came from: the far
//!   end of a relay, so the relay's CPU is relay only.
//!
//! Reads take up to [`READ_BATCH`] datagrams per `recvmmsg` with the
//! kernel's receive timestamp, so a round trip counts the time an echo
//! waited in our socket. Sends are due on one ordered schedule; a source
//! that falls a whole frame behind skips it rather than bursting, as a
//! real capture clock does. Nothing on the packet path allocates.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callgate::media::srtp::{SrtpReceiver, SrtpSender};
use callgate::webrtc::batch::{ReceiveBatch, enable_timestamps};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::echo::{EchoLedger, EchoStats, FRAME_BYTES, FRAME_INTERVAL};

/// Datagrams per `recvmmsg`: a stream gets one echo per 20 ms, so a read
/// rarely finds more.
const READ_BATCH: usize = 4;
/// How long echoes still on their way are waited for after the last send.
const DRAIN: Duration = Duration::from_secs(1);
const WAKER: Token = Token(0);
const PCMU: u8 = 0;
const RTP_HEADER: usize = 12;
/// An SRTP packet: header, payload and the largest tag (16 bytes).
const PACKET_CAPACITY: usize = RTP_HEADER + FRAME_BYTES + 16;

/// A source's SRTP transforms, one per direction.
pub struct SrtpPair {
    pub sender: SrtpSender,
    pub receiver: SrtpReceiver,
}

/// A stream that sends stamped audio to its remote and counts the echoes.
pub struct Source {
    ledger: EchoLedger,
    srtp: Option<SrtpPair>,
    ssrc: u32,
    /// RTP sequence number and timestamp of the first packet.
    first_sequence: u16,
    first_timestamp: u32,
}

impl Source {
    pub fn new(ledger: EchoLedger, srtp: Option<SrtpPair>) -> Self {
        Self {
            ledger,
            srtp,
            ssrc: rand::random(),
            first_sequence: rand::random(),
            first_timestamp: rand::random(),
        }
    }

    /// The next packet, stamped at `now`, in `packet`; false if it could
    /// not be protected.
    fn write_next(&mut self, now: Instant, packet: &mut Vec<u8>) -> bool {
        let number = self.ledger.packets_sent();
        packet.clear();
        packet.extend_from_slice(&rtp_header(
            self.ledger.is_first(),
            self.first_sequence.wrapping_add(number as u16),
            self.first_timestamp
                .wrapping_add(number.wrapping_mul(FRAME_BYTES as u32)),
            self.ssrc,
        ));
        packet.extend_from_slice(&self.ledger.payload(now));
        match &mut self.srtp {
            Some(srtp) => srtp.sender.protect_rtp(packet).is_ok(),
            None => true,
        }
    }

    /// One datagram from the relay, received at `received_at`; `scratch`
    /// holds it while it is unprotected.
    fn on_datagram(&mut self, received_at: Instant, datagram: &[u8], scratch: &mut Vec<u8>) {
        scratch.clear();
        scratch.extend_from_slice(datagram);
        let len = match &mut self.srtp {
            Some(srtp) => match srtp.receiver.unprotect_rtp(scratch) {
                Ok(len) => len,
                Err(_) => return,
            },
            None => scratch.len(),
        };
        if let Some(payload) = scratch.get(..len).and_then(rtp_payload) {
            self.ledger.on_echo(received_at, payload);
        }
    }
}

/// What a stream does with its socket.
pub enum Role {
    Source(Box<Source>),
    /// Sends every datagram back to its sender.
    Reflector,
}

/// One socket and what to do with it; see the module documentation.
pub struct Stream {
    pub socket: UdpSocket,
    /// Where a source sends its audio (a reflector answers each sender).
    pub remote: SocketAddr,
    pub role: Role,
}

/// What the pump has carried so far, readable while it runs.
#[derive(Debug, Default)]
pub struct PumpCounters {
    /// Datagrams that reached a source (echoes, after the relay).
    pub to_sources: AtomicU64,
    /// Datagrams that reached a reflector (audio, after the relay).
    pub to_reflectors: AtomicU64,
    /// Sources that have heard their first echo.
    pub echoing: AtomicU32,
}

/// See the module documentation.
pub struct Pump {
    streams: mpsc::Sender<Stream>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    counters: Arc<PumpCounters>,
    thread: JoinHandle<Vec<EchoStats>>,
}

impl Pump {
    pub fn start() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (streams, incoming) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(PumpCounters::default());
        let worker = Worker {
            poll,
            incoming,
            stop: stop.clone(),
            counters: counters.clone(),
            streams: Vec::new(),
            due: BinaryHeap::new(),
            batch: ReceiveBatch::with_capacity(READ_BATCH),
            packet: Vec::with_capacity(PACKET_CAPACITY),
            echo: Vec::with_capacity(PACKET_CAPACITY),
        };
        let thread = std::thread::Builder::new()
            .name("load-pump".to_owned())
            .spawn(move || worker.run())?;
        Ok(Self {
            streams,
            waker,
            stop,
            counters,
            thread,
        })
    }

    /// Hands `stream` to the pump; a source starts sending within 20 ms.
    pub fn add(&self, stream: Stream) -> io::Result<()> {
        stream.socket.set_nonblocking(true)?;
        enable_timestamps(&stream.socket)?;
        self.streams
            .send(stream)
            .map_err(|_| io::Error::other("the pump has stopped"))?;
        self.waker.wake()
    }

    pub fn counters(&self) -> &PumpCounters {
        &self.counters
    }

    /// Stops sending, waits up to a second for the echoes on their way,
    /// and returns every source's figures in the order they were added.
    pub fn stop(self) -> Vec<EchoStats> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        self.thread.join().unwrap_or_default()
    }
}

/// The pump's thread.
struct Worker {
    poll: Poll,
    incoming: mpsc::Receiver<Stream>,
    stop: Arc<AtomicBool>,
    counters: Arc<PumpCounters>,
    streams: Vec<Stream>,
    /// When each source's next packet is due: (time, stream index).
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    batch: ReceiveBatch,
    /// The packet being sent.
    packet: Vec<u8>,
    /// An echo being unprotected.
    echo: Vec<u8>,
}

impl Worker {
    fn run(mut self) -> Vec<EchoStats> {
        let mut events = Events::with_capacity(1024);
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if drain_until.is_none() && self.stop.load(Ordering::Acquire) {
                drain_until = Some(now + DRAIN);
                self.due.clear();
            }
            if let Some(until) = drain_until
                && (now >= until || self.all_echoed())
            {
                break;
            }
            let wake = self
                .due
                .peek()
                .map(|Reverse((at, _))| *at)
                .into_iter()
                .chain(drain_until)
                .min();
            let timeout = wake.map(|at| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                break;
            }
            for event in &events {
                match event.token() {
                    WAKER => self.take_streams(),
                    Token(token) => self.read(token - 1),
                }
            }
            self.send_due(Instant::now());
        }
        self.streams
            .into_iter()
            .filter_map(|stream| match stream.role {
                Role::Source(source) => Some(source.ledger.into_stats()),
                Role::Reflector => None,
            })
            .collect()
    }

    fn take_streams(&mut self) {
        while let Ok(stream) = self.incoming.try_recv() {
            let index = self.streams.len();
            let registered = self.poll.registry().register(
                &mut SourceFd(&stream.socket.as_raw_fd()),
                Token(index + 1),
                Interest::READABLE,
            );
            if registered.is_err() {
                continue;
            }
            if matches!(stream.role, Role::Source(_)) {
                // Spread the sources over the frame, as calls placed at
                // random moments are.
                let phase = FRAME_INTERVAL.mul_f64(rand::random::<f64>());
                self.due.push(Reverse((Instant::now() + phase, index)));
            }
            self.streams.push(stream);
        }
    }

    fn all_echoed(&self) -> bool {
        self.streams.iter().all(|stream| match &stream.role {
            Role::Source(source) => source.ledger.all_echoed(),
            Role::Reflector => true,
        })
    }

    /// Reads `index`'s socket until its queue is empty.
    fn read(&mut self, index: usize) {
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        loop {
            let read =
                self.batch.receive(
                    &stream.socket,
                    Instant::now(),
                    |received| match &mut stream.role {
                        Role::Reflector => {
                            self.counters.to_reflectors.fetch_add(1, Ordering::Relaxed);
                            let _ = stream.socket.send_to(received.bytes, received.from);
                        }
                        Role::Source(source) => {
                            self.counters.to_sources.fetch_add(1, Ordering::Relaxed);
                            let was_echoing = source.ledger.echoing();
                            source.on_datagram(
                                received.received_at,
                                received.bytes,
                                &mut self.echo,
                            );
                            if !was_echoing && source.ledger.echoing() {
                                self.counters.echoing.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    },
                );
            match read {
                Ok(count) if count == self.batch.capacity() => continue,
                _ => break,
            }
        }
    }

    /// Sends every packet due by `now` and books each source's next one.
    fn send_due(&mut self, now: Instant) {
        while let Some(&Reverse((at, index))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(stream) = self.streams.get_mut(index) else {
                continue;
            };
            let Role::Source(source) = &mut stream.role else {
                continue;
            };
            // A packet the socket refused is not counted as sent: loss
            // is the relay's, not ours.
            if source.write_next(now, &mut self.packet)
                && stream.socket.send_to(&self.packet, stream.remote).is_ok()
            {
                source.ledger.sent();
            }
            let mut next = at + FRAME_INTERVAL;
            while next <= now {
                next += FRAME_INTERVAL;
            }
            self.due.push(Reverse((next, index)));
        }
    }
}

/// A PCMU RTP header (RFC 3550 §5.1).
fn rtp_header(marker: bool, sequence: u16, timestamp: u32, ssrc: u32) -> [u8; RTP_HEADER] {
    let mut header = [0u8; RTP_HEADER];
    header[0] = 0x80;
    header[1] = PCMU | (u8::from(marker) << 7);
    header[2..4].copy_from_slice(&sequence.to_be_bytes());
    header[4..8].copy_from_slice(&timestamp.to_be_bytes());
    header[8..12].copy_from_slice(&ssrc.to_be_bytes());
    header
}

/// The payload of an RTP packet: after the CSRCs and any header extension.
fn rtp_payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut start = RTP_HEADER + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    packet.get(start..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_follows_csrcs_and_extensions() {
        let mut packet = rtp_header(true, 1, 2, 3).to_vec();
        packet.extend_from_slice(b"audio");
        assert_eq!(rtp_payload(&packet), Some(&b"audio"[..]));
        // One CSRC, then a one-word extension.
        let mut packet = vec![0x91, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        packet.extend_from_slice(&[0, 0, 0, 9]);
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
        packet.extend_from_slice(b"audio");
        assert_eq!(rtp_payload(&packet), Some(&b"audio"[..]));
        assert_eq!(rtp_payload(&packet[..24]), Some(&[][..]));
        assert_eq!(rtp_payload(&packet[..20]), None);
        assert_eq!(rtp_payload(&[0x40; 20]), None);
        assert_eq!(rtp_payload(&[0x90; 14]), None);
    }

    #[test]
    fn a_reflected_source_echoes_every_packet() {
        let pump = Pump::start().unwrap();
        let reflector = UdpSocket::bind("127.0.0.1:0").unwrap();
        let source = UdpSocket::bind("127.0.0.1:0").unwrap();
        let remote = reflector.local_addr().unwrap();
        let source_addr = source.local_addr().unwrap();
        pump.add(Stream {
            socket: reflector,
            remote: source_addr,
            role: Role::Reflector,
        })
        .unwrap();
        pump.add(Stream {
            socket: source,
            remote,
            role: Role::Source(Box::new(Source::new(
                EchoLedger::new(0, Instant::now()),
                None,
            ))),
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pump.counters().echoing.load(Ordering::Relaxed), 1);
        let stats = pump.stop();
        assert_eq!(stats.len(), 1);
        assert!(stats[0].sent_measured >= 5, "{stats:?}");
        assert_eq!(stats[0].echoed_measured, stats[0].sent_measured);
        assert_eq!(stats[0].foreign, 0);
    }
}
