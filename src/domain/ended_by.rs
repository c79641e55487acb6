//! [`EndedBy`]: who ended a call, as the call's outcome says it, the CDR
//! stores it and the API shows it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::unknown_name::UnknownName;

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The visitor hung up, closed the page or lost the connection.
    Visitor,
    /// The callee hung up, or the trunk refused or failed the call.
    Callee,
    /// The node ended it: a limit, a timeout, a drain or an internal error.
    Node,
}

impl EndedBy {
    /// The stored and API name: `visitor`, `callee` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Callee => "callee",
            Self::Node => "node",
        }
    }
}

impl fmt::Display for EndedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndedBy {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Visitor, Self::Callee, Self::Node]
            .into_iter()
            .find(|by| by.as_str() == s)
            .ok_or_else(|| UnknownName::new("ended_by", s))
    }
}
