//! [`CallControl`]: everything one call decides, with no I/O.
//!
//! The trunk leg's events, the widget's commands and what the call's media
//! reports go in through [`CallControl::handle_input`]; what must happen
//! comes out of [`CallControl::poll_output`], in order: commands for the
//! media in its shard, actions for the recorder, a hang-up for the trunk
//! and the widget's new view. Inside are the call's state machine
//! ([`CallMachine`]) and the consent gate ([`ConsentGate`]).
//!
//! One input yields all of its outputs at once, before the next input is
//! read. So a `Hold` from the trunk closes the gate towards the recorder
//! and the media in the same step that puts the call on hold: there is no
//! await between them for a `select!` to abandon. The driver
//! ([`super::driver`]) only waits for inputs and carries the outputs out.
//!
//! Invariants:
//! - Nothing is sent to the media once it is lost; losing it hangs up.
//! - The recorder and the media hear of every gate change, the recorder
//!   first, and the media's gate always equals [`ConsentGate::is_open`].
//! - DTMF reaches the trunk only while the call is answered.

use std::collections::VecDeque;
use std::time::Instant;

use super::LegEvent;
use super::requests::{CallCommand, CallView};
use super::shard::{MediaCommand, ShardEvent};
use super::state::{CallMachine, CallState, LocalHangup, Outcome};
use crate::media::quality::Warnings;
use crate::recording::gate::{ConsentGate, GateAction};

/// What the call's control is told.
#[derive(Debug)]
pub enum ControlInput {
    Leg(LegEvent),
    Command(CallCommand),
    Media(ShardEvent),
    /// The call's shard let it go or can no longer be reached.
    MediaLost,
}

/// What the call's control asks its driver to do.
#[derive(Debug)]
pub enum ControlOutput {
    /// Tell the call's media in its shard.
    Media(MediaCommand),
    /// Tell the recorder what the consent gate decided.
    Recorder(GateAction),
    /// Hang up the trunk: CANCEL before the answer, BYE after.
    HangUpTrunk,
    /// Show the widget this.
    View(CallView),
}

/// See the module documentation.
#[derive(Debug)]
pub struct CallControl {
    machine: CallMachine,
    gate: ConsentGate,
    /// The number records at all: a recorder is there to tell.
    records: bool,
    media_alive: bool,
    view: CallView,
    outputs: VecDeque<ControlOutput>,
}

impl CallControl {
    /// A call in setup, with its consent gate; `records` when the number
    /// has a recorder for it.
    pub fn new(gate: ConsentGate, records: bool) -> Self {
        Self {
            machine: CallMachine::new(),
            gate,
            records,
            media_alive: true,
            view: CallView::default(),
            outputs: VecDeque::new(),
        }
    }

    /// Whether the call's media is still there to hear from.
    pub fn media_alive(&self) -> bool {
        self.media_alive
    }

    /// The trunk leg has ended: the call is over.
    pub fn is_ended(&self) -> bool {
        self.machine.state() == CallState::Ended
    }

