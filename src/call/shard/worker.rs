//! One shard's thread: its epoll loop and the calls it hosts.
//!
//! Each turn: wait for a socket, the control's wake-up or the earliest
//! call deadline; take the control's commands; read the browser port and
//! the ready trunk sockets (in `recvmmsg` batches), handing every
//! datagram to its call's [`CallMedia`], which puts what it makes straight
//! on the other side's socket; then run the calls whose deadline passed.
//! The reads go in rounds: a few browser batches, then a few dozen trunk
//! sockets, then what was made for browsers leaves, then a few packets of
//! transcoded calls queued meanwhile are converted ([`Transcoding`]) and
//! sent. A packet from either side so waits for one round of the other's
//! work, not for all of it, and a passthrough packet never waits for the
//! transcoding of its own round.
//!
//! Invariants:
//! - The thread never waits on the control: events go out by `try_send`,
//!   and a call whose control stopped listening loses only its events.
//! - One turn reads at most [`BROWSER_BATCHES_PER_TURN`] batches from the
//!   browser port and [`TRUNK_BATCHES_PER_TURN`] from a trunk socket, so
//!   neither side can starve the other or the timers.
//! - One turn handles at most [`super::handshakes::PER_TURN`] STUN checks
//!   and DTLS records; the rest wait for the next turns or are shed
//!   ([`HandshakeGate`]), so setting calls up never holds media back.
//! - Every read is a `recvmmsg` with kernel receive timestamps, so relay
//!   latency counts the time a datagram waited in its socket; a read that
//!   returns less than a full batch has emptied the socket (epoll reports
//!   the next arrival), which saves the read that would say so.
//! - Datagrams for browsers leave in `sendmmsg` batches of up to
//!   [`SEND_BATCH`], in the order they were made, and no later than the
//!   end of the round that made them. A relayed packet's latency is
//!   reported when its batch leaves, so the wait in the batch counts.
//! - A call's routes, deadline and sockets leave the shard with it.
//! - A panic in one call's media takes that call off the shard at the end
//!   of the turn (its control hears that the media is lost) and touches no
//!   other call; a panic anywhere else ends the thread, and the engine's
//!   [`CoreFailure`] stops the node.
//! - A call whose control is gone (it panicked) leaves at its next
//!   deadline, if its link's goodbye did not reach the shard.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::{error, warn};

use super::commands::{COMMAND_CAPACITY, Command, MediaCommand, NewCall, ShardEvent, ShardHandle};
use super::deadlines::Deadlines;
use super::handshakes::{Admit, HandshakeGate, is_handshake};
use super::transcoding::{self, Transcoding};
use crate::call::media::offload::TranscodeRequest;
use crate::call::media::{CallMedia, CallMediaEvent, Relayed, Transmitter};
use crate::call::observer::RelayObserver;
use crate::media::endpoint::{self, SendSockets, Transmit};
use crate::media::ports::PortLease;
use crate::supervise::{CoreFailure, ThreadWatch};
use crate::webrtc::batch::{
    Flushed, ReceiveBatch, SendBatch, enable_overflow_count, enable_timestamps,
};
use crate::webrtc::{BrowserRoutes, PortCounters, Routed};

const BROWSER: Token = Token(0);
const WAKER: Token = Token(1);
/// Call slot `i`'s RTP socket is token `FIRST_TRUNK + 2i`, its RTCP
/// socket the next.
const FIRST_TRUNK: usize = 2;
/// Batches read from the browser port per turn before the rest of the
/// turn runs; what is left is read first thing next turn.
const BROWSER_BATCHES_PER_TURN: usize = 16;
/// Browser batches per round of a turn, before ready trunk sockets get
/// their share.
const BROWSER_BATCHES_PER_ROUND: usize = 2;
/// Ready trunk sockets read per round of a turn, before the browser port
/// gets its share again: about as many datagrams as the browser's share.
const TRUNK_SOCKETS_PER_ROUND: usize = 64;
/// Batches read from one trunk socket per turn.
const TRUNK_BATCHES_PER_TURN: usize = 8;
/// Datagrams one read from a trunk socket takes: a call's socket rarely
/// holds more than one or two.
const TRUNK_BATCH: usize = 4;
/// Datagrams for browsers queued before they go out in one `sendmmsg`;
/// whatever is queued also goes at the end of each turn.
const SEND_BATCH: usize = 32;

