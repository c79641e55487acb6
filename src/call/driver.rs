//! The per-call driver task: hosts the call's [`CallMedia`] on the browser
//! port's inbox and the trunk leg's sockets, and runs the call's control —
//! the trunk leg's signalling, the [`CallMachine`] that decides the call's
//! life, the consent gate, and the commands from the widget.
//!
//! The task owns everything of its call, so the packet path takes no lock
//! shared with other calls: a browser datagram arrives from the port's
//! bounded inbox and a trunk datagram from the leg's own socket, and
//! [`CallMedia`] relays it to the other side's socket without waiting.
//!
//! The browser is gone when nothing authenticated arrived for
//! `disconnect_timeout`; the call is then hung up towards the trunk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::media::{CallMedia, CallMediaEvent, CallMediaParts, Transmitter};
use super::state::{CallMachine, CallState, LocalHangup, Outcome};
use super::{LegEvent, TrunkLeg};
use crate::media::endpoint::{self, EndpointConfig, EndpointCore, SendSockets, Transmit};
use crate::media::ports::{AllocatedPorts, PortLease};
use crate::media::sdp::Codec;
use crate::recording::gate::{Consent, ConsentGate, GateAction};
use crate::recording::recorder::RecorderHandle;
use crate::sip::{CallEnd, Disposition, EndedBy as TrunkEndedBy};
use crate::webrtc::{AudioCodec, BrowserSession, Datagram, Registration};

/// What the signalling side asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    Hangup,
    /// Keypad digits, already checked to be 0-9 * # A-D.
    Dtmf(String),
    /// The visitor granted (`Granted`) or revoked (`Declined`) consent to
    /// recording.
    Consent(Consent),
    Shutdown,
}

/// What the widget sees, published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub state: CallState,
    pub reason: Option<&'static str>,
    pub recording: bool,
}

impl Default for CallView {
    fn default() -> Self {
        Self {
            state: CallState::Setup,
            reason: None,
            recording: false,
        }
    }
}

/// Per-leg quality figures for the CDR.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
}

/// Everything the call leaves behind.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub outcome: Outcome,
    pub browser_codec: &'static str,
    pub trunk_codec: Option<&'static str>,
    pub browser: LegStats,
    pub trunk: LegStats,
    /// A recording of the call was kept.
    pub recorded: bool,
}

/// Hooks for the node's metrics, called on the packet path (atomics only).
pub trait RelayObserver: Send + Sync {
    fn relayed_to_trunk(&self, latency: Duration);
    fn relayed_to_browser(&self, latency: Duration);
    fn browser_connect_failed(&self, ice: bool);
}

/// The parts of a call, assembled by the signalling handler.
pub struct CallParts {
    pub session: BrowserSession,
    pub registration: Registration,
    pub inbox: mpsc::Receiver<Datagram>,
    pub leg: TrunkLeg,
    /// The trunk leg's media sockets, as the leg's offer announced them.
    pub trunk_ports: AllocatedPorts,
    pub commands: mpsc::Receiver<CallCommand>,
    pub view: watch::Sender<CallView>,
    pub disconnect_timeout: Duration,
    pub observer: Arc<dyn RelayObserver>,
    pub gate: ConsentGate,
    /// Present when the number records at all.
    pub recorder: Option<RecorderHandle>,
}

/// The trunk leg's sockets: tokio's to read, plain duplicates to send
/// without waiting, and the lease that returns the ports, dropped last.
struct TrunkSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    send: SendSockets,
    _lease: PortLease,
}

impl TrunkSockets {
    fn new(ports: AllocatedPorts) -> std::io::Result<Self> {
        let send = SendSockets {
            rtp: ports.rtp.try_clone()?,
            rtcp: ports.rtcp.try_clone()?,
        };
        Ok(Self {
            rtp: UdpSocket::from_std(ports.rtp)?,
            rtcp: UdpSocket::from_std(ports.rtcp)?,
            send,
            _lease: ports.lease,
        })
    }
}

/// Puts the call's datagrams on the browser port and the trunk sockets.
struct Sockets<'a> {
    registration: &'a Registration,
    trunk: &'a SendSockets,
}

impl Transmitter for Sockets<'_> {
    fn to_browser(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.registration.send(to, bytes);
    }

    fn to_trunk(&mut self, tx: &Transmit<'_>) -> bool {
        endpoint::transmit(self.trunk, tx)
    }
}

