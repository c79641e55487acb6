//! [`Pump`]: one thread that carries the audio of many calls, so the load
//! of a thousand calls fits on one core and the relay under test, not the
//! load tool, is what saturates first.
//!
//! A [`Stream`] is a UDP socket of its own, registered in one mio `Poll`:
//! - a **source** sends a stamped PCMU packet every 20 ms (SRTP-protected
//!   when it has keys) and hands each echo to its [`EchoLedger`];
//! - a **handshaking** source first runs its ICE check and DTLS handshake
//!   ([`Handshake`]) and becomes a source on the keys it exports;
//! - a **reflector** sends every datagram back where it came from: the far
//!   end of a relay, so the relay's CPU is relay only. It sends on a 20 ms
//!   clock of its own, as a real far end does, not the moment a packet
//!   lands: an instant echo is locked to the relay's own output, so a
//!   burst the relay once sends comes back every 20 ms and never spreads.
//!
//! Reads take up to [`READ_BATCH`] datagrams per `recvmmsg` with the
//! kernel's receive timestamp, so a round trip counts the time an echo
//! waited in our socket. Sends are due on one ordered schedule, woken by a
//! `timerfd` to the microsecond rather than `epoll`'s millisecond, and run
//! before the turn's reads and between every few of them. Each clock has a
//! phase of its own (a source's from a random point after its first
//! packet), so a relay is fed packets as evenly as calls started at random
//! moments would send them, not in clumps. A source that falls a whole
//! frame behind skips it rather than bursting, as a real capture clock
//! does. How late each send left its clock is counted ([`ClockLag`]): the
//! relay sees the load's own bunching as queueing, so the report shows it
//! beside the relay's latency. Packet buffers are reused; what still
//! allocates is the message headers nix's `recvmmsg` rebuilds per read (as
//! on the node) and each call's round-trip samples.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callgate::media::srtp::{SrtpReceiver, SrtpSender};
use callgate::webrtc::batch::{ReceiveBatch, enable_timestamps};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::echo::{EchoLedger, EchoStats, FRAME_BYTES, FRAME_INTERVAL};
use crate::handshake::{Handshake, Progress};
use crate::scrape::Histogram;

/// Datagrams per `recvmmsg`: a stream gets one echo per 20 ms, so a read
/// rarely finds more.
const READ_BATCH: usize = 4;
/// Streams read in a turn before the sends that came due meanwhile run:
/// a turn with a thousand echoes to read would otherwise hold them back
/// for a millisecond or more.
const READS_BETWEEN_SENDS: usize = 16;
/// From a call's answer to its keys, with room for a node that is busy
/// setting up many calls.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long echoes still on their way are waited for after the last send.
const DRAIN: Duration = Duration::from_secs(1);
const WAKER: Token = Token(0);
const TIMER: Token = Token(1);
/// Tokens of streams start here: stream `i` is `Token(FIRST_STREAM + i)`.
const FIRST_STREAM: usize = 2;
const PCMU: u8 = 0;
/// Opus' payload type in the load's offer.
const OPUS: u8 = 111;
/// 20 ms on Opus' 48 kHz RTP clock (RFC 7587).
const OPUS_FRAME_TICKS: u32 = 960;
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
    /// When the call was placed, for its setup time.
    placed_at: Option<Instant>,
    /// The 20 ms Opus frame a transcoded call sends every time; its echoes
    /// come back re-encoded, so they are counted, not timed.
    opus_frame: Option<Arc<[u8]>>,
}

impl Source {
    pub fn new(ledger: EchoLedger, srtp: Option<SrtpPair>) -> Self {
        Self {
            ledger,
            srtp,
            ssrc: rand::random(),
            first_sequence: rand::random(),
            first_timestamp: rand::random(),
            placed_at: None,
            opus_frame: None,
        }
    }

    /// The call offered Opus only: it sends `frame` every 20 ms.
    pub fn opus(mut self, frame: Arc<[u8]>) -> Self {
        self.opus_frame = Some(frame);
        self
    }

    /// Setup is timed from `at` to the first echo.
    pub fn placed_at(mut self, at: Instant) -> Self {
        self.placed_at = Some(at);
        self
    }

