//! What a call leaves behind: its [`CallReport`] (the outcome, each leg's
//! [`LegStats`], whether a recording was kept), the media's share of it
//! ([`MediaReport`]), and the report of a call the node could not carry
//! on.

use std::time::Instant;

use super::state::Outcome;
use crate::domain::{Codec, EndedBy};
use crate::media::quality::MosSummary;
use crate::sip::{Disposition, TrunkReason};

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

/// The media's share of the call's report.
#[derive(Debug, Clone)]
pub struct MediaReport {
    pub browser_codec: &'static str,
    pub trunk_codec: Option<&'static str>,
    pub browser: LegStats,
    pub trunk: LegStats,
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

impl CallReport {
    /// The report of a call whose control panicked: what it knew is lost.
    pub fn failed(browser_codec: Codec, ended_at: Instant) -> Self {
        Self {
            outcome: node_failure(ended_at),
            browser_codec: browser_codec.name(),
            trunk_codec: None,
            browser: LegStats::default(),
            trunk: LegStats::default(),
            recorded: false,
        }
    }
}

/// How a call ends that the node could not carry on.
pub fn node_failure(ended_at: Instant) -> Outcome {
    Outcome {
        disposition: Disposition::Failed,
        sip_code: None,
        reason: TrunkReason::default(),
        ended_by: EndedBy::Node,
        trunk: None,
        answered_at: None,
        ended_at,
    }
}
