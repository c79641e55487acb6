//! What the control and a shard say to each other: the commands a shard
//! takes ([`MediaCommand`], a new call), the events a call's media sends
//! back ([`ShardEvent`]), and the handle the engine holds for each shard.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::call::media::CallMedia;
use crate::call::report::MediaReport;
use crate::domain::Codec;
use crate::media::endpoint::RemoteMedia;
use crate::media::ports::AllocatedPorts;
use crate::media::quality::Warnings;
use crate::webrtc::PortCounters;

/// Commands queued per shard: room for hundreds of calls starting at once.
pub(super) const COMMAND_CAPACITY: usize = 4096;
/// Events queued per call; a call has a handful in its life.
pub(super) const EVENT_CAPACITY: usize = 8;

/// What the control asks of a call's media.
#[derive(Debug)]
pub enum MediaCommand {
    /// The trunk's (re-)negotiated description.
    TrunkRemote(RemoteMedia),
    TrunkAnswered(Codec),
    /// The trunk moved its media to a new source.
    TrunkSourceChanged,
    /// Keypad digits for the trunk, already checked.
    Dtmf(String),
    /// A keypad digit the trunk signalled (SIP INFO), played to the
    /// browser as RFC 4733 events.
    DtmfToBrowser(char),
    /// Whether the consent gate is open.
    Recording(bool),
    /// Say goodbye on both legs, leave the shard and report.
    Close(oneshot::Sender<MediaReport>),
}

/// What a call's media tells its control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardEvent {
    /// ICE or DTLS failed (`ice` tells which).
    BrowserFailed { ice: bool },
    /// Nothing authenticated arrived from the browser for too long.
    BrowserGone,
    /// The shard could not take the call (its fragment was taken).
    Refused,
    /// The visitor's quality warnings changed: these are active now.
    Quality(Warnings),
}

/// A call for a shard to host.
pub struct NewCall {
    pub ufrag: String,
    pub media: CallMedia,
    pub trunk_ports: AllocatedPorts,
}

pub(super) enum Command {
    Start {
        call: u64,
        new: Box<NewCall>,
        events: mpsc::Sender<ShardEvent>,
    },
    Media {
        call: u64,
        command: MediaCommand,
    },
}

/// Where the control reaches one shard.
pub(super) struct ShardHandle {
    pub(super) commands: mpsc::Sender<Command>,
    /// Calls handed to the shard and not yet gone.
    pub(super) waker: Arc<mio::Waker>,
    /// Set when the engine stops; the shard checks it every turn.
    pub(super) stop: Arc<AtomicBool>,
    pub(super) calls: Arc<AtomicUsize>,
    pub(super) counters: Arc<PortCounters>,
    pub(super) local: SocketAddr,
    pub(super) recv_buffer: usize,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl ShardHandle {
    pub(super) fn wake(&self) {
        // Fails only if the shard's poll is gone, when nothing is listening.
        let _ = self.waker.wake();
    }
}
