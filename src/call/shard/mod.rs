//! The media engine: one shard thread per core, each owning the media of
//! its calls outright and running them to completion.
//!
//! A shard owns a browser port of its own (`webrtc.listen`'s port plus the
//! shard's index), every call's [`CallMedia`] and the trunk leg's RTP and
//! RTCP sockets of those calls. Its loop ([`worker`]) waits on all of them
//! in one epoll set, reads what arrived in batches, runs each datagram
//! through its call's media and puts what that makes on the other side's
//! socket, all in the same turn: no task, channel or lock lies between a
//! packet's arrival and its relay.
//!
//! The control plane (signalling, the call's state and consent gate, the
//! recorder) stays on tokio. It talks to a shard through a bounded command
//! queue with a wake-up ([`MediaLink`]); a shard answers each call through
//! a small channel it never waits on. A new call goes to the shard with the
//! fewest calls, and its ICE candidate names that shard's port, so the
//! browser still sees one candidate per call.

mod commands;
mod deadlines;
mod handshakes;
mod transcoding;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use self::commands::{Command, EVENT_CAPACITY, ShardHandle};
pub use self::commands::{MediaCommand, NewCall, ShardEvent};
use super::observer::RelayObserver;
use super::report::MediaReport;
use crate::supervise::CoreFailure;
use crate::webrtc::PortCounters;

/// How the engine is laid out.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// The first shard's browser port; shard `i` listens on its port + `i`
    /// (or any free port when it is 0).
    pub listen: SocketAddr,
    /// Shard threads; 0 for one per core this process may run on.
    pub shards: usize,
    /// Pin shard `i` to the `i`-th of those cores.
    pub pin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("browser port {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot start a media shard: {0}")]
    Start(std::io::Error),
}

/// See the module documentation.
pub struct Engine {
    shards: Vec<ShardHandle>,
    next_call: AtomicU64,
    /// Hears of a shard thread that panicked.
    failure: CoreFailure,
}

/// A shard picked for a new call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId(usize);

impl ShardId {
    /// The shard's place in shard order.
    pub fn index(self) -> usize {
        self.0
    }
}

impl Engine {
    /// Binds every shard's browser port and starts the shard threads,
    /// which report relayed packets' latency to `observer`.
    pub fn start(
        settings: EngineSettings,
        observer: Arc<dyn RelayObserver>,
    ) -> Result<Self, EngineError> {
        let cores = worker::usable_cores();
        let count = match settings.shards {
            0 => cores.len().max(1),
            n => n,
        };
        let mut shards = Vec::with_capacity(count);
        let failure = CoreFailure::default();
        for index in 0..count {
            let mut listen = settings.listen;
            if listen.port() != 0 {
                let port = usize::from(listen.port()) + index;
                let port = u16::try_from(port).map_err(|_| EngineError::Bind {
                    addr: settings.listen,
                    error: std::io::ErrorKind::AddrNotAvailable.into(),
                })?;
                listen.set_port(port);
            }
            let socket =
                crate::webrtc::port::bind_socket(listen).map_err(|error| EngineError::Bind {
                    addr: listen,
                    error,
                })?;
            let core = settings.pin.then(|| cores.get(index).copied()).flatten();
            let shard = worker::spawn(index, socket, core, observer.clone(), failure.clone());
            shards.push(shard.map_err(EngineError::Start)?);
        }
        Ok(Self {
            shards,
            next_call: AtomicU64::new(1),
            failure,
        })
    }

    /// Where a shard thread that stopped on a panic is
    /// reported: the calls of that shard are lost, and the node must stop.
    pub fn failure(&self) -> &CoreFailure {
        &self.failure
    }

    /// The shard with the fewest calls.
    pub fn pick(&self) -> ShardId {
        let least = (0..self.shards.len())
            .min_by_key(|&i| self.shards[i].calls.load(Ordering::Relaxed))
            .unwrap_or(0);
        ShardId(least)
    }

    /// Every shard's browser port, in shard order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|shard| shard.local).collect()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The smallest receive buffer the kernel granted a browser port, in
    /// bytes as Linux reports it (twice what it set aside).
    pub fn recv_buffer_size(&self) -> usize {
        self.shards.iter().map(|s| s.recv_buffer).min().unwrap_or(0)
    }

    /// Each shard's port counters.
    pub fn counters(&self) -> Vec<Arc<PortCounters>> {
        self.shards.iter().map(|s| s.counters.clone()).collect()
    }

    /// Hands `new` to `shard`; `None` when the shard's queue is full.
    pub fn start_call(&self, shard: ShardId, new: NewCall) -> Option<MediaLink> {
        let handle = &self.shards[shard.0];
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        let command = Command::Start {
            call,
            new: Box::new(new),
            events: events_tx,
        };
        handle.commands.try_send(command).ok()?;
        // Counted here, not when the shard takes the call, so a burst of
        // calls spreads over the shards; the shard counts the call off.
        handle.calls.fetch_add(1, Ordering::Relaxed);
        handle.wake();
        Some(MediaLink {
            call,
            commands: handle.commands.clone(),
            waker: handle.waker.clone(),
            events,
            closed: false,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            shard.stop.store(true, Ordering::Relaxed);
            shard.wake();
        }
        for shard in &mut self.shards {
            if let Some(thread) = shard.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The control's handle on one call's media in its shard. Dropped without
/// [`MediaLink::close`] (its control panicked), it still takes the call
/// off the shard.
pub struct MediaLink {
    call: u64,
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    events: mpsc::Receiver<ShardEvent>,
    closed: bool,
}

impl MediaLink {
    /// Queues `command` for the call's media, waiting for room in the
    /// shard's queue; false if the shard is gone.
    pub async fn send(&self, command: MediaCommand) -> bool {
        let command = Command::Media {
            call: self.call,
            command,
        };
        let sent = self.commands.send(command).await.is_ok();
        let _ = self.waker.wake();
        sent
    }

    /// The media's next event; `None` once the shard has let the call go.
    pub async fn next_event(&mut self) -> Option<ShardEvent> {
        self.events.recv().await
    }

    /// Says goodbye on both legs and takes the call off its shard; `None`
    /// if the shard is gone.
    pub async fn close(mut self) -> Option<MediaReport> {
        let (report_tx, report) = oneshot::channel();
        if !self.send(MediaCommand::Close(report_tx)).await {
            return None;
        }
        self.closed = true;
        report.await.ok()
    }
}

impl Drop for MediaLink {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Nobody waits for the report. A shard whose queue is full finds
        // the call's control gone at the call's next deadline instead.
        let (report, _) = oneshot::channel();
        let command = Command::Media {
            call: self.call,
            command: MediaCommand::Close(report),
        };
        if self.commands.try_send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}
