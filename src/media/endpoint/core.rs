//! [`EndpointCore`]: the whole protocol state of one trunk leg's media,
//! with no socket and no task: both sans-IO halves, the counters, and the
//! RTCP and DTMF schedules.
//!
//! Whoever hosts it reads the sockets, hands each datagram to
//! [`EndpointCore::handle_datagram`], calls [`EndpointCore::handle_timeout`]
//! once [`EndpointCore::poll_timeout`] has passed, and puts every
//! [`Transmit`] it is given on the socket its [`PacketKind`] names. The
//! sink returns whether the socket took the datagram; a refusal is counted
//! as `send_failed` and costs that packet only.
//!
//! [`super::RtpEndpoint`] hosts one on a tokio task (the echo trunk and the
//! tests); a call hosts its own next to its browser session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::recv::{Latch, RecvCore, Verdict};
use super::send::{PacketKind, SendCore, Transmit};
use super::stats::EndpointStats;
use super::stats::{DropReason, StatsCells};
use super::types::{EndpointConfig, MediaEvent, RemoteMedia};
use crate::media::MediaError;
use crate::media::rtcp::{NtpTime, report_interval};
use crate::media::rtp::{Ssrc, StreamStart};

/// See the module documentation.
pub struct EndpointCore {
    send: SendCore,
    recv: RecvCore,
    stats: Arc<StatsCells>,
    ssrc: Ssrc,
    rtcp_min_interval: Duration,
    next_report: Instant,
}

impl EndpointCore {
    /// A fresh endpoint with a random SSRC, sequence, timestamp and CNAME.
    pub fn new(config: &EndpointConfig, now: Instant) -> Result<Self, MediaError> {
        let start = StreamStart {
            ssrc: Ssrc(rand::random()),
            sequence: rand::random(),
            timestamp: rand::random(),
        };
        // RFC 7022: a random CNAME links nothing to a user or host.
        let cname = hex::encode(rand::random::<[u8; 12]>()).into_bytes();
        let first = report_interval(config.rtcp_min_interval, true, rand::random());
        Ok(Self {
            send: SendCore::new(start, config, cname, now)?,
            recv: RecvCore::new(),
            stats: Arc::default(),
            ssrc: start.ssrc,
            rtcp_min_interval: config.rtcp_min_interval,
            next_report: now + first,
        })
    }

    /// Our outgoing SSRC, stable for the life of the endpoint.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Counters, read without locks from any thread.
    pub fn stats(&self) -> EndpointStats {
        self.stats.snapshot()
    }

