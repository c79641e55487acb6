//! The per-call control task, a thin driver around [`CallControl`].
//!
//! It waits for the next input (the trunk leg's event, the widget's
//! command, or word from the call's media in its shard), hands it to the
//! control, and carries out what the control asks, in order: commands to
//! the media through its [`MediaLink`], the gate's actions to the
//! recorder, a hang-up to the trunk leg, the widget's new view. All the
//! decisions, and their tests, are in [`super::control`].
//!
//! The browser is gone when nothing authenticated arrived for
//! `disconnect_timeout`; the media says so and the call is hung up
//! towards the trunk.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::control::{CallControl, ControlInput, ControlOutput};
use super::media::MediaReport;
use super::shard::MediaLink;
use super::state::{CallState, Outcome};
use super::{LegEvent, TrunkLeg};
use crate::domain::{Codec, Consent};
use crate::media::quality::{Leg, LegWindow, MosSummary, Warnings};
use crate::recording::gate::{ConsentGate, GateAction};
use crate::recording::recorder::RecorderHandle;
use crate::sip::{CallEnd, Disposition, EndCause, TrunkReason};

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

/// A request from outside the call that it end. It travels apart from the
/// command queue, on a watch channel, so a queue filled by a visitor's
/// messages can never lose it; the first request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupRequest {
    /// The visitor hung up (over the events socket, or by DELETE when the
    /// page goes away).
    Visitor,
    /// The node is draining or shutting down.
    Shutdown,
}

impl HangupRequest {
    fn command(self) -> CallCommand {
        match self {
            Self::Visitor => CallCommand::Hangup,
            Self::Shutdown => CallCommand::Shutdown,
        }
    }
}

/// What the widget sees, published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub state: CallState,
    pub reason: Option<&'static str>,
    pub recording: bool,
    /// The quality warnings active now (a poor connection).
    pub quality: Warnings,
}

