//! [`CallMachine`]: the life of one browser call, as a state machine with
//! no I/O.
//!
//! setup → ringing → answered → ended, driven by the trunk leg's events and
//! by what happens on the browser side (hang-up, vanishing, a failed
//! handshake). Inputs take `now`; outputs are what the widget should see
//! and whether the trunk must be hung up. The call ends only when the trunk
//! leg says it has ended, so the CDR carries the trunk's final SIP outcome
//! even when the visitor hung up first.
//!
//! Invariants:
//! - The state only moves forward; `Ended` is final.
//! - The trunk is told to hang up at most once.
//! - Who hung up is decided by the first cause: the visitor, the callee
//!   (the trunk's BYE or final response), or the node (limits, failures).

use std::time::Instant;

use crate::call::LegEvent;
use crate::domain::Disposition;
use crate::domain::EndedBy;
use crate::sip::{CallEnd, EndCause, TrunkReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Setup,
    Ringing,
    Answered,
    Ended,
}

impl CallState {
    /// The name in the events WebSocket (`setup` is never sent).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Ended => "ended",
        }
    }
}

/// Why we (not the trunk) end a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalHangup {
    /// The widget's hang-up button, the WebSocket or the DELETE request.
    Visitor,
    /// The browser stopped sending (tab closed, network gone).
    BrowserGone,
    /// ICE or DTLS with the browser failed.
    BrowserFailed,
    /// The node is shutting down.
    Shutdown,
    /// The call's media was lost: its shard could not take it, or its
    /// media panicked. The call ends as failed.
    Fault,
}

/// What the widget is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetUpdate {
    pub state: CallState,
    /// On `Ended`: `completed` for an answered call, else the disposition.
    pub reason: Option<&'static str>,
}

/// The call's outcome, for the CDR and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub disposition: Disposition,
    pub sip_code: Option<u16>,
    /// The trunk's refusal in its own words.
    pub reason: TrunkReason,
    pub ended_by: EndedBy,
    pub trunk: Option<String>,
    pub answered_at: Option<Instant>,
    pub ended_at: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CallMachine {
    state: CallState,
    answered_at: Option<Instant>,
    local_hangup: Option<LocalHangup>,
    outcome: Option<Outcome>,
}

impl Default for CallMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl CallMachine {
    pub fn new() -> Self {
        Self {
            state: CallState::Setup,
            answered_at: None,
            local_hangup: None,
            outcome: None,
        }
    }

    pub fn state(&self) -> CallState {
        self.state
    }

    /// Set once the call has ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// A trunk leg event; returns what the widget should now show, if it
    /// changed.
    #[must_use]
    pub fn handle_leg_event(&mut self, now: Instant, event: &LegEvent) -> Option<WidgetUpdate> {
        match event {
            LegEvent::Ringing | LegEvent::EarlyMedia => self.on_ringing(),
            LegEvent::Answered { .. } => self.on_answered(now),
            LegEvent::Ended(end) => self.on_ended(now, end),
            LegEvent::Trying { .. }
            | LegEvent::Hold(_)
            | LegEvent::MediaUpdated
            | LegEvent::Dtmf(_)
            | LegEvent::Media(_) => None,
        }
    }

    /// We want the call over. Returns true when the trunk must be hung up
    /// now (the first request while the call is live).
    #[must_use]
    pub fn handle_local_hangup(&mut self, cause: LocalHangup) -> bool {
        if self.state == CallState::Ended || self.local_hangup.is_some() {
            return false;
        }
        self.local_hangup = Some(cause);
        true
    }

    fn on_ringing(&mut self) -> Option<WidgetUpdate> {
        if self.state != CallState::Setup {
            return None;
        }
        self.state = CallState::Ringing;
        Some(self.update(None))
    }

    fn on_answered(&mut self, now: Instant) -> Option<WidgetUpdate> {
        if matches!(self.state, CallState::Answered | CallState::Ended) {
            return None;
        }
        self.state = CallState::Answered;
        self.answered_at = Some(now);
        Some(self.update(None))
    }

    fn on_ended(&mut self, now: Instant, end: &CallEnd) -> Option<WidgetUpdate> {
        if self.state == CallState::Ended {
            return None;
        }
        let ended_by = match (end.ended_by, self.local_hangup) {
            (EndCause::Remote, None) => EndedBy::Callee,
            (EndCause::Remote | EndCause::Local, Some(cause)) => match cause {
                LocalHangup::Visitor | LocalHangup::BrowserGone => EndedBy::Visitor,
                LocalHangup::BrowserFailed | LocalHangup::Shutdown | LocalHangup::Fault => {
                    EndedBy::Node
                }
            },
            (
                EndCause::Local
                | EndCause::RingTimeout
                | EndCause::MaxDuration
                | EndCause::SessionExpired,
                _,
            ) => EndedBy::Node,
        };
        let disposition = match self.local_hangup {
            Some(LocalHangup::Fault) => Disposition::Failed,
            _ => end.disposition,
        };
        self.state = CallState::Ended;
        self.outcome = Some(Outcome {
            disposition,
            sip_code: end.sip_code,
            reason: end.reason.clone(),
            ended_by,
            trunk: end.trunk.clone(),
            answered_at: self.answered_at,
            ended_at: now,
        });
        let reason = match disposition {
            Disposition::Answered => "completed",
            other => other.as_str(),
        };
        Some(self.update(Some(reason)))
    }

