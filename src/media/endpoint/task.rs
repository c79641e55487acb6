//! The endpoint's driver task: reads both sockets, feeds the receive half,
//! publishes latches to the send half, runs the DTMF and RTCP timers, and
//! forwards events to the owner without ever waiting on it.
//!
//! Invariants: the loop ends only when the owner's handle is gone (the
//! remote-description channel closes); socket errors and garbage never end
//! it. The port lease is the last thing dropped, after the sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::recv::{Latch, Received, RecvCore, Verdict};
use super::send::SendCore;
use super::stats::{DropReason, StatsCells};
use super::{MediaEvent, RemoteSlot, SendSockets, lock, transmit};
use crate::media::ports::PortLease;
use crate::media::rtcp::{NtpTime, report_interval};
use crate::media::rtp::Ssrc;

/// Larger than any datagram a trunk sends; a datagram that fills it may
/// have been truncated by the kernel and is dropped as malformed.
const RECV_BUFFER: usize = 2048;

/// Everything the driver is built from.
pub(super) struct DriverParts {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub sockets: Arc<SendSockets>,
    pub send: Arc<Mutex<SendCore>>,
    pub remote_rx: watch::Receiver<RemoteSlot>,
    pub wake: Arc<Notify>,
    pub stats: Arc<StatsCells>,
    pub events: mpsc::Sender<MediaEvent>,
    pub ssrc: Ssrc,
    pub rtcp_min_interval: Duration,
    pub lease: PortLease,
}

pub(super) struct Driver {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    sockets: Arc<SendSockets>,
    send: Arc<Mutex<SendCore>>,
    recv: RecvCore,
    remote_rx: watch::Receiver<RemoteSlot>,
    wake: Arc<Notify>,
    stats: Arc<StatsCells>,
    events: mpsc::Sender<MediaEvent>,
    ssrc: Ssrc,
    rtcp_min_interval: Duration,
    next_report: Instant,
    dtmf_due: Option<Instant>,
    /// Declared last so it drops after the sockets above.
    _lease: PortLease,
}

enum Wake {
    Remote,
    Closed,
    Rtp(std::io::Result<(usize, SocketAddr)>),
    Rtcp(std::io::Result<(usize, SocketAddr)>),
    Timer,
}

impl Driver {
    pub(super) fn new(parts: DriverParts) -> Self {
        let first = report_interval(parts.rtcp_min_interval, true, rand::random());
        Self {
            rtp: parts.rtp,
            rtcp: parts.rtcp,
            sockets: parts.sockets,
            send: parts.send,
            recv: RecvCore::new(),
            remote_rx: parts.remote_rx,
            wake: parts.wake,
            stats: parts.stats,
            events: parts.events,
            ssrc: parts.ssrc,
            rtcp_min_interval: parts.rtcp_min_interval,
            next_report: Instant::now() + first,
            dtmf_due: None,
            _lease: parts.lease,
        }
    }

    pub(super) async fn run(mut self) {
        let mut rtp_buf = vec![0u8; RECV_BUFFER];
        let mut rtcp_buf = vec![0u8; RECV_BUFFER];
        loop {
            let deadline = self
                .dtmf_due
                .map_or(self.next_report, |due| due.min(self.next_report));
            let wake = tokio::select! {
                changed = self.remote_rx.changed() => match changed {
                    Ok(()) => Wake::Remote,
                    Err(_) => Wake::Closed,
                },
                received = self.rtp.recv_from(&mut rtp_buf) => Wake::Rtp(received),
                received = self.rtcp.recv_from(&mut rtcp_buf) => Wake::Rtcp(received),
                () = tokio::time::sleep_until(deadline) => Wake::Timer,
                () = self.wake.notified() => Wake::Timer,
            };
            match wake {
                Wake::Closed => break,
                Wake::Remote => self.on_remote(),
                Wake::Rtp(Ok((len, src))) => self.on_datagram(src, &rtp_buf, len, false),
                Wake::Rtcp(Ok((len, src))) => self.on_datagram(src, &rtcp_buf, len, true),
                // Transient (an ICMP error reported on the socket): the
                // next read is as good as ever.
                Wake::Rtp(Err(_)) | Wake::Rtcp(Err(_)) => {}
                Wake::Timer => self.on_timer(),
            }
        }
        self.send_goodbye();
    }

