//! [`Disposition`]: how a call attempt ended, as the call's outcome says
//! it, the CDR stores it, the metrics count it and the API shows it. How
//! SIP responses map to it is the trunk leg's business
//! (`crate::sip::disposition`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::unknown_name::UnknownName;

/// The outcome of a call on the trunk leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The callee answered (2xx); the call ended later by a BYE or a limit.
    Answered,
    /// The callee was busy (486, 600).
    Busy,
    /// Nobody answered: our ring timeout fired, or the trunk said so (480, 408).
    NoAnswer,
    /// The trunk or callee refused the call (403, 404, 603, 488, ...).
    Rejected,
    /// The call failed for another reason: authentication, a 5xx, a bad
    /// request, or the node could not carry it on.
    Failed,
    /// No trunk could be reached: no response at all, or a transport error.
    Unreachable,
    /// We gave up before an answer because the visitor hung up.
    Cancelled,
}

impl Disposition {
    /// Every disposition, in the order metrics list them.
    pub const ALL: [Disposition; 7] = [
        Disposition::Answered,
        Disposition::Busy,
        Disposition::NoAnswer,
        Disposition::Rejected,
        Disposition::Failed,
        Disposition::Unreachable,
        Disposition::Cancelled,
    ];

    /// The stable lowercase name used in CDRs, metrics labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Rejected => "rejected",
            Disposition::Failed => "failed",
            Disposition::Unreachable => "unreachable",
            Disposition::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Disposition {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|disposition| disposition.as_str() == s)
            .ok_or_else(|| UnknownName::new("disposition", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_read_back() {
        assert_eq!(Disposition::NoAnswer.to_string(), "no_answer");
        assert_eq!(Disposition::Unreachable.as_str(), "unreachable");
        for disposition in Disposition::ALL {
            assert_eq!(disposition.as_str().parse(), Ok(disposition));
            let json = serde_json::to_string(&disposition).unwrap();
            assert_eq!(json, format!("\"{disposition}\""));
        }
        assert!("No_Answer".parse::<Disposition>().is_err());
    }
}