/// The cores this process may run on, by number.
pub(super) fn usable_cores() -> Vec<usize> {
    let this_process = nix::unistd::Pid::from_raw(0);
    match nix::sched::sched_getaffinity(this_process) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&core| set.is_set(core).unwrap_or(false))
            .collect(),
        Err(_) => {
            let count = std::thread::available_parallelism().map_or(1, usize::from);
            (0..count).collect()
        }
    }
}

/// Pins the calling thread to `core`; a refusal leaves it free to move.
fn pin_to(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok() {
        let this_thread = nix::unistd::Pid::from_raw(0);
        let _ = nix::sched::sched_setaffinity(this_thread, &set);
    }
}

/// Starts shard `index` on `socket`, pinned to `core` if given.
pub(super) fn spawn(
    index: usize,
    socket: UdpSocket,
    core: Option<usize>,
    observer: Arc<dyn RelayObserver>,
    failure: CoreFailure,
) -> io::Result<ShardHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    poll.registry().register(
        &mut SourceFd(&socket.as_raw_fd()),
        BROWSER,
        Interest::READABLE,
    )?;
    let local = socket.local_addr()?;
    let recv_buffer = socket2::SockRef::from(&socket)
        .recv_buffer_size()
        .unwrap_or(0);
    let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
    let calls = Arc::new(AtomicUsize::new(0));
    let counters = Arc::new(PortCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let shard = Shard {
        stop: stop.clone(),
        poll,
        batch: ReceiveBatch::default(),
        trunk_batch: ReceiveBatch::with_capacity(TRUNK_BATCH),
        outlet: Outlet {
            browser: socket,
            to_browsers: ToBrowsers {
                batch: SendBatch::with_capacity(SEND_BATCH),
                relayed: Vec::with_capacity(SEND_BATCH),
                observer,
            },
            counters: counters.clone(),
            transcoding: Transcoding::default(),
        },
        ready_trunks: Vec::new(),
        routes: BrowserRoutes::default(),
        slots: Vec::new(),
        free: Vec::new(),
        by_call: HashMap::new(),
        failed: Vec::new(),
        deadlines: Deadlines::default(),
        due: Vec::new(),
        handshakes: HandshakeGate::default(),
        commands,
        calls: calls.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("media-shard-{index}"))
        .spawn(move || {
            let _watch = ThreadWatch {
                part: "media shard",
                failure,
            };
            if let Some(core) = core {
                pin_to(core);
            }
            shard.run();
        })?;
    Ok(ShardHandle {
        commands: commands_tx,
        waker,
        stop,
        calls,
        counters,
        local,
        recv_buffer,
        thread: Some(thread),
    })
}

/// A call's trunk sockets and the lease that returns their ports, dropped
/// after them.
struct TrunkSockets {
    sockets: SendSockets,
    _lease: PortLease,
}

struct Slot {
    call: u64,
    ufrag: String,
    media: CallMedia,
    trunk: TrunkSockets,
    /// The kernel's drop count of the trunk's RTP and RTCP sockets, as
    /// last seen.
    trunk_dropped: [u32; 2],
    events: mpsc::Sender<ShardEvent>,
}

struct Shard {
    poll: Poll,
    stop: Arc<AtomicBool>,
    batch: ReceiveBatch,
    trunk_batch: ReceiveBatch,
    outlet: Outlet,
    /// This turn's ready trunk sockets, by token (kept to reuse its
    /// allocation).
    ready_trunks: Vec<usize>,
    routes: BrowserRoutes<usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_call: HashMap<u64, usize>,
    /// Calls whose media panicked this turn, out of their slots; they
    /// leave the shard at the end of the turn.
    failed: Vec<(usize, Slot)>,
    deadlines: Deadlines,
    /// The slots due this turn (kept to reuse its allocation).
    due: Vec<usize>,
    handshakes: HandshakeGate,
    commands: mpsc::Receiver<Command>,
    calls: Arc<AtomicUsize>,
}

/// Where the shard's calls put what they make: the browser port (batched),
/// its counters and the shard's transcoder. Each call adds its own trunk
/// sockets ([`Out`]).
struct Outlet {
    browser: UdpSocket,
    to_browsers: ToBrowsers,
    counters: Arc<PortCounters>,
    transcoding: Transcoding,
}

