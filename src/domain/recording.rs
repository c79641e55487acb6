//! A number's [`RecordingPolicy`], what a revocation does to a recording
//! ([`OnRevoke`]), and the visitor's [`Consent`]: the inputs of the
//! consent gate, as stored, configured and sent by the widget.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::unknown_name::UnknownName;

/// A number's recording policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingPolicy {
    /// Never recorded.
    Off,
    /// Recorded only after the visitor grants consent.
    OptIn,
    /// The visitor is told before the call; recorded unless they decline.
    Notice,
}

impl RecordingPolicy {
    /// The stored and API name: `off`, `opt_in` or `notice`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::OptIn => "opt_in",
            Self::Notice => "notice",
        }
    }
}

impl fmt::Display for RecordingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingPolicy {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Off, Self::OptIn, Self::Notice]
            .into_iter()
            .find(|policy| policy.as_str() == s)
            .ok_or_else(|| UnknownName::new("recording policy", s))
    }
}

/// What happens to a recording when the visitor revokes consent mid-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRevoke {
    Discard,
    Keep,
}

impl OnRevoke {
    /// The stored and API name: `discard` or `keep`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discard => "discard",
            Self::Keep => "keep",
        }
    }
}

impl FromStr for OnRevoke {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Discard, Self::Keep]
            .into_iter()
            .find(|choice| choice.as_str() == s)
            .ok_or_else(|| UnknownName::new("on_revoke", s))
    }
}

/// The visitor's choice, as the call request carries it (`granted`,
/// `declined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    Granted,
    Declined,
}