    /// Set once the call has ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.machine.outcome()
    }

    pub fn handle_input(&mut self, now: Instant, input: ControlInput) {
        match input {
            ControlInput::Leg(event) => self.on_leg_event(now, event),
            ControlInput::Command(command) => self.on_command(command),
            ControlInput::Media(ShardEvent::BrowserFailed { .. }) => {
                self.hang_up(LocalHangup::BrowserFailed)
            }
            ControlInput::Media(ShardEvent::BrowserGone) => self.hang_up(LocalHangup::BrowserGone),
            ControlInput::Media(ShardEvent::Quality(warnings)) => self.on_quality(warnings),
            ControlInput::Media(ShardEvent::Refused) | ControlInput::MediaLost => {
                self.media_alive = false;
                self.hang_up(LocalHangup::Fault);
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<ControlOutput> {
        self.outputs.pop_front()
    }

    fn on_leg_event(&mut self, now: Instant, event: LegEvent) {
        if let LegEvent::Media(remote) = event {
            self.tell_media(MediaCommand::TrunkRemote(remote));
            return;
        }
        match &event {
            LegEvent::Answered { codec } => self.tell_media(MediaCommand::TrunkAnswered(*codec)),
            LegEvent::MediaUpdated => self.tell_media(MediaCommand::TrunkSourceChanged),
            LegEvent::Dtmf(digit) => self.tell_media(MediaCommand::DtmfToBrowser(*digit)),
            _ => {}
        }
        if let Some(update) = self.machine.handle_leg_event(now, &event) {
            self.view.state = update.state;
            self.view.reason = update.reason;
            self.outputs
                .push_back(ControlOutput::View(self.view.clone()));
        }
        let gate_action = match (self.machine.state(), &event) {
            (CallState::Ended, _) => self.gate.handle_ended(),
            (_, LegEvent::Hold(on_hold)) => self.gate.handle_hold(*on_hold),
            (CallState::Answered, _) => self.gate.handle_answered(),
            _ => None,
        };
        self.apply_gate(gate_action);
    }

    fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::Hangup => self.hang_up(LocalHangup::Visitor),
            CallCommand::Shutdown => self.hang_up(LocalHangup::Shutdown),
            CallCommand::Dtmf(digits) => {
                if self.machine.state() == CallState::Answered {
                    self.tell_media(MediaCommand::Dtmf(digits));
                }
            }
            CallCommand::Consent(choice) => {
                let action = self.gate.handle_consent(choice);
                self.apply_gate(action);
            }
        }
    }

    /// Tells the recorder, the media and the widget what the gate decided.
    fn apply_gate(&mut self, action: Option<GateAction>) {
        let Some(action) = action else {
            return;
        };
        if self.records {
            self.outputs.push_back(ControlOutput::Recorder(action));
        }
        let open = self.gate.is_open();
        self.tell_media(MediaCommand::Recording(open));
        let recording = self.records && open;
        if self.view.recording != recording {
            self.view.recording = recording;
            self.outputs
                .push_back(ControlOutput::View(self.view.clone()));
        }
    }

    /// The widget shows a poor connection while a warning is active; an
    /// ended call has nothing left to warn about.
    fn on_quality(&mut self, warnings: Warnings) {
        if self.machine.state() != CallState::Ended && self.view.quality != warnings {
            self.view.quality = warnings;
            self.outputs
                .push_back(ControlOutput::View(self.view.clone()));
        }
    }

    fn tell_media(&mut self, command: MediaCommand) {
        if self.media_alive {
            self.outputs.push_back(ControlOutput::Media(command));
        }
    }

    fn hang_up(&mut self, cause: LocalHangup) {
        if self.machine.handle_local_hangup(cause) {
            self.outputs.push_back(ControlOutput::HangUpTrunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Disposition;
    use crate::domain::{Codec, Consent, OnRevoke, RecordingPolicy};
    use crate::recording::gate::ConsentMethod;
    use crate::sip::{CallEnd, EndCause, TrunkReason};

    fn recorded_call(policy: RecordingPolicy, consent: Option<Consent>) -> CallControl {
        CallControl::new(ConsentGate::new(policy, OnRevoke::Discard, consent), true)
    }

    fn outputs(control: &mut CallControl) -> Vec<ControlOutput> {
        std::iter::from_fn(|| control.poll_output()).collect()
    }

    /// The media's gate commands among `outputs`, in order.
    fn media_gate(outputs: &[ControlOutput]) -> Vec<bool> {
        outputs
            .iter()
            .filter_map(|output| match output {
                ControlOutput::Media(MediaCommand::Recording(open)) => Some(*open),
                _ => None,
            })
            .collect()
    }

    fn recorder(outputs: &[ControlOutput]) -> Vec<GateAction> {
        outputs
            .iter()
            .filter_map(|output| match output {
                ControlOutput::Recorder(action) => Some(*action),
                _ => None,
            })
            .collect()
    }

    fn answer(control: &mut CallControl, now: Instant) -> Vec<ControlOutput> {
        control.handle_input(now, ControlInput::Leg(LegEvent::Ringing));
        control.handle_input(
            now,
            ControlInput::Leg(LegEvent::Answered { codec: Codec::Pcma }),
        );
        outputs(control)
    }

    fn trunk_end(ended_by: EndCause) -> ControlInput {
        ControlInput::Leg(LegEvent::Ended(CallEnd {
            disposition: Disposition::Answered,
            sip_code: Some(200),
            ended_by,
            trunk: None,
            reason: TrunkReason::default(),
        }))
    }

    #[test]
    fn an_answer_with_consent_opens_the_gate_for_the_recorder_then_the_media() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::OptIn, Some(Consent::Granted));
        let out = answer(&mut call, now);
        assert!(matches!(
            out[..],
            [
                ControlOutput::View(CallView {
                    state: CallState::Ringing,
                    ..
                }),
                ControlOutput::Media(MediaCommand::TrunkAnswered(Codec::Pcma)),
                ControlOutput::View(CallView {
                    state: CallState::Answered,
                    recording: false,
                    ..
                }),
                ControlOutput::Recorder(GateAction::Open {
                    method: ConsentMethod::Api
                }),
                ControlOutput::Media(MediaCommand::Recording(true)),
                ControlOutput::View(CallView {
                    recording: true,
                    ..
                }),
            ]
        ));
    }

    #[test]
    fn a_hold_closes_the_gate_in_the_step_that_brings_it_and_unhold_reopens_it() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::Notice, None);
        answer(&mut call, now);
        call.handle_input(now, ControlInput::Leg(LegEvent::Hold(true)));
        let held = outputs(&mut call);
        assert_eq!(recorder(&held), [GateAction::Close]);
        assert_eq!(media_gate(&held), [false]);
        call.handle_input(now, ControlInput::Leg(LegEvent::Hold(false)));
        let resumed = outputs(&mut call);
        assert_eq!(
            recorder(&resumed),
            [GateAction::Open {
                method: ConsentMethod::Notice
            }]
        );
        assert_eq!(media_gate(&resumed), [true]);
    }

    #[test]
    fn nothing_opens_the_gate_while_on_hold_or_before_the_answer() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::OptIn, None);
        let granted = ControlInput::Command(CallCommand::Consent(Consent::Granted));
        call.handle_input(now, granted);
        assert!(outputs(&mut call).is_empty(), "not answered yet");
        let answered = answer(&mut call, now);
        assert_eq!(
            media_gate(&answered),
            [true],
            "the grant counts from the answer"
        );
        call.handle_input(now, ControlInput::Leg(LegEvent::Hold(true)));
        assert_eq!(media_gate(&outputs(&mut call)), [false]);
        let granted = ControlInput::Command(CallCommand::Consent(Consent::Granted));
        call.handle_input(now, granted);
        let out = outputs(&mut call);
        assert!(recorder(&out).is_empty() && media_gate(&out).is_empty());
    }

    #[test]
    fn a_revocation_discards_and_the_end_closes() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::OptIn, Some(Consent::Granted));
        answer(&mut call, now);
        let revoked = ControlInput::Command(CallCommand::Consent(Consent::Declined));
        call.handle_input(now, revoked);
        let out = outputs(&mut call);
        assert_eq!(recorder(&out), [GateAction::CloseAndDiscard]);
        assert_eq!(media_gate(&out), [false]);

        let mut ended = recorded_call(RecordingPolicy::OptIn, Some(Consent::Granted));
        answer(&mut ended, now);
        ended.handle_input(now, trunk_end(EndCause::Remote));
        let out = outputs(&mut ended);
        assert_eq!(recorder(&out), [GateAction::Close]);
        assert_eq!(media_gate(&out), [false]);
        assert!(ended.is_ended());
    }

    #[test]
    fn a_number_without_a_recorder_tells_its_media_but_no_recorder() {
        let now = Instant::now();
        let gate = ConsentGate::new(
            RecordingPolicy::OptIn,
            OnRevoke::Keep,
            Some(Consent::Granted),
        );
        let mut call = CallControl::new(gate, false);
        let out = answer(&mut call, now);
        assert!(recorder(&out).is_empty());
        assert_eq!(media_gate(&out), [true]);
        assert!(out.iter().all(|output| !matches!(
            output,
            ControlOutput::View(CallView {
                recording: true,
                ..
            })
        )));
    }

    #[test]
    fn digits_reach_the_trunk_only_while_answered() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::Off, None);
        call.handle_input(now, ControlInput::Command(CallCommand::Dtmf("1".into())));
        assert!(outputs(&mut call).is_empty());
        answer(&mut call, now);
        call.handle_input(now, ControlInput::Command(CallCommand::Dtmf("12#".into())));
        assert!(matches!(
            outputs(&mut call)[..],
            [ControlOutput::Media(MediaCommand::Dtmf(ref digits))] if digits == "12#"
        ));
    }

    #[test]
    fn losing_the_media_hangs_up_once_and_tells_it_nothing_more() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::OptIn, Some(Consent::Granted));
        call.handle_input(now, ControlInput::MediaLost);
        assert!(!call.media_alive());
        assert!(matches!(
            outputs(&mut call)[..],
            [ControlOutput::HangUpTrunk]
        ));
        let out = answer(&mut call, now);
        assert!(
            out.iter()
                .all(|output| !matches!(output, ControlOutput::Media(_))),
            "{out:?}"
        );
        call.handle_input(now, ControlInput::Command(CallCommand::Hangup));
        assert!(outputs(&mut call).is_empty(), "hung up once");
        call.handle_input(now, trunk_end(EndCause::Local));
        let outcome = call.outcome().expect("ended");
        assert_eq!(outcome.ended_by, crate::domain::EndedBy::Node);
        assert_eq!(
            outcome.disposition,
            Disposition::Failed,
            "answered, then lost"
        );
    }

    #[test]
    fn a_browser_that_goes_away_ends_the_call_as_the_visitor() {
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::Off, None);
        answer(&mut call, now);
        call.handle_input(now, ControlInput::Media(ShardEvent::BrowserGone));
        assert!(matches!(
            outputs(&mut call)[..],
            [ControlOutput::HangUpTrunk]
        ));
        assert!(call.media_alive(), "the media stays to say goodbye");
        call.handle_input(now, trunk_end(EndCause::Local));
        let outcome = call.outcome().expect("ended");
        assert_eq!(outcome.ended_by, crate::domain::EndedBy::Visitor);
    }

    #[test]
    fn quality_warnings_reach_the_widgets_view_until_the_call_ends() {
        use crate::media::quality::Warning;
        let now = Instant::now();
        let mut call = recorded_call(RecordingPolicy::Off, None);
        answer(&mut call, now);
        let poor = Warnings::NONE.with(Warning::HighJitter);
        call.handle_input(now, ControlInput::Media(ShardEvent::Quality(poor)));
        assert!(matches!(
            &outputs(&mut call)[..],
            [ControlOutput::View(view)] if view.quality == poor
        ));
        call.handle_input(now, ControlInput::Media(ShardEvent::Quality(poor)));
        assert!(outputs(&mut call).is_empty(), "no change, no view");
        call.handle_input(now, trunk_end(EndCause::Remote));
        outputs(&mut call);
        let clear = ControlInput::Media(ShardEvent::Quality(Warnings::NONE));
        call.handle_input(now, clear);
        assert!(outputs(&mut call).is_empty(), "an ended call warns no more");
    }
}