struct Driver {
    media: CallMedia,
    registration: Registration,
    leg: TrunkLeg,
    view: watch::Sender<CallView>,
    machine: CallMachine,
    gate: ConsentGate,
    recorder: Option<RecorderHandle>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What woke the driver.
enum Input {
    Browser(Option<Datagram>),
    TrunkRtp(std::io::Result<(usize, SocketAddr)>),
    TrunkRtcp(std::io::Result<(usize, SocketAddr)>),
    Leg(Option<LegEvent>),
    Command(Option<CallCommand>),
    Timer,
}

/// Runs the call to its end and returns its report.
pub async fn run(parts: CallParts) -> CallReport {
    let CallParts {
        session,
        registration,
        mut inbox,
        leg,
        trunk_ports,
        mut commands,
        view,
        disconnect_timeout,
        observer,
        gate,
        recorder,
    } = parts;
    let start = now();
    let trunk = EndpointCore::new(&EndpointConfig::default(), start);
    let sockets = TrunkSockets::new(trunk_ports);
    let (trunk, sockets) = match (trunk, sockets) {
        (Ok(trunk), Ok(sockets)) => (trunk, sockets),
        // Neither fails on a working host; the call cannot carry media.
        _ => {
            leg.hangup();
            return failed_report(session.media().codec);
        }
    };
    let media = CallMedia::new(
        CallMediaParts {
            session,
            trunk,
            disconnect_timeout,
            observer,
            tap: recorder.as_ref().map(RecorderHandle::tap),
        },
        start,
    );
    let mut driver = Driver {
        media,
        registration,
        leg,
        view,
        machine: CallMachine::new(),
        gate,
        recorder,
    };
    let mut rtp_buf = vec![0u8; TRUNK_RECV_BUFFER];
    let mut rtcp_buf = vec![0u8; TRUNK_RECV_BUFFER];
    // One timer for the call's life, moved only when the media's deadline
    // moves: most packets leave it where it is.
    let timer = tokio::time::sleep_until(driver.media.poll_timeout().into());
    tokio::pin!(timer);
    loop {
        let deadline = tokio::time::Instant::from_std(driver.media.poll_timeout());
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        let input = tokio::select! {
            datagram = inbox.recv() => Input::Browser(datagram),
            received = sockets.rtp.recv_from(&mut rtp_buf) => Input::TrunkRtp(received),
            received = sockets.rtcp.recv_from(&mut rtcp_buf) => Input::TrunkRtcp(received),
            event = driver.leg.next_event() => Input::Leg(event),
            command = commands.recv() => Input::Command(command),
            () = &mut timer => Input::Timer,
        };
        let mut out = Sockets {
            registration: &driver.registration,
            trunk: &sockets.send,
        };
        let ended = match input {
            Input::Browser(Some(datagram)) => {
                driver.media.handle_browser(
                    datagram.received_at,
                    datagram.from,
                    datagram.bytes,
                    &mut out,
                );
                false
            }
            Input::Browser(None) => {
                driver.hang_up(LocalHangup::Shutdown);
                false
            }
            Input::TrunkRtp(received) => {
                on_trunk_datagram(&mut driver.media, &rtp_buf, received, false, &mut out);
                false
            }
            Input::TrunkRtcp(received) => {
                on_trunk_datagram(&mut driver.media, &rtcp_buf, received, true, &mut out);
                false
            }
            Input::Leg(event) => driver.on_leg_event(event.unwrap_or_else(lost_leg)),
            Input::Command(command) => {
                driver.on_command(command.unwrap_or(CallCommand::Shutdown));
                false
            }
            Input::Timer => {
                driver.media.handle_timeout(now(), &mut out);
                false
            }
        };
        driver.on_media_events();
        if ended {
            let mut out = Sockets {
                registration: &driver.registration,
                trunk: &sockets.send,
            };
            driver.media.close(now(), &mut out);
            break;
        }
    }
    // The sockets close before the lease returns their ports.
    drop(sockets);
    driver.finish().await
}

/// Larger than any datagram a trunk sends; a datagram that fills it may
/// have been truncated by the kernel and is dropped.
const TRUNK_RECV_BUFFER: usize = 2048;

fn on_trunk_datagram(
    media: &mut CallMedia,
    buf: &[u8],
    received: std::io::Result<(usize, SocketAddr)>,
    rtcp_port: bool,
    out: &mut Sockets<'_>,
) {
    // An error is transient (an ICMP report on the socket): the next read
    // is as good as ever.
    let Ok((len, from)) = received else {
        return;
    };
    if let Some(data) = buf.get(..len).filter(|_| len < buf.len()) {
        media.handle_trunk(now(), from, data, rtcp_port, out);
    }
}

/// The leg's event stream closed without an end: count it as a failure.
fn lost_leg() -> LegEvent {
    LegEvent::Ended(CallEnd {
        disposition: Disposition::Failed,
        sip_code: None,
        ended_by: TrunkEndedBy::Local,
        trunk: None,
    })
}

/// How a call ends that the node could not carry on.
fn node_failure() -> Outcome {
    Outcome {
        disposition: Disposition::Failed,
        sip_code: None,
        ended_by: super::state::EndedBy::Node,
        trunk: None,
        answered_at: None,
        ended_at: now(),
    }
}

fn failed_report(codec: AudioCodec) -> CallReport {
    CallReport {
        outcome: node_failure(),
        browser_codec: codec.name(),
        trunk_codec: None,
        browser: LegStats::default(),
        trunk: LegStats::default(),
        recorded: false,
    }
}

impl Driver {
    /// Hands the media's events to the port and the call's state.
    fn on_media_events(&mut self) {
        while let Some(event) = self.media.poll_event() {
            match event {
                CallMediaEvent::PeerAddress(address) => self.registration.learn(address),
                CallMediaEvent::PeerAddressDropped(address) => self.registration.forget(address),
                CallMediaEvent::BrowserFailed { .. } => self.hang_up(LocalHangup::BrowserFailed),
                CallMediaEvent::BrowserGone => self.hang_up(LocalHangup::BrowserGone),
            }
        }
    }