    /// The next packet, stamped at `now`, in `packet`; false if it could
    /// not be protected.
    fn write_next(&mut self, now: Instant, packet: &mut Vec<u8>) -> bool {
        let number = self.ledger.packets_sent();
        let (payload_type, ticks) = match self.opus_frame {
            Some(_) => (OPUS, OPUS_FRAME_TICKS),
            None => (PCMU, FRAME_BYTES as u32),
        };
        packet.clear();
        packet.extend_from_slice(&rtp_header(
            payload_type,
            self.ledger.is_first(),
            self.first_sequence.wrapping_add(number as u16),
            self.first_timestamp
                .wrapping_add(number.wrapping_mul(ticks)),
            self.ssrc,
        ));
        match &self.opus_frame {
            Some(frame) => packet.extend_from_slice(frame),
            None => packet.extend_from_slice(&self.ledger.payload(now)),
        }
        match &mut self.srtp {
            Some(srtp) => srtp.sender.protect_rtp(packet).is_ok(),
            None => true,
        }
    }

    /// One datagram from the relay, received at `received_at`; `scratch`
    /// holds it while it is unprotected.
    fn on_datagram(&mut self, received_at: Instant, datagram: &[u8], scratch: &mut Vec<u8>) {
        // The node's own RTCP (SR/RR, BYE) is not an echo.
        if matches!(datagram.get(1), Some(192..=223)) {
            return;
        }
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
            match self.opus_frame {
                Some(_) => self.ledger.on_unstamped_echo(received_at),
                None => self.ledger.on_echo(received_at, payload),
            }
        }
    }
}

/// The far end's side of a stream: what it holds until its clock ticks.
#[derive(Default)]
pub struct Reflector {
    /// Datagrams to send back at the next tick: (sender, bytes).
    held: Vec<(SocketAddr, Vec<u8>)>,
    /// Buffers of datagrams already sent back, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl Reflector {
    /// Datagrams held beyond this are dropped, oldest first: a relay that
    /// sends a call more than this per 20 ms is flooding it.
    const MAX_HELD: usize = 8;

    fn hold(&mut self, from: SocketAddr, datagram: &[u8]) {
        if self.held.len() == Self::MAX_HELD {
            let (_, oldest) = self.held.remove(0);
            self.spare.push(oldest);
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(datagram);
        self.held.push((from, buffer));
    }

    /// Sends back everything held; false if nothing was.
    fn release(&mut self, socket: &UdpSocket) -> bool {
        let any = !self.held.is_empty();
        for (to, datagram) in self.held.drain(..) {
            let _ = socket.send_to(&datagram, to);
            self.spare.push(datagram);
        }
        any
    }
}

/// What a stream does with its socket.
pub enum Role {
    Source(Box<Source>),
    /// Handshaking; the source takes over with the keys.
    Handshaking(Box<Handshake>, Box<Source>),
    /// Sends every datagram back to its sender, on its own clock.
    Reflector(Box<Reflector>),
    /// A handshake that failed, and why.
    Failed(Box<Source>, String),
}

impl Role {
    pub fn reflector() -> Self {
        Role::Reflector(Box::default())
    }
}

/// How one source's call went.
#[derive(Debug, Default)]
pub struct SourceOutcome {
    /// Keyed: the handshake, if any, completed.
    pub connected: bool,
    pub echoed: bool,
    pub stats: EchoStats,
    /// From the call's placing to its first echo.
    pub setup: Option<Duration>,
    pub failure: Option<String>,
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
    pub lag: ClockLag,
}

/// Upper bounds (seconds) of [`ClockLag`]'s buckets: the node's own
/// relay-latency buckets, so the two read side by side.
const LAG_BOUNDS: [f64; 11] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 20e-3,
];

/// How late sends left their 20 ms clocks (a source's packet, a
/// reflector's release), counted per bucket of [`LAG_BOUNDS`] and a last
/// one for later than all of them.
#[derive(Debug, Default)]
pub struct ClockLag {
    counts: [AtomicU64; LAG_BOUNDS.len() + 1],
}

impl ClockLag {
    fn record(&self, lag: Duration) {
        let seconds = lag.as_secs_f64();
        let bucket = LAG_BOUNDS.partition_point(|&bound| bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// What was counted so far, cumulative by bucket like a scraped
    /// histogram, so windows are told apart with [`Histogram::since`].
    pub fn snapshot(&self) -> Histogram {
        let mut cumulative = 0.0;
        let bounds = LAG_BOUNDS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, f64)> = bounds
            .zip(&self.counts)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed) as f64;
                (bound, cumulative)
            })
            .collect();
        Histogram {
            buckets,
            sum: 0.0,
            count: cumulative,
        }
    }
}