    fn on_remote(&mut self) {
        let Some((generation, remote)) = self.remote_rx.borrow_and_update().clone() else {
            return;
        };
        let now = Instant::now().into_std();
        if self.recv.apply_remote(now, generation, &remote).is_err() {
            // Only a malformed key could fail here, and set_remote has
            // already refused those; keep the previous description.
            tracing::warn!("remote media description could not be applied");
        }
    }

    fn on_datagram(&mut self, src: SocketAddr, buf: &[u8], len: usize, rtcp_port: bool) {
        let Some(data) = buf.get(..len).filter(|_| len < buf.len()) else {
            self.stats.on_drop(DropReason::Malformed);
            return;
        };
        // The owner may have set the remote just before the peer's first
        // packet arrived; apply it first rather than race the select.
        if self.remote_rx.has_changed().unwrap_or(false) {
            self.on_remote();
        }
        let now = Instant::now().into_std();
        let received = if rtcp_port {
            self.recv.handle_rtcp_port(now, src, data, self.ssrc)
        } else {
            self.recv.handle_rtp_port(now, src, data, self.ssrc)
        };
        self.after_receive(received, len);
    }

    fn after_receive(&mut self, received: Received, len: usize) {
        if let Some(latch) = received.latch {
            let generation = self.recv.generation();
            let mut core = lock(&self.send);
            match latch {
                Latch::Rtp(addr) => {
                    if core.latch_rtp(generation, addr) {
                        self.stats.set_latched(true);
                    }
                }
                Latch::Rtcp(addr) => core.latch_rtcp(generation, addr),
            }
        }
        match received.verdict {
            Verdict::Drop(reason) => self.stats.on_drop(reason),
            Verdict::Deliver(event) => {
                self.on_media_received(len);
                if self.events.try_send(event).is_err() {
                    self.stats.on_drop(DropReason::ConsumerLagging);
                }
            }
            Verdict::Absorbed => self.on_media_received(len),
            Verdict::Rtcp(about_us) => {
                self.stats.on_rtcp_received();
                if let Some(block) = about_us {
                    self.stats.set_remote_report(&block, self.recv.clock_rate());
                    let arrival = NtpTime::from_system_time(SystemTime::now());
                    if let Some(rtt) = lock(&self.send).round_trip(&block, arrival) {
                        self.stats.set_round_trip(rtt);
                    }
                }
            }
        }
    }

    fn on_media_received(&self, len: usize) {
        self.stats.on_rtp_received(len);
        let (lost, jitter) = self.recv.reception();
        self.stats.set_reception(lost, jitter);
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        self.dtmf_due = self.drive_dtmf(now.into_std()).map(Instant::from_std);
        if now >= self.next_report {
            self.send_report(now);
            let interval = report_interval(self.rtcp_min_interval, false, rand::random());
            self.next_report = now + interval;
        }
    }

    /// Sends every DTMF packet due; returns when the schedule next runs.
    fn drive_dtmf(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        let mut core = lock(&self.send);
        loop {
            match core.poll_dtmf(now) {
                Ok(Some(tx)) => transmit(&self.sockets, &self.stats, &tx),
                Ok(None) => break,
                Err(_) => self.stats.on_drop(DropReason::SendFailed),
            }
        }
        core.dtmf_timeout()
    }

    fn send_report(&mut self, now: Instant) {
        let block = self.recv.poll_report_block(now.into_std());
        let mut core = lock(&self.send);
        match core.prepare_report(now.into_std(), SystemTime::now(), block) {
            Ok(Some(tx)) => transmit(&self.sockets, &self.stats, &tx),
            Ok(None) => {}
            Err(_) => self.stats.on_drop(DropReason::SendFailed),
        }
    }

    fn send_goodbye(&self) {
        let mut core = lock(&self.send);
        if let Ok(Some(tx)) = core.prepare_goodbye() {
            transmit(&self.sockets, &self.stats, &tx);
        }
    }
}