    /// A reader of the counters for another thread.
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(Arc::clone(&self.stats))
    }

    /// Applies a (re-)negotiated remote description: new address, hold or
    /// unhold, new keys. Clears the symmetric-RTP latch.
    pub fn apply_remote(&mut self, now: Instant, remote: &RemoteMedia) -> Result<(), MediaError> {
        remote.validate()?;
        let generation = self.send.apply_remote(remote)?;
        self.recv.apply_remote(now, generation, remote)?;
        self.stats.set_latched(false);
        Ok(())
    }

    /// One datagram from the RTP port (`rtcp_port` false) or the RTCP
    /// port; returns the audio frame or digit it carried, if any.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        rtcp_port: bool,
    ) -> Option<MediaEvent> {
        let received = if rtcp_port {
            self.recv.handle_rtcp_port(now, src, data, self.ssrc)
        } else {
            self.recv.handle_rtp_port(now, src, data, self.ssrc)
        };
        if let Some(latch) = received.latch {
            let generation = self.recv.generation();
            match latch {
                Latch::Rtp(addr) => {
                    if self.send.latch_rtp(generation, addr) {
                        self.stats.set_latched(true);
                    }
                }
                Latch::Rtcp(addr) => self.send.latch_rtcp(generation, addr),
            }
        }
        match received.verdict {
            Verdict::Drop(reason) => {
                self.stats.on_drop(reason);
                None
            }
            Verdict::Deliver(event) => {
                self.on_media_received(data.len());
                Some(event)
            }
            Verdict::Rtcp(about_us) => {
                self.stats.on_rtcp_received();
                if let Some(block) = about_us {
                    self.stats.set_remote_report(&block, self.recv.clock_rate());
                    let arrival = NtpTime::from_system_time(SystemTime::now());
                    if let Some(rtt) = self.send.round_trip(&block, arrival) {
                        self.stats.set_round_trip(rtt);
                    }
                }
                None
            }
        }
    }

    /// Counts a datagram that filled the receive buffer and so may have
    /// been cut short.
    pub fn count_truncated(&self) {
        self.stats.on_drop(DropReason::Malformed);
    }

    /// Counts an event its owner could not take.
    pub fn count_lagging(&self) {
        self.stats.on_drop(DropReason::ConsumerLagging);
    }

    fn on_media_received(&self, len: usize) {
        self.stats.on_rtp_received(len);
        let (lost, jitter) = self.recv.reception();
        self.stats.set_reception(lost, jitter);
    }

    /// Sends one frame of our own audio (`samples` clock ticks long).
    /// A no-op on hold or before a remote description.
    pub fn send_audio(
        &mut self,
        now: Instant,
        payload: &[u8],
        samples: u32,
        sink: impl FnMut(&Transmit<'_>) -> bool,
    ) -> Result<(), MediaError> {
        let prepared = self.send.prepare_audio(now, payload, samples)?;
        deliver(&self.stats, prepared, sink);
        Ok(())
    }

    /// Relays an RTP packet from the other leg: sequence, timestamp, SSRC
    /// and marker are rewritten into one continuous stream and the payload
    /// type set to the negotiated audio type; the payload is not touched.
    pub fn forward_rtp(
        &mut self,
        now: Instant,
        packet: &[u8],
        sink: impl FnMut(&Transmit<'_>) -> bool,
    ) -> Result<(), MediaError> {
        let prepared = self.send.prepare_forward(now, packet)?;
        deliver(&self.stats, prepared, sink);
        Ok(())
    }

    /// Queues DTMF digits (0-9 * # A-D) as RFC 4733 events; they leave on
    /// the timer.
    pub fn queue_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), MediaError> {
        self.send.queue_dtmf(digits, now)
    }

    /// When [`EndpointCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        match self.send.dtmf_timeout() {
            Some(due) => due.min(self.next_report),
            None => self.next_report,
        }
    }

    /// Sends the DTMF packets and the RTCP report that are due.
    pub fn handle_timeout(&mut self, now: Instant, mut sink: impl FnMut(&Transmit<'_>) -> bool) {
        loop {
            match self.send.poll_dtmf(now) {
                Ok(Some(tx)) => count(&self.stats, &tx, sink(&tx)),
                Ok(None) => break,
                Err(_) => self.stats.on_drop(DropReason::SendFailed),
            }
        }
        if now >= self.next_report {
            let block = self.recv.poll_report_block(now);
            match self.send.prepare_report(now, SystemTime::now(), block) {
                Ok(prepared) => deliver(&self.stats, prepared, sink),
                Err(_) => self.stats.on_drop(DropReason::SendFailed),
            }
            let interval = report_interval(self.rtcp_min_interval, false, rand::random());
            self.next_report = now + interval;
        }
    }

    /// The RTCP BYE for when the endpoint closes.
    pub fn goodbye(&mut self, sink: impl FnMut(&Transmit<'_>) -> bool) {
        if let Ok(prepared) = self.send.prepare_goodbye() {
            deliver(&self.stats, prepared, sink);
        }
    }
}

/// Reads an endpoint's counters from another thread.
#[derive(Debug, Clone)]
pub struct StatsReader(Arc<StatsCells>);

impl StatsReader {
    pub fn get(&self) -> EndpointStats {
        self.0.snapshot()
    }
}

fn deliver(
    stats: &StatsCells,
    prepared: Option<Transmit<'_>>,
    mut sink: impl FnMut(&Transmit<'_>) -> bool,
) {
    if let Some(tx) = prepared {
        count(stats, &tx, sink(&tx));
    }
}

fn count(stats: &StatsCells, tx: &Transmit<'_>, sent: bool) {
    match (sent, tx.kind) {
        (true, PacketKind::Rtp) => stats.on_rtp_sent(tx.bytes.len()),
        (true, PacketKind::Rtcp { .. }) => stats.on_rtcp_sent(),
        (false, _) => stats.on_drop(DropReason::SendFailed),
    }
}

/// The core's state is plain data that stays consistent even if a holder
/// panicked, so a poisoned lock is taken over.
pub(super) fn lock(core: &Mutex<EndpointCore>) -> MutexGuard<'_, EndpointCore> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