impl Outlet {
    /// Sends what waits for browsers.
    fn flush(&mut self) {
        self.to_browsers.flush(&self.browser, &self.counters);
    }
}

/// Datagrams for browsers on their way out, and when the trunk packets
/// they relay arrived.
struct ToBrowsers {
    batch: SendBatch,
    /// The arrival of each relayed packet in `batch`.
    relayed: Vec<Relayed>,
    observer: Arc<dyn RelayObserver>,
}

impl ToBrowsers {
    /// Sends what the batch holds on the browser port, counts it and
    /// reports the relayed packets' latency (refused ones too: they are
    /// counted as failed sends, and they waited as long).
    fn flush(&mut self, browser: &UdpSocket, counters: &PortCounters) {
        if self.batch.is_empty() {
            return;
        }
        let Flushed { sent, failed } = self.batch.flush(browser);
        counters.sent.fetch_add(sent as u64, Ordering::Relaxed);
        if failed > 0 {
            counters
                .send_failed
                .fetch_add(failed as u64, Ordering::Relaxed);
        }
        let left = Instant::now();
        for relayed in self.relayed.drain(..) {
            self.observer
                .relayed_to_browser(left - relayed.arrived, relayed.transcoded);
        }
    }
}

/// Puts a call's datagrams on the shard's browser port, batched, and on
/// the call's trunk sockets, and its audio to transcode on the shard's
/// transcoder.
struct Out<'a> {
    outlet: &'a mut Outlet,
    trunk: &'a SendSockets,
    call: u64,
}

