//! The per-call control task: the trunk leg's signalling, the
//! [`CallMachine`] that decides the call's life, the consent gate and the
//! commands from the widget. The call's media runs in its shard
//! ([`super::shard`]); the task tells it what the control decided through
//! its [`MediaLink`] and hears back when the browser failed or went away.
//!
//! The browser is gone when nothing authenticated arrived for
//! `disconnect_timeout`; the call is then hung up towards the trunk.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::media::MediaReport;
use super::shard::{MediaCommand, MediaLink, ShardEvent};
use super::state::{CallMachine, CallState, LocalHangup, Outcome};
use super::{LegEvent, TrunkLeg};
use crate::media::sdp::Codec;
use crate::recording::gate::{Consent, ConsentGate, GateAction};
use crate::recording::recorder::RecorderHandle;
use crate::sip::{CallEnd, Disposition, EndedBy as TrunkEndedBy};
use crate::webrtc::AudioCodec;

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
    /// A browser packet left for the trunk, `latency` after it arrived.
    fn relayed_to_trunk(&self, latency: Duration);
    /// A trunk packet left for the browser, `latency` after it arrived;
    /// reported by the media's host, which knows when it left.
    fn relayed_to_browser(&self, latency: Duration);
    fn browser_connect_failed(&self, ice: bool);
    /// A datagram routed to a call that its session refused: SRTP or
    /// SRTCP that did not authenticate or was replayed (`srtp`), or a
    /// check or DTLS record that did not verify.
    fn browser_rejected(&self, srtp: bool);
}

/// The parts of a call, assembled by the signalling handler.
pub struct CallParts {
    /// The call's media, already on its shard.
    pub media: MediaLink,
    /// The browser leg's codec, for the report of a call whose shard is gone.
    pub browser_codec: AudioCodec,
    pub leg: TrunkLeg,
    pub commands: mpsc::Receiver<CallCommand>,
    pub view: watch::Sender<CallView>,
    pub gate: ConsentGate,
    /// Present when the number records at all.
    pub recorder: Option<RecorderHandle>,
}

struct Driver {
    media: MediaLink,
    /// False once the shard let the call go (the node is stopping).
    media_alive: bool,
    browser_codec: AudioCodec,
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
    Leg(Option<LegEvent>),
    Command(Option<CallCommand>),
    Media(Option<ShardEvent>),
}

/// Runs the call to its end and returns its report.
pub async fn run(parts: CallParts) -> CallReport {
    let CallParts {
        media,
        browser_codec,
        leg,
        mut commands,
        view,
        gate,
        recorder,
    } = parts;
    let mut driver = Driver {
        media,
        media_alive: true,
        browser_codec,
        leg,
        view,
        machine: CallMachine::new(),
        gate,
        recorder,
    };
    loop {
        let input = tokio::select! {
            event = driver.leg.next_event() => Input::Leg(event),
            command = commands.recv() => Input::Command(command),
            event = driver.media.next_event(), if driver.media_alive => Input::Media(event),
        };
        match input {
            Input::Leg(event) => {
                if driver.on_leg_event(event.unwrap_or_else(lost_leg)).await {
                    break;
                }
            }
            Input::Command(command) => {
                driver
                    .on_command(command.unwrap_or(CallCommand::Shutdown))
                    .await;
            }
            Input::Media(event) => driver.on_media_event(event),
        }
    }
    driver.finish().await
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

impl Driver {
    /// Tells the call's media; a shard that is gone has nothing to tell.
    async fn tell_media(&mut self, command: MediaCommand) {
        if self.media_alive && !self.media.send(command).await {
            self.media_alive = false;
        }
    }

    fn on_media_event(&mut self, event: Option<ShardEvent>) {
        match event {
            Some(ShardEvent::BrowserFailed { .. }) => self.hang_up(LocalHangup::BrowserFailed),
            Some(ShardEvent::BrowserGone) => self.hang_up(LocalHangup::BrowserGone),
            Some(ShardEvent::Refused) | None => {
                self.media_alive = false;
                self.hang_up(LocalHangup::Shutdown);
            }
        }
    }

    /// Returns true when the call is over.
    async fn on_leg_event(&mut self, event: LegEvent) -> bool {
        match event {
            LegEvent::Media(remote) => {
                self.tell_media(MediaCommand::TrunkRemote(remote)).await;
                return false;
            }
            LegEvent::Answered { codec } => {
                let codec = match codec {
                    Codec::Pcmu => AudioCodec::Pcmu,
                    Codec::Pcma => AudioCodec::Pcma,
                };
                self.tell_media(MediaCommand::TrunkAnswered(codec)).await;
            }
            LegEvent::MediaUpdated => self.tell_media(MediaCommand::TrunkSourceChanged).await,
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
        self.apply_gate(gate_action).await;
        self.machine.state() == CallState::Ended
    }

    /// Tells the recorder, the media and the widget what the consent gate
    /// decided.
    async fn apply_gate(&mut self, action: Option<GateAction>) {
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
        let open = self.gate.is_open();
        self.tell_media(MediaCommand::Recording(open)).await;
        let active = self.recorder.is_some() && open;
        self.view.send_modify(|view| view.recording = active);
    }

    async fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::Hangup => self.hang_up(LocalHangup::Visitor),
            CallCommand::Shutdown => self.hang_up(LocalHangup::Shutdown),
            CallCommand::Dtmf(digits) => {
                if self.machine.state() == CallState::Answered {
                    self.tell_media(MediaCommand::Dtmf(digits)).await;
                }
            }
            CallCommand::Consent(choice) => {
                let action = self.gate.handle_consent(choice);
                self.apply_gate(action).await;
            }
        }
    }

    fn hang_up(&mut self, cause: LocalHangup) {
        if self.machine.handle_local_hangup(cause) {
            self.leg.hangup();
        }
    }

    async fn finish(mut self) -> CallReport {
        // Goodbyes to both legs, and the call leaves its shard.
        let media = match self.media_alive {
            true => self.media.close().await,
            false => None,
        };
        let media = media.unwrap_or_else(|| MediaReport {
            browser_codec: self.browser_codec.name(),
            trunk_codec: None,
            browser: LegStats::default(),
            trunk: LegStats::default(),
        });
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
    fn browser_rejected(&self, _srtp: bool) {}
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

    fn browser_rejected(&self, srtp: bool) {
        let reason = match srtp {
            true => crate::metrics::BrowserDrop::Srtp,
            false => crate::metrics::BrowserDrop::Other,
        };
        self.drops.browser(reason).inc();
    }
}
