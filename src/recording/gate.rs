//! The consent gate: whether the audio of a call may be recorded right now.
//!
//! The gate is open only while the call is answered and not on hold, the
//! number's policy allows recording and the visitor's consent is granted.
//! It closes at once on revocation, on hold and at the end of the call. No I/O and no clock: the driver
//! feeds it inputs (`handle_*`) and acts on the [`GateAction`]s it returns.
//!
//! Consent per policy:
//! - `off`: never recorded; consent is ignored.
//! - `opt_in`: recorded only after an explicit grant (in the call request or
//!   later over the events socket).
//! - `notice`: the visitor was shown the notice before calling; recorded
//!   from the answer unless they declined (in the request) or revoke.
//!
//! A revocation under `on_revoke = discard` also asks for the recording made
//! so far to be deleted; under `keep` what was recorded stays and only
//! further audio is kept out. A later grant opens the gate again (a fresh
//! recording after a discard, the same one after keep).

use crate::domain::{Consent, OnRevoke, RecordingPolicy};

/// How the visitor expressed a grant, for the consent receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMethod {
    /// The consent field of the call request.
    Api,
    /// The widget's allow-recording control, over the events socket.
    Button,
    /// Calling a `notice` number after being shown its notice.
    Notice,
}

impl ConsentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Button => "button",
            Self::Notice => "notice",
        }
    }
}

/// What the driver must do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateAction {
    /// Start passing audio to the recorder (issue a consent receipt for
    /// `method` first).
    Open { method: ConsentMethod },
    /// Stop passing audio now.
    Close,
    /// Stop passing audio and delete what was recorded (revoked, discard).
    CloseAndDiscard,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ConsentGate {
    policy: RecordingPolicy,
    on_revoke: OnRevoke,
    /// The current choice and how it was made.
    consent: Option<(Consent, ConsentMethod)>,
    answered: bool,
    /// The callee put the call on hold (a re-INVITE with `sendonly` or
    /// `inactive`): nothing is recorded until they take it off hold.
    on_hold: bool,
    ended: bool,
    open: bool,
}

impl ConsentGate {
    /// A gate for a call on a number with `policy`, with the consent the
    /// call request carried (`None`: no choice made yet).
    pub fn new(policy: RecordingPolicy, on_revoke: OnRevoke, requested: Option<Consent>) -> Self {
        let consent = match (policy, requested) {
            (_, Some(choice)) => Some((choice, ConsentMethod::Api)),
            (RecordingPolicy::Notice, None) => Some((Consent::Granted, ConsentMethod::Notice)),
            (_, None) => None,
        };
        Self {
            policy,
            on_revoke,
            consent,
            answered: false,
            on_hold: false,
            ended: false,
            open: false,
        }
    }

    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the number records at all (the widget shows consent controls).
    pub fn policy(&self) -> RecordingPolicy {
        self.policy
    }

    #[must_use]
    pub fn handle_answered(&mut self) -> Option<GateAction> {
        self.answered = true;
        self.update(false)
    }

    #[must_use]
    pub fn handle_ended(&mut self) -> Option<GateAction> {
        self.ended = true;
        self.update(false)
    }

    /// The call went on hold (`true`) or came off it (`false`). The same
    /// recording goes on after the hold: consent did not change.
    #[must_use]
    pub fn handle_hold(&mut self, on_hold: bool) -> Option<GateAction> {
        self.on_hold = on_hold;
        self.update(false)
    }

    /// The visitor granted (`Granted`) or revoked (`Declined`) consent
    /// during the call.
    #[must_use]
    pub fn handle_consent(&mut self, choice: Consent) -> Option<GateAction> {
        if self.ended {
            return None;
        }
        let revoked = choice == Consent::Declined;
        let method = match self.consent {
            // A repeated grant keeps the method of the first.
            Some((Consent::Granted, method)) if !revoked => method,
            _ => ConsentMethod::Button,
        };
        self.consent = Some((choice, method));
        self.update(revoked)
    }

    fn allowed(&self) -> bool {
        self.answered
            && !self.on_hold
            && !self.ended
            && self.policy != RecordingPolicy::Off
            && matches!(self.consent, Some((Consent::Granted, _)))
    }

