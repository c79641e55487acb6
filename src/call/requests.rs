//! What the outside asks of a call ([`CallCommand`], [`HangupRequest`])
//! and what the widget is shown of it ([`CallView`]): the control's
//! vocabulary with the signalling side.

use super::state::CallState;
use crate::domain::Consent;
use crate::media::quality::Warnings;

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
    pub(super) fn command(self) -> CallCommand {
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
