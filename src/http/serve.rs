//! Serving HTTP connections within bounds, for a node that faces the
//! internet.
//!
//! - At most `max_connections` at once, and `max_connections_per_ip` from
//!   one address (a trusted proxy, which carries many clients, is exempt):
//!   a connection over either cap is closed as it is accepted, and counted.
//! - A request's head must arrive within `header_read_timeout`, which is
//!   also how long an HTTP/1 connection may sit idle between requests
//!   (hyper starts the timer whenever it waits for a head).
//! - A request must be answered within `request_timeout`, its body read
//!   included (408 otherwise).
//! - A connection that moves no byte either way for `idle_timeout` is
//!   closed: an HTTP/2 connection, or a WebSocket whose client stopped
//!   answering the server's pings.
//! - HTTP/2: at most [`H2_MAX_STREAMS`] requests at once per connection,
//!   headers of at most [`MAX_HEADER_BYTES`], and keep-alive pings.
//!
//! Shutdown stops accepting, lets the requests in flight finish and
//! returns; WebSockets, detached from their connection, end with their
//! calls.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::metrics::{ConnectionRefusal, HttpMetrics};

/// The largest request body the node takes (a call's offer, an admin
/// change); a request that declares a longer one is refused (413) before
/// any of it is read, and routes stop reading at this length.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// HTTP/2 requests in flight on one connection.
pub const H2_MAX_STREAMS: u32 = 64;
/// The largest request head: the request line and every header.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The bounds a listener serves within; see the module documentation.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Peers exempt from the per-address cap: the trusted proxies.
    pub shared_peers: Arc<[IpNet]>,
}

impl ServeLimits {
    /// The bounds `[http]` sets.
    pub fn of(config: &HttpConfig) -> Self {
        let secs = |s: u32| Duration::from_secs(s.into());
        Self {
            max_connections: config.max_connections as usize,
            max_connections_per_ip: config.max_connections_per_ip as usize,
            header_read_timeout: secs(config.header_read_timeout_secs),
            request_timeout: secs(config.request_timeout_secs),
            idle_timeout: secs(config.idle_timeout_secs),
            shared_peers: config.trusted_proxy_nets().into(),
        }
    }

    /// Generous bounds for tests and tools.
    pub fn relaxed() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_ip: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            shared_peers: Arc::from([]),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled and the requests in flight have finished.
pub async fn serve_bounded<L>(
    mut listener: L,
    router: Router,
    limits: ServeLimits,
    metrics: HttpMetrics,
    shutdown: CancellationToken,
) where
    L: Listener<Addr = SocketAddr>,
{
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            answer_within,
        ))
        .layer(axum::middleware::from_fn(refuse_declared_oversize));
    let builder = connection_builder(&limits);
    let slots = Arc::new(Slots::new(&limits));
    let graceful = GracefulShutdown::new();
    loop {
        let (io, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let slot = match slots.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics.connection_refused(refusal);
                continue;
            }
        };
        let io = Watched::new(io, slot, limits.idle_timeout, metrics.clone());
        let service = WithPeer {
            router: router.clone(),
            peer,
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if is_timeout(error.as_ref()) {
                    metrics.connection_timed_out();
                }
                tracing::trace!(%error, "http connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn connection_builder(limits: &ServeLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        // WebSockets over HTTP/2 (RFC 8441).
        .enable_connect_protocol()
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE);
    builder
}

/// Whether a connection ended on one of its timeouts.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return true;
            }
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = error.source();
    }
    false
}

/// Answers 408 for a request not answered within `limit`.
async fn answer_within(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let body = axum::Json(serde_json::json!({ "error": "request timed out" }));
            (StatusCode::REQUEST_TIMEOUT, body).into_response()
        }
    }
}

/// Answers 413 for a request whose declared body is over [`MAX_BODY_BYTES`].
async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        let message = format!("request body is larger than {MAX_BODY_BYTES} bytes");
        let body = axum::Json(serde_json::json!({ "error": message }));
        return (StatusCode::PAYLOAD_TOO_LARGE, body).into_response();
    }
    next.run(request).await
}

/// The router, told which peer each request came from.
#[derive(Clone)]
struct WithPeer {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for WithPeer {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move { tower_service::Service::call(&mut router, request).await })
    }
}

/// The open connections, in all and per address.
#[derive(Debug)]
struct Slots {
    max: usize,
    max_per_ip: usize,
    shared_peers: Arc<[IpNet]>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
struct Slot {
    slots: Arc<Slots>,
    /// `None` for a shared peer, which is not counted per address.
    ip: Option<IpAddr>,
}

impl Slots {
    fn new(limits: &ServeLimits) -> Self {
        Self {
            max: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            shared_peers: limits.shared_peers.clone(),
            open: Mutex::new(Open::default()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, ConnectionRefusal> {
        let shared = self.shared_peers.iter().any(|net| net.contains(&ip));
        let mut open = self.open();
        if open.total >= self.max {
            return Err(ConnectionRefusal::NodeFull);
        }
        if !shared {
            let count = open.per_ip.entry(ip).or_default();
            if *count >= self.max_per_ip {
                return Err(ConnectionRefusal::AddressFull);
            }
            *count += 1;
        }
        open.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            ip: (!shared).then_some(ip),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(count) = open.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// A connection's stream, holding its slot, that fails with `TimedOut`
/// once no byte has moved either way for `idle`.
struct Watched<IO> {
    io: IO,
    _slot: Slot,
    _open: OpenConnection,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

/// One connection in the open-connections gauge.
struct OpenConnection(HttpMetrics);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

impl<IO> Watched<IO> {
    fn new(io: IO, slot: Slot, idle: Duration, metrics: HttpMetrics) -> Self {
        metrics.connection_opened();
        Self {
            io,
            _slot: slot,
            _open: OpenConnection(metrics),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// A write's outcome, the deadline moved by its progress.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.expired(cx),
        }
    }

    /// `Pending` until the idle deadline passes, then the error.
    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.expired(cx),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.after_write(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max: usize, per_ip: usize, shared: &[&str]) -> Arc<Slots> {
        let limits = ServeLimits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            shared_peers: shared.iter().map(|n| n.parse().unwrap()).collect(),
            ..ServeLimits::relaxed()
        };
        Arc::new(Slots::new(&limits))
    }

    #[test]
    fn one_address_gets_its_share_and_its_places_come_back() {
        let slots = slots(10, 2, &[]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.admit(a).unwrap();
        let _second = slots.admit(a).unwrap();
        assert_eq!(slots.admit(a).err(), Some(ConnectionRefusal::AddressFull));
        let _other = slots.admit(b).unwrap();
        drop(first);
        assert!(
            slots.admit(a).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_node_cap_holds_for_everyone_and_proxies_share_only_it() {
        let slots = slots(3, 1, &["10.0.0.0/8"]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| slots.admit(proxy).unwrap()).collect();
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(
            slots.admit(stranger).err(),
            Some(ConnectionRefusal::NodeFull)
        );
        drop(held);
        assert!(slots.admit(stranger).is_ok());
        assert!(
            slots.open().per_ip.len() <= 1,
            "no entry kept for the proxy"
        );
    }

    #[test]
    fn emptied_addresses_leave_no_entry() {
        let slots = slots(10, 5, &[]);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        drop(slots.admit(a).unwrap());
        assert!(slots.open().per_ip.is_empty());
        assert_eq!(slots.open().total, 0);
    }
}
