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

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::control::{CallControl, ControlInput, ControlOutput};
use super::report::Ending;
use super::requests::{CallCommand, CallView, HangupRequest};
use super::shard::MediaLink;
use super::state::CallState;
use super::{LegEvent, TrunkLeg};
use crate::domain::Disposition;
use crate::recording::gate::{ConsentGate, GateAction};
use crate::recording::recorder::RecorderHandle;
use crate::sip::{CallEnd, EndCause, TrunkReason};
use crate::store::CdrRecord;

/// The parts of a call, assembled by the signalling handler.
pub struct CallParts {
    /// The call's media, already on its shard.
    pub media: MediaLink,
    /// The call's record as placing it began it, which the call's end
    /// completes.
    pub ending: Ending,
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
    ending: Ending,
    leg: TrunkLeg,
    view: watch::Sender<CallView>,
    progress: mpsc::UnboundedSender<CallState>,
    control: CallControl,
    recorder: Option<RecorderHandle>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs the call to its end and returns its record.
pub async fn run(parts: CallParts) -> CdrRecord {
    let CallParts {
        media,
        ending,
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
        ending,
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

    async fn finish(mut self) -> CdrRecord {
        // Goodbyes to both legs, and the call leaves its shard.
        let media = match self.control.media_alive() {
            true => self.media.close().await,
            false => None,
        };
        let recorded = match self.recorder.take() {
            Some(recorder) => recorder.finish().await,
            None => false,
        };
        let mut ending = self.ending;
        match self.control.outcome() {
            Some(outcome) => ending.outcome(outcome),
            None => ending.node_failure(now()),
        }
        if let Some(media) = media {
            ending.media(media);
        }
        ending.record.recorded = recorded;
        ending.record
    }
}