impl Transmitter for Out<'_> {
    fn to_browser(&mut self, to: SocketAddr, bytes: &[u8], relayed: Option<Relayed>) {
        if self.outlet.to_browsers.batch.is_full() {
            self.outlet.flush();
        }
        if self.outlet.to_browsers.batch.push(to, bytes) {
            self.outlet.to_browsers.relayed.extend(relayed);
            return;
        }
        // Longer than a batch slot: no media is; send it on its own.
        let counter = match self.outlet.browser.send_to(bytes, to) {
            Ok(_) => &self.outlet.counters.sent,
            Err(_) => &self.outlet.counters.send_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(relayed) = relayed {
            self.outlet
                .to_browsers
                .observer
                .relayed_to_browser(relayed.arrived.elapsed(), relayed.transcoded);
        }
    }

    fn to_trunk(&mut self, transmit: &Transmit<'_>) -> bool {
        endpoint::transmit(self.trunk, transmit)
    }

    fn transcode(&mut self, request: TranscodeRequest) {
        if !self
            .outlet
            .transcoding
            .submit(Instant::now(), self.call, request)
        {
            self.outlet
                .counters
                .queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs one call's media `work`; false if it panicked. The call's state
/// may then be broken, so its caller takes it off the shard.
fn contained(work: impl FnOnce()) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(work)).is_ok()
}

/// Takes slot `index` out for [`Shard::release_failed`], after its media
/// panicked; the shard no longer routes anything to it.
fn fail(slots: &mut [Option<Slot>], failed: &mut Vec<(usize, Slot)>, index: usize) {
    if let Some(slot) = slots.get_mut(index).and_then(Option::take) {
        failed.push((index, slot));
    }
}

/// After any input to slot `index`: hands the media's events on and moves
/// its deadline.
fn settle(
    index: usize,
    slot: &mut Slot,
    routes: &mut BrowserRoutes<usize>,
    deadlines: &mut Deadlines,
) {
    while let Some(event) = slot.media.poll_event() {
        let event = match event {
            CallMediaEvent::PeerAddress(address) => {
                routes.learn(address, index);
                continue;
            }
            CallMediaEvent::PeerAddressDropped(address) => {
                routes.forget(address, index);
                continue;
            }
            CallMediaEvent::BrowserFailed { ice } => ShardEvent::BrowserFailed { ice },
            CallMediaEvent::BrowserGone => ShardEvent::BrowserGone,
            CallMediaEvent::Quality(warnings) => ShardEvent::Quality(warnings),
        };
        let _ = slot.events.try_send(event);
    }
    deadlines.set(index, slot.media.poll_timeout());
}

impl Shard {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut browser_backlog = false;
        loop {
            fail::fail_point!("media-shard-turn");
            let work_waits = browser_backlog
                || self.handshakes.has_waiting()
                || self.outlet.transcoding.has_waiting();
            let timeout = match work_waits {
                true => Some(Duration::ZERO),
                false => self
                    .deadlines
                    .next()
                    .map(|at| at.saturating_duration_since(Instant::now())),
            };
            if let Err(error) = self.poll.poll(&mut events, timeout)
                && error.kind() != io::ErrorKind::Interrupted
            {
                warn!(%error, "a media shard cannot wait for its sockets");
                std::thread::sleep(Duration::from_millis(10));
            }
            if !self.take_commands() {
                return;
            }
            self.handshakes.new_turn();
            self.run_waiting_handshakes();
            let mut browser_ready = browser_backlog;
            let mut ready_trunks = std::mem::take(&mut self.ready_trunks);
            for event in events.iter() {
                match event.token() {
                    BROWSER => browser_ready = true,
                    WAKER => {}
                    Token(token) => ready_trunks.push(token - FIRST_TRUNK),
                }
            }
            browser_backlog = self.read_in_rounds(browser_ready, &ready_trunks);
            ready_trunks.clear();
            self.ready_trunks = ready_trunks;
            self.run_due();
            self.outlet.flush();
            self.transcode_waiting();
            self.release_failed();
        }
    }

    /// Reads the browser port (if `browser_ready`) and the `ready_trunks`
    /// (by trunk index), a round of each in turn, each round's datagrams
    /// for browsers sent at its end; true if the browser port may still
    /// hold datagrams for the next turn.
    fn read_in_rounds(&mut self, mut browser_ready: bool, ready_trunks: &[usize]) -> bool {
        let mut browser_batches = BROWSER_BATCHES_PER_TURN;
        let mut trunks = ready_trunks.chunks(TRUNK_SOCKETS_PER_ROUND);
        loop {
            let browser_round = browser_ready && browser_batches > 0;
            if browser_round {
                let batches = browser_batches.min(BROWSER_BATCHES_PER_ROUND);
                browser_batches -= batches;
                browser_ready = self.read_browser(batches);
            }
            let trunk_round = trunks.next();
            for &trunk in trunk_round.unwrap_or_default() {
                self.read_trunk(trunk / 2, trunk % 2 == 1);
            }
            self.outlet.flush();
            self.transcode_waiting();
            if !browser_round && trunk_round.is_none() {
                return browser_ready;
            }
        }
    }

    /// Takes every queued command; false when the shard is to stop (the
    /// engine says so, or every sender is gone).
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Start { call, new, events }) => self.start(call, *new, events),
                Ok(Command::Media { call, command }) => self.on_media_command(call, command),
                Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return !self.stop.load(Ordering::Relaxed),
            }
        }
    }

    /// Hands the checks and DTLS records that waited for this turn to
    /// their calls, as many as the turn allows.
    fn run_waiting_handshakes(&mut self) {
        while let Some(mut waiting) = self.handshakes.next_waiting() {
            let index = waiting.slot;
            // A slot taken by another call since is not this one's.
            if let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut)
                && slot.call == waiting.call
            {
                let handled = contained(|| {
                    let mut out = Out {
                        outlet: &mut self.outlet,
                        trunk: &slot.trunk.sockets,
                        call: slot.call,
                    };
                    let (at, from) = (waiting.received_at, waiting.from);
                    slot.media
                        .handle_browser(at, from, waiting.bytes(), &mut out);
                    settle(index, slot, &mut self.routes, &mut self.deadlines);
                });
                if !handled {
                    fail(&mut self.slots, &mut self.failed, index);
                }
            }
            self.handshakes.recycle(waiting);
        }
    }

    /// Converts up to [`transcoding::PER_ROUND`] packets that wait for
    /// it, oldest first, and sends what they make.
    fn transcode_waiting(&mut self) {
        for _ in 0..transcoding::PER_ROUND {
            let Some((call, request)) = self.outlet.transcoding.next(Instant::now()) else {
                break;
            };
            // The audio of a call that has left is moot.
            let Some(&index) = self.by_call.get(&call) else {
                continue;
            };
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let handled = contained(|| {
                let done = self.outlet.transcoding.convert(call, request);
                let mut out = Out {
                    outlet: &mut self.outlet,
                    trunk: &slot.trunk.sockets,
                    call,
                };
                slot.media.handle_transcoded(Instant::now(), done, &mut out);
                settle(index, slot, &mut self.routes, &mut self.deadlines);
            });
            if !handled {
                fail(&mut self.slots, &mut self.failed, index);
            }
        }
        let late = self.outlet.transcoding.take_late();
        if late > 0 {
            self.outlet
                .counters
                .queue_full
                .fetch_add(late, Ordering::Relaxed);
        }
        self.outlet.flush();
    }

    fn start(&mut self, call: u64, new: NewCall, events: mpsc::Sender<ShardEvent>) {
        let NewCall {
            ufrag,
            media,
            trunk_ports,
        } = new;
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        // Without kernel timestamps, latency is counted from the read.
        let _ = enable_timestamps(&trunk_ports.rtp);
        let _ = enable_timestamps(&trunk_ports.rtcp);
        // Without the count, a trunk socket's drops are seen only in /proc.
        let _ = enable_overflow_count(&trunk_ports.rtp);
        let _ = enable_overflow_count(&trunk_ports.rtcp);
        let registry = self.poll.registry();
        let rtp_token = Token(FIRST_TRUNK + 2 * index);
        let rtcp_token = Token(FIRST_TRUNK + 2 * index + 1);
        let registered = self.routes.register(&ufrag, index, Instant::now())
            && registry
                .register(
                    &mut SourceFd(&trunk_ports.rtp.as_raw_fd()),
                    rtp_token,
                    Interest::READABLE,
                )
                .is_ok()
            && registry
                .register(
                    &mut SourceFd(&trunk_ports.rtcp.as_raw_fd()),
                    rtcp_token,
                    Interest::READABLE,
                )
                .is_ok();
        if !registered {
            // The sockets close as `trunk_ports` drops, leaving the set.
            self.routes.remove(&ufrag, index);
            self.free.push(index);
            self.calls.fetch_sub(1, Ordering::Relaxed);
            let _ = events.try_send(ShardEvent::Refused);
            return;
        }
        let mut slot = Slot {
            call,
            ufrag,
            media,
            trunk: TrunkSockets {
                sockets: SendSockets {
                    rtp: trunk_ports.rtp,
                    rtcp: trunk_ports.rtcp,
                },
                _lease: trunk_ports.lease,
            },
            trunk_dropped: [0; 2],
            events,
        };
        let settled = contained(|| settle(index, &mut slot, &mut self.routes, &mut self.deadlines));
        self.slots[index] = Some(slot);
        self.by_call.insert(call, index);
        if !settled {
            fail(&mut self.slots, &mut self.failed, index);
        }
    }

    fn on_media_command(&mut self, call: u64, command: MediaCommand) {
        // A command for a call that has left is moot (a dropped reply
        // tells a closing control the same).
        let Some(&index) = self.by_call.get(&call) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let now = Instant::now();
        let mut closed = None;
        let handled = contained(|| {
            let media = &mut slot.media;
            match command {
                MediaCommand::TrunkRemote(remote) => {
                    if let Err(error) = media.apply_trunk_remote(now, &remote) {
                        // The leg has validated it; only a broken key gets here.
                        warn!(%error, "the trunk's media description cannot be applied");
                    }
                }
                MediaCommand::TrunkAnswered(codec) => media.handle_trunk_answer(codec),
                MediaCommand::TrunkSourceChanged => media.handle_trunk_source_change(),
                MediaCommand::Dtmf(digits) => {
                    fail::fail_point!("media-shard-dtmf");
                    // Digits are checked before they are queued.
                    let _ = media.send_dtmf(now, &digits);
                }
                MediaCommand::DtmfToBrowser(digit) => media.play_dtmf_to_browser(now, digit),
                MediaCommand::Recording(open) => media.set_recording(open),
                MediaCommand::Close(reply) => {
                    let mut out = Out {
                        outlet: &mut self.outlet,
                        trunk: &slot.trunk.sockets,
                        call,
                    };
                    media.close(now, &mut out);
                    closed = Some((media.report(), reply));
                    return;
                }
            }
            settle(index, slot, &mut self.routes, &mut self.deadlines);
        });
        if !handled {
            fail(&mut self.slots, &mut self.failed, index);
        } else if let Some((report, reply)) = closed {
            self.remove(index);
            let _ = reply.send(report);
        }
    }

    /// Takes slot `index` and everything of its call off the shard.
    fn remove(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index).and_then(Option::take) {
            self.release(index, slot);
        }
    }

    /// Takes the calls whose media panicked this turn off the shard; each
    /// one's control hears that its media is lost and ends it as failed.
    fn release_failed(&mut self) {
        if self.failed.is_empty() {
            return;
        }
        for (index, slot) in std::mem::take(&mut self.failed) {
            error!("a call's media panicked: that call alone ends, as failed");
            self.outlet.to_browsers.observer.media_panicked();
            self.release(index, slot);
        }
    }

    /// Everything of the call that was in slot `index`, off the shard.
    fn release(&mut self, index: usize, slot: Slot) {
        let registry = self.poll.registry();
        let sockets = &slot.trunk.sockets;
        let _ = registry.deregister(&mut SourceFd(&sockets.rtp.as_raw_fd()));
        let _ = registry.deregister(&mut SourceFd(&sockets.rtcp.as_raw_fd()));
        self.routes.remove(&slot.ufrag, index);
        self.deadlines.clear(index);
        self.by_call.remove(&slot.call);
        self.outlet.transcoding.forget(slot.call);
        self.free.push(index);
        self.calls.fetch_sub(1, Ordering::Relaxed);
    }

    fn read_trunk(&mut self, index: usize, rtcp_port: bool) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            // A call that left this turn.
            return;
        };
        let batch = &mut self.trunk_batch;
        let handled = contained(|| {
            let socket = match rtcp_port {
                true => &slot.trunk.sockets.rtcp,
                false => &slot.trunk.sockets.rtp,
            };
            let mut out = Out {
                outlet: &mut self.outlet,
                trunk: &slot.trunk.sockets,
                call: slot.call,
            };
            let media = &mut slot.media;
            for _ in 0..TRUNK_BATCHES_PER_TURN {
                let read = batch.receive(socket, Instant::now(), |datagram| {
                    // A datagram that filled its buffer may have been cut.
                    if !datagram.truncated {
                        let (at, from) = (datagram.received_at, datagram.from);
                        media.handle_trunk(at, from, datagram.bytes, rtcp_port, &mut out);
                    }
                });
                if read.is_ok()
                    && let Some(total) = batch.overflowed()
                {
                    let seen = &mut slot.trunk_dropped[usize::from(rtcp_port)];
                    let dropped = total.wrapping_sub(*seen);
                    *seen = total;
                    out.outlet
                        .counters
                        .trunk_kernel_dropped
                        .fetch_add(dropped.into(), Ordering::Relaxed);
                }
                match read {
                    Ok(count) if count < TRUNK_BATCH => break,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    // An ICMP report on the socket: the next read is as good.
                    Ok(_) | Err(_) => {}
                }
            }
            settle(index, slot, &mut self.routes, &mut self.deadlines);
        });
        if !handled {
            fail(&mut self.slots, &mut self.failed, index);
        }
    }

    /// Reads up to `batches` batches from the browser port; true if
    /// datagrams may be left.
    fn read_browser(&mut self, batches: usize) -> bool {
        let Self {
            batch,
            outlet,
            routes,
            slots,
            failed,
            deadlines,
            handshakes,
            ..
        } = self;
        // The port is read by its descriptor, as its calls send on it
        // through `outlet` meanwhile.
        let browser = outlet.browser.as_raw_fd();
        let counters = outlet.counters.clone();
        let full_batch = batch.capacity();
        for _ in 0..batches {
            let read = batch.receive(&browser, Instant::now(), |datagram| {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if datagram.truncated {
                    counters.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let index = match routes.route(datagram.from, datagram.bytes, datagram.received_at)
                {
                    Routed::Call(index) => index,
                    Routed::Malformed => {
                        counters.malformed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Routed::Unknown => {
                        counters.unknown_peer.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Routed::OverBudget => {
                        counters.unverified_checks.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let Some(slot) = slots.get_mut(index).and_then(Option::as_mut) else {
                    return;
                };
                if is_handshake(datagram.bytes) {
                    let (at, from) = (datagram.received_at, datagram.from);
                    match handshakes.admit(slot.call, index, from, at, datagram.bytes) {
                        Admit::Now => {}
                        Admit::Queued => return,
                        Admit::Shed => {
                            counters.handshake_shed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                let handled = contained(|| {
                    let mut out = Out {
                        outlet: &mut *outlet,
                        trunk: &slot.trunk.sockets,
                        call: slot.call,
                    };
                    slot.media.handle_browser(
                        datagram.received_at,
                        datagram.from,
                        datagram.bytes,
                        &mut out,
                    );
                    settle(index, slot, routes, deadlines);
                });
                if !handled {
                    fail(slots, failed, index);
                }
            });
            if let Some(dropped) = batch.overflowed() {
                counters
                    .kernel_dropped
                    .store(dropped.into(), Ordering::Relaxed);
            }
            match read {
                Ok(count) if count < full_batch => return false,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                // ICMP reports of earlier sends concern one peer, not the
                // port.
                Ok(_) | Err(_) => {}
            }
        }
        true
    }

    /// Runs each call whose deadline has passed, once.
    fn run_due(&mut self) {
        let now = Instant::now();
        let mut due = std::mem::take(&mut self.due);
        while let Some(index) = self.deadlines.pop_due(now) {
            due.push(index);
        }
        for &index in &due {
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if slot.events.is_closed() {
                // Its control is gone without a goodbye.
                self.remove(index);
                continue;
            }
            let handled = contained(|| {
                let mut out = Out {
                    outlet: &mut self.outlet,
                    trunk: &slot.trunk.sockets,
                    call: slot.call,
                };
                slot.media.handle_timeout(now, &mut out);
                settle(index, slot, &mut self.routes, &mut self.deadlines);
            });
            if !handled {
                fail(&mut self.slots, &mut self.failed, index);
            }
        }
        due.clear();
        self.due = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::quality::{Leg, LegWindow};
    use std::sync::Mutex;

    /// Keeps every latency reported towards the browser.
    #[derive(Default)]
    struct Latencies(Mutex<Vec<Duration>>);

    impl RelayObserver for Latencies {
        fn relayed_to_trunk(&self, _latency: Duration, _transcoded: bool) {}
        fn relayed_to_browser(&self, latency: Duration, _transcoded: bool) {
            self.0.lock().unwrap().push(latency);
        }
        fn browser_connect_failed(&self, _ice: bool) {}
        fn browser_rejected(&self, _srtp: bool) {}
        fn media_panicked(&self) {}
        fn quality_window(&self, _leg: Leg, _window: &LegWindow) {}
    }

    fn socket() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn a_relayed_packet_counts_its_wait_in_the_batch_and_leaves_in_order() {
        let (port, browser) = (socket(), socket());
        browser
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let to = browser.local_addr().unwrap();
        let latencies = Arc::new(Latencies::default());
        let trunk = SendSockets {
            rtp: socket(),
            rtcp: socket(),
        };
        let mut outlet = Outlet {
            browser: port,
            to_browsers: ToBrowsers {
                batch: SendBatch::with_capacity(3),
                relayed: Vec::new(),
                observer: latencies.clone(),
            },
            counters: Arc::default(),
            transcoding: Transcoding::default(),
        };
        let mut out = Out {
            outlet: &mut outlet,
            trunk: &trunk,
            call: 1,
        };
        let now = || {
            Some(Relayed {
                arrived: Instant::now(),
                transcoded: false,
            })
        };
        out.to_browser(to, b"relayed", now());
        out.to_browser(to, b"report", None);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            latencies.0.lock().unwrap().is_empty(),
            "nothing is reported before it leaves"
        );
        out.to_browser(to, b"second", now());
        // The batch is full: the next one sends the three first.
        out.to_browser(to, b"third", now());
        {
            let reported = latencies.0.lock().unwrap();
            assert_eq!(reported.len(), 2, "only relayed packets count");
            assert!(reported[0] >= Duration::from_millis(20), "{reported:?}");
            assert!(reported[1] < Duration::from_millis(20), "{reported:?}");
        }
        outlet.flush();
        assert_eq!(latencies.0.lock().unwrap().len(), 3);
        assert_eq!(outlet.counters.sent.load(Ordering::Relaxed), 4);
        let mut buffer = [0u8; 64];
        for expected in [&b"relayed"[..], b"report", b"second", b"third"] {
            let len = browser.recv(&mut buffer).unwrap();
            assert_eq!(&buffer[..len], expected);
        }
    }
}