    /// Returns true when the call is over.
    fn on_leg_event(&mut self, event: LegEvent) -> bool {
        match &event {
            LegEvent::Media(remote) => {
                if let Err(error) = self.media.apply_trunk_remote(now(), remote) {
                    // The leg has validated it; only a broken key gets here.
                    warn!(%error, "the trunk's media description cannot be applied");
                }
                return false;
            }
            LegEvent::Answered { codec } => self.media.handle_trunk_answer(match codec {
                Codec::Pcmu => AudioCodec::Pcmu,
                Codec::Pcma => AudioCodec::Pcma,
            }),
            LegEvent::MediaUpdated => self.media.handle_trunk_source_change(),
            _ => {}
        }
        if let Some(update) = self.machine.handle_leg_event(now(), &event) {
            self.view.send_modify(|view| {
                view.state = update.state;
                view.reason = update.reason;
            });
        }
        let gate_action = match (self.machine.state(), &event) {
            (CallState::Ended, _) => self.gate.handle_ended(),
            (_, LegEvent::Hold(on_hold)) => self.gate.handle_hold(*on_hold),
            (CallState::Answered, _) => self.gate.handle_answered(),
            _ => None,
        };
        self.apply_gate(gate_action);
        self.machine.state() == CallState::Ended
    }

    /// Tells the recorder, the media and the widget what the consent gate
    /// decided.
    fn apply_gate(&mut self, action: Option<GateAction>) {
        let Some(action) = action else {
            return;
        };
        if let Some(recorder) = &self.recorder {
            match action {
                GateAction::Open { method } => recorder.open(method, Instant::now()),
                GateAction::Close => recorder.close(),
                GateAction::CloseAndDiscard => recorder.discard(),
            }
        }
        self.media.set_recording(self.gate.is_open());
        let active = self.recorder.is_some() && self.gate.is_open();
        self.view.send_modify(|view| view.recording = active);
    }

    fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::Hangup => self.hang_up(LocalHangup::Visitor),
            CallCommand::Shutdown => self.hang_up(LocalHangup::Shutdown),
            CallCommand::Dtmf(digits) => {
                if self.machine.state() == CallState::Answered {
                    let _ = self.media.send_dtmf(now(), &digits);
                }
            }
            CallCommand::Consent(choice) => {
                let action = self.gate.handle_consent(choice);
                self.apply_gate(action);
            }
        }
    }

    fn hang_up(&mut self, cause: LocalHangup) {
        if self.machine.handle_local_hangup(cause) {
            self.leg.hangup();
        }
    }

    async fn finish(mut self) -> CallReport {
        let media = self.media.report();
        let recorded = match self.recorder.take() {
            Some(recorder) => recorder.finish().await,
            None => false,
        };
        let outcome = self.machine.outcome().cloned().unwrap_or_else(node_failure);
        CallReport {
            outcome,
            browser_codec: media.browser_codec,
            trunk_codec: media.trunk_codec,
            browser: media.browser,
            trunk: media.trunk,
            recorded,
        }
    }
}

/// No metrics: for tools and tests that host a call's media on their own.
impl RelayObserver for () {
    fn relayed_to_trunk(&self, _latency: Duration) {}
    fn relayed_to_browser(&self, _latency: Duration) {}
    fn browser_connect_failed(&self, _ice: bool) {}
}

impl RelayObserver for crate::metrics::Metrics {
    fn relayed_to_trunk(&self, latency: Duration) {
        self.relay.browser_in.inc();
        self.relay.trunk_out.inc();
        self.relay.latency_to_trunk.observe(latency.as_secs_f64());
    }

    fn relayed_to_browser(&self, latency: Duration) {
        self.relay.trunk_in.inc();
        self.relay.browser_out.inc();
        self.relay.latency_to_browser.observe(latency.as_secs_f64());
    }

    fn browser_connect_failed(&self, ice: bool) {
        match ice {
            true => self.ice_failures.inc(),
            false => self.dtls_failures.inc(),
        }
    }
}