    fn update(&mut self, revoked: bool) -> Option<GateAction> {
        let allowed = self.allowed();
        if allowed == self.open {
            return None;
        }
        self.open = allowed;
        if allowed {
            let method = self.consent.map_or(ConsentMethod::Api, |(_, m)| m);
            return Some(GateAction::Open { method });
        }
        match (revoked, self.on_revoke) {
            (true, OnRevoke::Discard) => Some(GateAction::CloseAndDiscard),
            _ => Some(GateAction::Close),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(method: ConsentMethod) -> Option<GateAction> {
        Some(GateAction::Open { method })
    }

    #[test]
    fn opt_in_opens_at_the_answer_only_with_a_grant() {
        let mut granted = ConsentGate::new(
            RecordingPolicy::OptIn,
            OnRevoke::Discard,
            Some(Consent::Granted),
        );
        assert!(!granted.is_open(), "never before the answer");
        assert_eq!(granted.handle_answered(), open(ConsentMethod::Api));
        assert_eq!(granted.handle_ended(), Some(GateAction::Close));
        assert!(!granted.is_open());

        for requested in [None, Some(Consent::Declined)] {
            let mut gate = ConsentGate::new(RecordingPolicy::OptIn, OnRevoke::Discard, requested);
            assert_eq!(gate.handle_answered(), None);
            assert!(!gate.is_open());
        }
    }

    #[test]
    fn a_grant_during_the_call_opens_and_a_revoke_closes_at_once() {
        let mut gate = ConsentGate::new(RecordingPolicy::OptIn, OnRevoke::Keep, None);
        assert_eq!(
            gate.handle_consent(Consent::Granted),
            None,
            "not answered yet"
        );
        assert_eq!(gate.handle_answered(), open(ConsentMethod::Button));
        assert_eq!(
            gate.handle_consent(Consent::Declined),
            Some(GateAction::Close)
        );
        assert_eq!(
            gate.handle_consent(Consent::Granted),
            open(ConsentMethod::Button)
        );
    }

    #[test]
    fn a_hold_closes_the_gate_and_taking_the_call_back_reopens_it() {
        let mut gate = ConsentGate::new(
            RecordingPolicy::OptIn,
            OnRevoke::Discard,
            Some(Consent::Granted),
        );
        assert_eq!(gate.handle_answered(), open(ConsentMethod::Api));
        assert_eq!(
            gate.handle_hold(true),
            Some(GateAction::Close),
            "not a discard"
        );
        assert!(!gate.is_open());
        assert_eq!(gate.handle_answered(), None, "still on hold");
        assert_eq!(gate.handle_hold(false), open(ConsentMethod::Api));
        // A grant while on hold waits for the call to come back.
        let mut later = ConsentGate::new(RecordingPolicy::OptIn, OnRevoke::Keep, None);
        assert_eq!(later.handle_answered(), None);
        assert_eq!(later.handle_hold(true), None);
        assert_eq!(later.handle_consent(Consent::Granted), None);
        assert_eq!(later.handle_hold(false), open(ConsentMethod::Button));
    }

    #[test]
    fn revoking_under_discard_deletes_the_recording() {
        let mut gate = ConsentGate::new(
            RecordingPolicy::OptIn,
            OnRevoke::Discard,
            Some(Consent::Granted),
        );
        let _ = gate.handle_answered();
        assert_eq!(
            gate.handle_consent(Consent::Declined),
            Some(GateAction::CloseAndDiscard)
        );
        assert_eq!(gate.handle_consent(Consent::Declined), None);
    }

    #[test]
    fn notice_records_unless_declined() {
        let mut gate = ConsentGate::new(RecordingPolicy::Notice, OnRevoke::Discard, None);
        assert_eq!(gate.handle_answered(), open(ConsentMethod::Notice));
        let mut declined = ConsentGate::new(
            RecordingPolicy::Notice,
            OnRevoke::Discard,
            Some(Consent::Declined),
        );
        assert_eq!(declined.handle_answered(), None);
    }

    #[test]
    fn off_never_opens() {
        let mut gate =
            ConsentGate::new(RecordingPolicy::Off, OnRevoke::Keep, Some(Consent::Granted));
        assert_eq!(gate.handle_answered(), None);
        assert_eq!(gate.handle_consent(Consent::Granted), None);
        assert!(!gate.is_open());
    }

    #[test]
    fn nothing_opens_after_the_end() {
        let mut gate = ConsentGate::new(RecordingPolicy::OptIn, OnRevoke::Keep, None);
        let _ = gate.handle_answered();
        let _ = gate.handle_ended();
        assert_eq!(gate.handle_consent(Consent::Granted), None);
        assert!(!gate.is_open());
    }
}
