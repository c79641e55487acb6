//! The task that hosts an [`RtpEndpoint`](super::RtpEndpoint)'s
//! [`EndpointCore`] on tokio: it reads both sockets, runs the core's timer,
//! and forwards events to the owner without ever waiting on it.
//!
//! Invariants: the loop ends only when the owner's handle is gone (the stop
//! channel closes); socket errors and garbage never end it. The port lease
//! is the last thing dropped, after the sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::core::EndpointCore;
use super::core::lock;
use super::sockets::{SendSockets, transmit};
use super::types::MediaEvent;
use crate::media::ports::PortLease;

/// Larger than any datagram a trunk sends; a datagram that fills it may
/// have been truncated by the kernel and is dropped as malformed.
pub(super) const RECV_BUFFER: usize = 2048;

/// Everything the task is built from.
pub(super) struct TaskParts {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub sockets: Arc<SendSockets>,
    pub core: Arc<Mutex<EndpointCore>>,
    pub wake: Arc<Notify>,
    pub stop: oneshot::Receiver<()>,
    pub events: mpsc::Sender<MediaEvent>,
    pub lease: PortLease,
}

enum Wake {
    Closed,
    Rtp(std::io::Result<(usize, SocketAddr)>),
    Rtcp(std::io::Result<(usize, SocketAddr)>),
    Timer,
}

pub(super) async fn run(parts: TaskParts) {
    let TaskParts {
        rtp,
        rtcp,
        sockets,
        core,
        wake,
        mut stop,
        events,
        lease,
    } = parts;
    let mut rtp_buf = vec![0u8; RECV_BUFFER];
    let mut rtcp_buf = vec![0u8; RECV_BUFFER];
    loop {
        let deadline = Instant::from_std(lock(&core).poll_timeout());
        let woke = tokio::select! {
            _ = &mut stop => Wake::Closed,
            received = rtp.recv_from(&mut rtp_buf) => Wake::Rtp(received),
            received = rtcp.recv_from(&mut rtcp_buf) => Wake::Rtcp(received),
            () = tokio::time::sleep_until(deadline) => Wake::Timer,
            () = wake.notified() => Wake::Timer,
        };
        let now = Instant::now().into_std();
        let mut core = lock(&core);
        let event = match woke {
            Wake::Closed => break,
            Wake::Rtp(Ok((len, src))) => on_datagram(&mut core, now, src, &rtp_buf, len, false),
            Wake::Rtcp(Ok((len, src))) => on_datagram(&mut core, now, src, &rtcp_buf, len, true),
            // Transient (an ICMP error reported on the socket): the next
            // read is as good as ever.
            Wake::Rtp(Err(_)) | Wake::Rtcp(Err(_)) => None,
            Wake::Timer => {
                if now >= core.poll_timeout() {
                    core.handle_timeout(now, |tx| transmit(&sockets, tx));
                }
                None
            }
        };
        let news = event.filter(|event| !matches!(event, MediaEvent::DtmfContinued { .. }));
        if news.is_some_and(|event| events.try_send(event).is_err()) {
            core.count_lagging();
        }
    }
    lock(&core).goodbye(|tx| transmit(&sockets, tx));
    drop((rtp, rtcp, sockets, core));
    drop(lease);
}

fn on_datagram(
    core: &mut EndpointCore,
    now: std::time::Instant,
    src: SocketAddr,
    buf: &[u8],
    len: usize,
    rtcp_port: bool,
) -> Option<MediaEvent> {
    // A datagram that filled the buffer may have been cut short.
    let Some(data) = buf.get(..len).filter(|_| len < buf.len()) else {
        core.count_truncated();
        return None;
    };
    core.handle_datagram(now, src, data, rtcp_port)
}