impl Default for CallView {
    fn default() -> Self {
        Self {
            state: CallState::Setup,
            reason: None,
            recording: false,
            quality: Warnings::NONE,
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
    /// The worst and the average MOS of the leg's quality windows.
    pub mos: MosSummary,
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
    /// A browser packet left for the trunk, `latency` after it arrived;
    /// `transcoded` when its audio went through a transcoder.
    fn relayed_to_trunk(&self, latency: Duration, transcoded: bool);
    /// A trunk packet left for the browser, `latency` after it arrived;
    /// reported by the media's host, which knows when it left.
    fn relayed_to_browser(&self, latency: Duration, transcoded: bool);
    fn browser_connect_failed(&self, ice: bool);
    /// A datagram routed to a call that its session refused: SRTP or
    /// SRTCP that did not authenticate or was replayed (`srtp`), or a
    /// check or DTLS record that did not verify.
    fn browser_rejected(&self, srtp: bool);
    /// A call's media panicked and was taken off its shard.
    fn media_panicked(&self);
    /// One leg's figures over a closed quality window.
    fn quality_window(&self, leg: Leg, window: &LegWindow);
}

/// The parts of a call, assembled by the signalling handler.
pub struct CallParts {
    /// The call's media, already on its shard.
    pub media: MediaLink,
    /// The browser leg's codec, for the report of a call whose shard is gone.
    pub browser_codec: Codec,
    pub leg: TrunkLeg,
    pub commands: mpsc::Receiver<CallCommand>,
    /// Requests to end the call; see [`HangupRequest`].
    pub hangup: watch::Receiver<Option<HangupRequest>>,
    pub view: watch::Sender<CallView>,
    /// Each state the call enters, once and in order (a watch may skip
    /// one): the call's progress webhooks follow it.
    pub progress: mpsc::UnboundedSender<CallState>,
    pub gate: ConsentGate,
    /// Present when the number records at all.
    pub recorder: Option<RecorderHandle>,
}

struct Driver {
    media: MediaLink,
    browser_codec: Codec,
    leg: TrunkLeg,
    view: watch::Sender<CallView>,
    progress: mpsc::UnboundedSender<CallState>,
    control: CallControl,
    recorder: Option<RecorderHandle>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the call to its end and returns its report.
pub async fn run(parts: CallParts) -> CallReport {
    let CallParts {
        media,
        browser_codec,
        leg,
        mut commands,
        mut hangup,
        view,
        progress,
        gate,
        recorder,
    } = parts;
    let mut driver = Driver {
        media,
        browser_codec,
        leg,
        view,
        progress,
        control: CallControl::new(gate, recorder.is_some()),
        recorder,
    };
    let mut commands_open = true;
    let mut hangup_open = true;
    while !driver.control.is_ended() {
        let input = tokio::select! {
            event = driver.leg.next_event() => ControlInput::Leg(event.unwrap_or_else(lost_leg)),
            changed = hangup.changed(), if hangup_open => {
                // One request is all a call takes; a service gone away asks
                // for a shutdown.
                hangup_open = false;
                let request = changed.ok().and(*hangup.borrow_and_update());
                ControlInput::Command(request.unwrap_or(HangupRequest::Shutdown).command())
            }
            command = commands.recv(), if commands_open => {
                commands_open = command.is_some();
                ControlInput::Command(command.unwrap_or(CallCommand::Shutdown))
            }
            event = driver.media.next_event(), if driver.control.media_alive() => {
                event.map_or(ControlInput::MediaLost, ControlInput::Media)
            }
        };
        if let ControlInput::Command(CallCommand::Dtmf(_)) = &input {
            fail::fail_point!("call-control-dtmf");
        }
        driver.control.handle_input(now(), input);
        driver.carry_out().await;
    }
    driver.finish().await
}

/// The leg's event stream closed without an end: count it as a failure.
fn lost_leg() -> LegEvent {
    LegEvent::Ended(CallEnd {
        disposition: Disposition::Failed,
        sip_code: None,
        ended_by: EndCause::Local,
        trunk: None,
        reason: TrunkReason::default(),
    })
}

impl CallReport {
    /// The report of a call whose control panicked: what it knew is lost.
    pub fn failed(browser_codec: Codec) -> Self {
        Self {
            outcome: node_failure(),
            browser_codec: browser_codec.name(),
            trunk_codec: None,
            browser: LegStats::default(),
            trunk: LegStats::default(),
            recorded: false,
        }
    }
}

/// How a call ends that the node could not carry on.
fn node_failure() -> Outcome {
    Outcome {
        disposition: Disposition::Failed,
        sip_code: None,
        reason: TrunkReason::default(),
        ended_by: crate::domain::EndedBy::Node,
        trunk: None,
        answered_at: None,
        ended_at: now(),
    }
}

impl Driver {
    /// Does what the control asked, in its order.
    async fn carry_out(&mut self) {
        while let Some(output) = self.control.poll_output() {
            match output {
                ControlOutput::Media(command) => {
                    if !self.media.send(command).await {
                        self.control.handle_input(now(), ControlInput::MediaLost);
                    }
                }
                ControlOutput::Recorder(action) => {
                    if let Some(recorder) = &self.recorder {
                        match action {
                            GateAction::Open { method } => recorder.open(method, Instant::now()),
                            GateAction::Close => recorder.close(),
                            GateAction::CloseAndDiscard => recorder.discard(),
                        }
                    }
                }
                ControlOutput::HangUpTrunk => self.leg.hangup(),
                ControlOutput::View(view) => {
                    if view.state != self.view.borrow().state {
                        // Only a service gone away stops listening.
                        let _ = self.progress.send(view.state);
                    }
                    self.view.send_replace(view);
                }
            }
        }
    }

    async fn finish(mut self) -> CallReport {
        // Goodbyes to both legs, and the call leaves its shard.
        let media = match self.control.media_alive() {
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
        let outcome = self.control.outcome().cloned().unwrap_or_else(node_failure);
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
    fn relayed_to_trunk(&self, _latency: Duration, _transcoded: bool) {}
    fn relayed_to_browser(&self, _latency: Duration, _transcoded: bool) {}
    fn browser_connect_failed(&self, _ice: bool) {}
    fn browser_rejected(&self, _srtp: bool) {}
    fn media_panicked(&self) {}
    fn quality_window(&self, _leg: Leg, _window: &LegWindow) {}
}

impl RelayObserver for crate::metrics::Metrics {
    fn relayed_to_trunk(&self, latency: Duration, transcoded: bool) {
        self.relay.browser_in.inc();
        self.relay.trunk_out.inc();
        let histogram = match transcoded {
            true => &self.relay.transcoded_to_trunk,
            false => &self.relay.latency_to_trunk,
        };
        histogram.observe(latency.as_secs_f64());
    }

    fn relayed_to_browser(&self, latency: Duration, transcoded: bool) {
        self.relay.trunk_in.inc();
        self.relay.browser_out.inc();
        let histogram = match transcoded {
            true => &self.relay.transcoded_to_browser,
            false => &self.relay.latency_to_browser,
        };
        histogram.observe(latency.as_secs_f64());
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

    fn media_panicked(&self) {
        self.call_panicked(crate::metrics::CallPart::Media);
    }

    fn quality_window(&self, leg: Leg, window: &LegWindow) {
        self.quality.observe(leg, window);
    }
}