    fn update(&self, reason: Option<&'static str>) -> WidgetUpdate {
        WidgetUpdate {
            state: self.state,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Codec;
    use std::time::Duration;

    fn end(disposition: Disposition, code: Option<u16>, by: EndCause) -> LegEvent {
        LegEvent::Ended(CallEnd {
            disposition,
            sip_code: code,
            ended_by: by,
            trunk: Some("echo".to_owned()),
            reason: TrunkReason::default(),
        })
    }

    #[test]
    fn a_call_rings_is_answered_and_the_callee_hangs_up() {
        let t0 = Instant::now();
        let mut call = CallMachine::new();
        let ringing = call.handle_leg_event(t0, &LegEvent::Ringing).unwrap();
        assert_eq!(ringing.state, CallState::Ringing);
        assert_eq!(call.handle_leg_event(t0, &LegEvent::EarlyMedia), None);
        let answered = LegEvent::Answered { codec: Codec::Pcmu };
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            call.handle_leg_event(t1, &answered).unwrap().state,
            CallState::Answered
        );
        let t2 = t1 + Duration::from_secs(10);
        let ended = call
            .handle_leg_event(t2, &end(Disposition::Answered, Some(200), EndCause::Remote))
            .unwrap();
        assert_eq!(ended.reason, Some("completed"));
        let outcome = call.outcome().unwrap();
        assert_eq!(outcome.ended_by, EndedBy::Callee);
        assert_eq!(outcome.answered_at, Some(t1));
        assert_eq!(outcome.ended_at, t2);
    }

    #[test]
    fn the_visitor_hanging_up_is_recorded_as_the_visitor() {
        let now = Instant::now();
        let mut call = CallMachine::new();
        let _ = call.handle_leg_event(now, &LegEvent::Ringing);
        assert!(call.handle_local_hangup(LocalHangup::Visitor));
        assert!(
            !call.handle_local_hangup(LocalHangup::BrowserGone),
            "only once"
        );
        let ended = call
            .handle_leg_event(
                now,
                &end(Disposition::Cancelled, Some(487), EndCause::Local),
            )
            .unwrap();
        assert_eq!(ended.reason, Some("cancelled"));
        assert_eq!(call.outcome().unwrap().ended_by, EndedBy::Visitor);
        assert!(
            !call.handle_local_hangup(LocalHangup::Visitor),
            "ended is final"
        );
    }

    #[test]
    fn busy_and_failures_carry_their_disposition() {
        let now = Instant::now();
        let mut call = CallMachine::new();
        let ended = call
            .handle_leg_event(now, &end(Disposition::Busy, Some(486), EndCause::Remote))
            .unwrap();
        assert_eq!(ended.reason, Some("busy"));
        assert_eq!(call.outcome().unwrap().sip_code, Some(486));
        assert_eq!(
            call.handle_leg_event(now, &LegEvent::Answered { codec: Codec::Pcmu }),
            None,
            "nothing moves after the end"
        );

        let mut failed = CallMachine::new();
        assert!(failed.handle_local_hangup(LocalHangup::BrowserFailed));
        let _ = failed.handle_leg_event(now, &end(Disposition::Cancelled, None, EndCause::Local));
        assert_eq!(failed.outcome().unwrap().ended_by, EndedBy::Node);

        let mut limited = CallMachine::new();
        let _ = limited.handle_leg_event(
            now,
            &end(Disposition::Answered, None, EndCause::MaxDuration),
        );
        assert_eq!(limited.outcome().unwrap().ended_by, EndedBy::Node);
    }

    #[test]
    fn a_call_whose_media_was_lost_ends_as_failed_whatever_the_trunk_says() {
        let now = Instant::now();
        let mut call = CallMachine::new();
        let _ = call.handle_leg_event(now, &LegEvent::Answered { codec: Codec::Pcmu });
        assert!(call.handle_local_hangup(LocalHangup::Fault));
        let ended = call
            .handle_leg_event(now, &end(Disposition::Answered, Some(200), EndCause::Local))
            .unwrap();
        assert_eq!(ended.reason, Some("failed"));
        let outcome = call.outcome().unwrap();
        assert_eq!(outcome.disposition, Disposition::Failed);
        assert_eq!(outcome.ended_by, EndedBy::Node);
        assert!(outcome.answered_at.is_some(), "it was answered before");
    }
}