/// See the module documentation.
pub struct Pump {
    streams: mpsc::Sender<Stream>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    counters: Arc<PumpCounters>,
    thread: std::sync::Mutex<Option<JoinHandle<Vec<SourceOutcome>>>>,
}

impl Pump {
    pub fn start() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)
            .map_err(io::Error::from)?;
        poll.registry().register(
            &mut SourceFd(&timer.as_fd().as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        let (streams, incoming) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(PumpCounters::default());
        let worker = Worker {
            poll,
            timer,
            incoming,
            stop: stop.clone(),
            counters: counters.clone(),
            slots: Vec::new(),
            due: BinaryHeap::new(),
            batch: ReceiveBatch::with_capacity(READ_BATCH),
            packet: Vec::with_capacity(PACKET_CAPACITY),
            echo: Vec::with_capacity(PACKET_CAPACITY),
            draining: false,
        };
        let thread = std::thread::Builder::new()
            .name("load-pump".to_owned())
            .spawn(move || worker.run())?;
        Ok(Self {
            streams,
            waker,
            stop,
            counters,
            thread: std::sync::Mutex::new(Some(thread)),
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
    /// and returns every source's figures in the order they were added
    /// (nothing when the pump was already stopped).
    pub fn stop(&self) -> Vec<SourceOutcome> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        thread
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// A stream and when it is next due.
struct Slot {
    stream: Stream,
    /// Entries in the schedule at any other time are stale.
    due_at: Option<Instant>,
}

/// The pump's thread.
struct Worker {
    poll: Poll,
    /// Wakes the thread when the next stream is due.
    timer: TimerFd,
    incoming: mpsc::Receiver<Stream>,
    stop: Arc<AtomicBool>,
    counters: Arc<PumpCounters>,
    slots: Vec<Slot>,
    /// When streams are due: (time, stream index).
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    batch: ReceiveBatch,
    /// The packet being sent.
    packet: Vec<u8>,
    /// An echo being unprotected.
    echo: Vec<u8>,
    /// Stopping: sources send no more.
    draining: bool,
}

impl Worker {
    fn run(mut self) -> Vec<SourceOutcome> {
        let mut events = Events::with_capacity(1024);
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if drain_until.is_none() && self.stop.load(Ordering::Acquire) {
                // Sources stop; reflectors keep their clocks to send back
                // what they hold.
                drain_until = Some(now + DRAIN);
                self.draining = true;
            }
            if let Some(until) = drain_until
                && (now >= until || self.all_echoed())
            {
                break;
            }
            self.run_due(now);
            self.arm_timer();
            let timeout = drain_until.map(|until| until.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                break;
            }
            for (handled, event) in events.iter().enumerate() {
                match event.token() {
                    WAKER => self.take_streams(),
                    // Only the wake-up matters; reading clears it.
                    TIMER => drop(self.timer.wait()),
                    Token(token) => self.read(token - FIRST_STREAM),
                }
                // Sends due meanwhile go now, not after every read.
                if handled % READS_BETWEEN_SENDS == READS_BETWEEN_SENDS - 1 {
                    self.run_due(Instant::now());
                }
            }
        }
        self.slots.into_iter().filter_map(outcome).collect()
    }

    /// Sets the timer to the next stream's due time, or stops it.
    fn arm_timer(&mut self) {
        let next = self.due.peek().map(|Reverse((at, _))| *at);
        let _ = match next {
            Some(at) => {
                // Zero would disarm the timer: a due time already passed
                // fires at once.
                let wait = at
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1));
                self.timer.set(
                    Expiration::OneShot(TimeSpec::from_duration(wait)),
                    TimerSetTimeFlags::empty(),
                )
            }
            None => self.timer.unset(),
        };
    }

    fn take_streams(&mut self) {
        while let Ok(stream) = self.incoming.try_recv() {
            let index = self.slots.len();
            let registered = self.poll.registry().register(
                &mut SourceFd(&stream.socket.as_raw_fd()),
                Token(FIRST_STREAM + index),
                Interest::READABLE,
            );
            if registered.is_err() {
                continue;
            }
            let now = Instant::now();
            let first_due = match &stream.role {
                // Spread the sources' and reflectors' clocks over the
                // frame, as calls placed at random moments are.
                Role::Source(_) | Role::Reflector(_) => {
                    Some(now + FRAME_INTERVAL.mul_f64(rand::random::<f64>()))
                }
                Role::Handshaking(..) => Some(now),
                Role::Failed(..) => None,
            };
            self.slots.push(Slot {
                stream,
                due_at: None,
            });
            if let Some(at) = first_due {
                schedule(&mut self.slots[index], index, at, &mut self.due);
            }
        }
    }

    fn all_echoed(&self) -> bool {
        self.slots.iter().all(|slot| match &slot.stream.role {
            Role::Source(source) => source.ledger.all_echoed(),
            _ => true,
        })
    }

    /// Reads `index`'s socket until its queue is empty.
    fn read(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        // A handshake's datagrams are few: copied out, then handled once
        // the socket is drained.
        let mut handshake_input: Vec<Vec<u8>> = Vec::new();
        loop {
            let socket = &slot.stream.socket;
            let role = &mut slot.stream.role;
            let read = self
                .batch
                .receive(socket, Instant::now(), |received| match role {
                    Role::Reflector(reflector) => {
                        self.counters.to_reflectors.fetch_add(1, Ordering::Relaxed);
                        reflector.hold(received.from, received.bytes);
                    }
                    Role::Source(source) => {
                        self.counters.to_sources.fetch_add(1, Ordering::Relaxed);
                        let was_echoing = source.ledger.echoing();
                        source.on_datagram(received.received_at, received.bytes, &mut self.echo);
                        if !was_echoing && source.ledger.echoing() {
                            self.counters.echoing.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Role::Handshaking(..) => handshake_input.push(received.bytes.to_vec()),
                    Role::Failed(..) => {}
                });
            match read {
                Ok(count) if count == self.batch.capacity() => continue,
                _ => break,
            }
        }
        for datagram in handshake_input {
            if let Role::Handshaking(handshake, _) = &mut slot.stream.role {
                let progress = handshake.handle_datagram(Instant::now(), &datagram);
                settle(slot, index, progress, &mut self.due);
            }
        }
    }

    /// Runs every stream due by `now`: a source's next packet, a
    /// handshake's retransmission.
    fn run_due(&mut self, now: Instant) {
        while let Some(&Reverse((at, index))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.due_at != Some(at) {
                continue;
            }
            slot.due_at = None;
            match &mut slot.stream.role {
                Role::Source(_) if self.draining => {}
                Role::Source(source) => {
                    // Stamped when it leaves, not when the run began: a
                    // long run's last packets leave late, and that counts.
                    let sent_at = Instant::now();
                    self.counters.lag.record(sent_at - at);
                    let first = source.ledger.is_first();
                    // A packet the socket refused is not counted as sent:
                    // loss is the relay's, not ours.
                    if source.write_next(sent_at, &mut self.packet)
                        && slot
                            .stream
                            .socket
                            .send_to(&self.packet, slot.stream.remote)
                            .is_ok()
                    {
                        source.ledger.sent();
                    }
                    let next = match first {
                        // The first packet goes as soon as the keys are
                        // there; the clock after it takes a phase of its
                        // own. Calls placed at a steady rate would
                        // otherwise all send in the same instant of each
                        // frame (at 50 calls a second, every call's clock
                        // would start 20 ms after the last one's).
                        true => sent_at + FRAME_INTERVAL.mul_f64(1.0 + rand::random::<f64>()),
                        false => next_tick(at, now),
                    };
                    schedule(slot, index, next, &mut self.due);
                }
                Role::Handshaking(handshake, source) => {
                    let progress = match source.placed_at {
                        Some(placed) if now >= placed + HANDSHAKE_TIMEOUT => {
                            Progress::Failed(format!(
                                "ICE and DTLS not connected within {} s",
                                HANDSHAKE_TIMEOUT.as_secs()
                            ))
                        }
                        _ => handshake.handle_timeout(now),
                    };
                    settle(slot, index, progress, &mut self.due);
                }
                Role::Reflector(reflector) => {
                    if reflector.release(&slot.stream.socket) {
                        self.counters.lag.record(at.elapsed());
                    }
                    schedule(slot, index, next_tick(at, now), &mut self.due);
                }
                Role::Failed(..) => {}
            }
        }
    }
}

/// A 20 ms clock's next tick after the one due `at`, skipping ticks
/// already past `now` rather than bursting to catch up.
fn next_tick(at: Instant, now: Instant) -> Instant {
    let mut next = at + FRAME_INTERVAL;
    while next <= now {
        next += FRAME_INTERVAL;
    }
    next
}

/// Books `slot` (stream `index`) to run at `at`.
fn schedule(
    slot: &mut Slot,
    index: usize,
    at: Instant,
    due: &mut BinaryHeap<Reverse<(Instant, usize)>>,
) {
    slot.due_at = Some(at);
    due.push(Reverse((at, index)));
}

/// After a handshake's input: its datagrams sent, its next timeout
/// booked, and on keys the source started (or on failure, the reason
/// kept).
fn settle(
    slot: &mut Slot,
    index: usize,
    progress: Progress,
    due: &mut BinaryHeap<Reverse<(Instant, usize)>>,
) {
    let Role::Handshaking(handshake, _) = &mut slot.stream.role else {
        return;
    };
    while let Some(datagram) = handshake.poll_transmit() {
        let _ = slot.stream.socket.send_to(&datagram, slot.stream.remote);
    }
    let next = handshake.poll_timeout();
    // The placeholder lives only until the match below puts the role back.
    let role = std::mem::replace(&mut slot.stream.role, Role::reflector());
    let Role::Handshaking(handshake, mut source) = role else {
        return;
    };
    slot.stream.role = match progress {
        Progress::Pending => {
            if let Some(at) = next
                && slot.due_at.is_none_or(|due_at| at < due_at)
            {
                schedule(slot, index, at, due);
            }
            Role::Handshaking(handshake, source)
        }
        Progress::Keys(srtp) => {
            source.srtp = Some(*srtp);
            schedule(slot, index, Instant::now(), due);
            Role::Source(source)
        }
        Progress::Failed(reason) => Role::Failed(source, reason),
    };
}

/// A source's figures; `None` for a reflector.
fn outcome(slot: Slot) -> Option<SourceOutcome> {
    let (source, connected, failure) = match slot.stream.role {
        Role::Source(source) => (source, true, None),
        Role::Handshaking(_, source) => (
            source,
            false,
            Some("ICE and DTLS not connected when the run stopped".to_owned()),
        ),
        Role::Failed(source, reason) => (source, false, Some(reason)),
        Role::Reflector(_) => return None,
    };
    let setup = source
        .placed_at
        .zip(source.ledger.first_echo_at())
        .map(|(placed, echoed)| echoed.saturating_duration_since(placed));
    Some(SourceOutcome {
        connected,
        echoed: source.ledger.echoing(),
        stats: source.ledger.into_stats(),
        setup,
        failure,
    })
}

/// An RTP header (RFC 3550 §5.1).
fn rtp_header(
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) -> [u8; RTP_HEADER] {
    let mut header = [0u8; RTP_HEADER];
    header[0] = 0x80;
    header[1] = payload_type | (u8::from(marker) << 7);
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
        let mut packet = rtp_header(PCMU, true, 1, 2, 3).to_vec();
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
    fn clock_lag_is_counted_in_the_nodes_buckets() {
        let lag = ClockLag::default();
        lag.record(Duration::from_micros(5));
        lag.record(Duration::from_micros(10));
        lag.record(Duration::from_micros(700));
        lag.record(Duration::from_millis(30));
        let before = lag.snapshot();
        assert_eq!(before.count, 4.0);
        assert_eq!(before.buckets[0], (10e-6, 2.0), "a bound is inclusive");
        assert_eq!(before.buckets[6], (1e-3, 3.0));
        assert_eq!(before.buckets.last(), Some(&(f64::INFINITY, 4.0)));
        lag.record(Duration::from_micros(20));
        let window = lag.snapshot().since(&before);
        assert_eq!(window.count, 1.0);
        assert_eq!(window.quantile(0.5).map(|s| s <= 25e-6), Some(true));
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
            role: Role::reflector(),
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
        let outcomes = pump.stop();
        assert_eq!(outcomes.len(), 1);
        let stats = &outcomes[0].stats;
        assert!(stats.sent_measured >= 5, "{stats:?}");
        assert_eq!(stats.echoed_measured, stats.sent_measured);
        assert_eq!(stats.foreign, 0);
        assert_eq!(outcomes[0].failure, None);
    }
}
