//! What a call leaves behind, written into its one record, the
//! [`CdrRecord`] that placing the call began: the control's [`Outcome`],
//! the media's share ([`MediaReport`]: the trunk's codec and each leg's
//! [`LegStats`]) and whether a recording was kept.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::state::Outcome;
use crate::domain::{Disposition, EndedBy, LegStats};
use crate::store::CdrRecord;

/// The media's share of the call's record, as its shard reports it when
/// the call leaves.
#[derive(Debug, Clone)]
pub struct MediaReport {
    pub trunk_codec: Option<&'static str>,
    pub browser: LegStats,
    pub trunk: LegStats,
}

/// A call's record as it ends. `started` is the instant of the node's
/// monotonic clock that the record's `created_at_ms` names: the call's
/// times are measured on that clock and written as wall-clock times.
pub struct Ending {
    pub record: CdrRecord,
    pub started: Instant,
}

impl Ending {
    /// The control's verdict: who ended the call, how, and when it was
    /// answered and ended.
    pub fn outcome(&mut self, outcome: &Outcome) {
        if let Some(answered_at) = outcome.answered_at {
            self.record.on_answered(self.wall(answered_at));
        }
        self.record.on_ended(
            self.wall(outcome.ended_at),
            outcome.ended_by,
            outcome.disposition,
        );
        self.record.trunk = outcome.trunk.clone();
        self.record.sip_code = outcome.sip_code;
        self.record.sip_reason = outcome.reason.phrase.clone();
        self.record.q850_cause = outcome.reason.q850_cause;
    }

    /// A call the node could not carry on, ended at `at`: failed, by the
    /// node, and what it knew of its outcome is lost.
    pub fn node_failure(&mut self, at: Instant) {
        self.record
            .on_ended(self.wall(at), EndedBy::Node, Disposition::Failed);
    }

    /// The media's figures.
    pub fn media(&mut self, media: MediaReport) {
        self.record.trunk_codec = media.trunk_codec.map(str::to_owned);
        self.record.browser_stats = media.browser;
        self.record.trunk_stats = media.trunk;
    }

    fn wall(&self, at: Instant) -> SystemTime {
        let created_at_ms = u64::try_from(self.record.created_at_ms).unwrap_or(0);
        UNIX_EPOCH
            + Duration::from_millis(created_at_ms)
            + at.saturating_duration_since(self.started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::TrunkReason;
    use crate::store::WidgetRoute;

    #[test]
    fn the_outcome_lands_in_wall_clock_times_from_the_records_creation() {
        let created = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let started = Instant::now();
        let mut ending = Ending {
            record: CdrRecord::begin("c1", &WidgetRoute::demo(), "node-a", created),
            started,
        };
        ending.outcome(&Outcome {
            disposition: Disposition::Answered,
            sip_code: Some(200),
            reason: TrunkReason::default(),
            ended_by: EndedBy::Callee,
            trunk: Some("carrier".into()),
            answered_at: Some(started + Duration::from_millis(2_500)),
            ended_at: started + Duration::from_millis(62_500),
        });
        let record = ending.record;
        assert_eq!(record.answered_at_ms, Some(1_700_000_002_500));
        assert_eq!(record.ended_at_ms, 1_700_000_062_500);
        assert_eq!(record.duration_ms, 60_000);
        assert_eq!(
            (record.disposition, record.ended_by, record.sip_code),
            (Disposition::Answered, EndedBy::Callee, Some(200))
        );
        assert_eq!(record.trunk.as_deref(), Some("carrier"));
    }

    #[test]
    fn a_node_failure_is_failed_by_the_node_and_never_answered() {
        let started = Instant::now();
        let mut ending = Ending {
            record: CdrRecord::begin("c1", &WidgetRoute::demo(), "node-a", UNIX_EPOCH),
            started,
        };
        ending.node_failure(started + Duration::from_millis(40));
        ending.media(MediaReport {
            trunk_codec: Some("PCMA"),
            browser: LegStats {
                packets_received: 2,
                ..LegStats::default()
            },
            trunk: LegStats::default(),
        });
        let record = ending.record;
        assert_eq!(
            (record.disposition, record.ended_by, record.ended_at_ms),
            (Disposition::Failed, EndedBy::Node, 40)
        );
        assert_eq!((record.answered_at_ms, record.duration_ms), (None, 0));
        assert_eq!(record.trunk_codec.as_deref(), Some("PCMA"));
        assert_eq!(record.browser_stats.packets_received, 2);
    }
}
