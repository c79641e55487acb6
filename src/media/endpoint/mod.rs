//! [`RtpEndpoint`]: the socket side of one call's trunk leg — an RTP and an
//! RTCP UDP socket from the [`PortAllocator`], symmetric RTP latching,
//! optional SDES-SRTP, RTCP reports, DTMF both ways, and counters.
//!
//! Shape: the protocol work is done by [`EndpointCore`], sans-IO, built of
//! two halves, `send::SendCore` and `recv::RecvCore`. A call's media hosts
//! its core directly, next to the browser session. [`RtpEndpoint`] hosts
//! one on a tokio task for the echo trunk and the tests: the task reads
//! both sockets and runs the DTMF and RTCP timers, the owner sends through
//! a mutex that is only ever held for a non-blocking `send_to` (never
//! across an await), and received media reaches the owner as
//! [`MediaEvent`]s over a bounded channel; when the owner lags, events are
//! dropped and counted, and the socket loop never waits.
//!
//! Invariants:
//! - Garbage on either port is dropped and counted by reason
//!   ([`DropReason`]); it never ends the call and never panics.
//! - After latching, packets from any other address than the latched or
//!   signalled one are dropped before any crypto work (`unexpected_source`).
//! - Closing or dropping the endpoint stops the task, sends an RTCP BYE if
//!   a remote is known, and returns the ports to the allocator.
//! - Logs never carry addresses, keys, payloads or digits.
//!
//! RFCs: 3550 (RTP/RTCP), 3711 and 4568 (SDES-SRTP), 4733 (DTMF),
//! 4961 (symmetric RTP), 5761 (rtcp-mux).

mod core;
mod recv;
mod send;
mod sockets;
mod stats;
mod task;
#[cfg(test)]
mod tests;
mod types;

use self::core::lock;
pub use self::core::{EndpointCore, StatsReader};
pub use self::sockets::{SendSockets, transmit};
pub use self::types::{EndpointConfig, MAX_PAYLOAD, MediaEvent, MediaFrame, RemoteMedia};
pub use send::{PacketKind, Transmit};
pub use stats::{DropCounts, DropReason, EndpointStats};

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::MediaError;
use super::ports::PortAllocator;
use super::rtp::Ssrc;

/// See the module documentation.
pub struct RtpEndpoint {
    local_rtp: SocketAddr,
    local_rtcp: SocketAddr,
    ssrc: Ssrc,
    sockets: Arc<SendSockets>,
    core: Arc<Mutex<EndpointCore>>,
    wake: Arc<Notify>,
    stats: StatsReader,
    events: Option<mpsc::Receiver<MediaEvent>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl fmt::Debug for RtpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpEndpoint")
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

/// The clock every part of the endpoint uses; tokio's, so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl RtpEndpoint {
    /// Binds a port pair on `bind_ip` and starts the endpoint's task.
    /// Must be called inside a tokio runtime.
    pub fn bind(allocator: &PortAllocator, bind_ip: IpAddr) -> Result<Self, MediaError> {
        Self::bind_with(allocator, bind_ip, EndpointConfig::default())
    }

    pub fn bind_with(
        allocator: &PortAllocator,
        bind_ip: IpAddr,
        config: EndpointConfig,
    ) -> Result<Self, MediaError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MediaError::NoRuntime)?;
        let _entered = runtime.enter();
        let ports = allocator.allocate(bind_ip)?;
        let sockets = Arc::new(SendSockets {
            rtp: ports.rtp.try_clone().map_err(MediaError::Bind)?,
            rtcp: ports.rtcp.try_clone().map_err(MediaError::Bind)?,
        });
        let rtp = UdpSocket::from_std(ports.rtp).map_err(MediaError::Bind)?;
        let rtcp = UdpSocket::from_std(ports.rtcp).map_err(MediaError::Bind)?;
        let local_rtp = rtp.local_addr().map_err(MediaError::Bind)?;
        let local_rtcp = rtcp.local_addr().map_err(MediaError::Bind)?;
        let core = EndpointCore::new(&config, now())?;
        let (ssrc, stats) = (core.ssrc(), core.stats_reader());
        let core = Arc::new(Mutex::new(core));
        let (events_tx, events_rx) = mpsc::channel(config.events_capacity.max(1));
        let (stop, stop_rx) = oneshot::channel();
        let wake = Arc::new(Notify::new());
        let task = runtime.spawn(task::run(task::TaskParts {
            rtp,
            rtcp,
            sockets: Arc::clone(&sockets),
            core: Arc::clone(&core),
            wake: Arc::clone(&wake),
            stop: stop_rx,
            events: events_tx,
            lease: ports.lease,
        }));
        Ok(Self {
            local_rtp,
            local_rtcp,
            ssrc,
            sockets,
            core,
            wake,
            stats,
            events: Some(events_rx),
            stop,
            task,
        })
    }

    pub fn local_rtp_addr(&self) -> SocketAddr {
        self.local_rtp
    }

    pub fn local_rtcp_addr(&self) -> SocketAddr {
        self.local_rtcp
    }

    /// Our outgoing SSRC, stable for the life of the endpoint.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The receiver of audio frames and DTMF digits; `None` once taken.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.events.take()
    }

    /// Applies a (re-)negotiated remote description: new address, hold or
    /// unhold, new keys. Clears the symmetric-RTP latch.
    pub fn set_remote(&self, remote: RemoteMedia) -> Result<(), MediaError> {
        lock(&self.core).apply_remote(now(), &remote)?;
        // The report schedule starts with the first description.
        self.wake.notify_one();
        Ok(())
    }

    /// Sends one frame of our own audio (`samples` clock ticks long).
    /// A no-op on hold or before [`RtpEndpoint::set_remote`].
    pub fn send_audio(&self, payload: &[u8], samples: u32) -> Result<(), MediaError> {
        lock(&self.core).send_audio(now(), payload, samples, |tx| transmit(&self.sockets, tx))
    }

    /// Relays an RTP packet from the other leg (see
    /// [`EndpointCore::forward_rtp`]).
    pub fn forward_rtp(&self, packet: &[u8], now: Instant) -> Result<(), MediaError> {
        lock(&self.core).forward_rtp(now, packet, |tx| transmit(&self.sockets, tx))
    }

    /// Queues DTMF digits (0-9 * # A-D) as RFC 4733 events; the endpoint's
    /// task sends them on its timer.
    pub fn send_dtmf(&self, digits: &str) -> Result<(), MediaError> {
        lock(&self.core).queue_dtmf(now(), digits)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Counters, read without locks.
    pub fn stats(&self) -> EndpointStats {
        self.stats.get()
    }

    /// Stops the task (sending an RTCP BYE) and waits until the ports are
    /// back in the allocator. Dropping the endpoint does the same without
    /// waiting.
    pub async fn close(self) {
        let Self {
            sockets,
            core,
            wake,
            events,
            stop,
            task,
            ..
        } = self;
        // Our socket handles go first so the ports are really closed when
        // the task hands the lease back.
        drop((sockets, core, wake, events, stop));
        // The task only ends by returning; a panic in it has been counted
        // by the runtime already and leaves nothing for us to do.
        let _ = task.await;
    }
}
