//! A node's calls as the cluster sees them: each call is announced to the
//! cluster while this node carries it, and the calls of a lost node that
//! this node took over are finalised here, through the node's own CDR
//! writer (the record as the lost node last announced it, ended as
//! `node_lost`, then its `call.ended` webhook).

use tokio::sync::mpsc;

use crate::call::announce::CallAnnouncer;
use crate::call::cdr_writer::CdrWriter;
use crate::cluster::{Cluster, LostCall};
use crate::store::CdrRecord;

/// Announces this node's calls in the cluster.
pub struct ClusterCalls(pub Cluster);

impl CallAnnouncer for ClusterCalls {
    fn carrying(&self, call_id: &str, record: &CdrRecord) {
        match serde_json::to_string(record) {
            Ok(json) => self.0.carrying(call_id, &json),
            Err(error) => tracing::warn!(call = %call_id, %error, "cannot announce a call"),
        }
    }

    fn ended(&self, call_id: &str) {
        self.0.ended(call_id);
    }
}

/// Writes the record of each call of a lost node this node took over,
/// until the cluster is gone.
pub async fn finalise(mut lost: mpsc::UnboundedReceiver<LostCall>, cdrs: CdrWriter) {
    while let Some(call) = lost.recv().await {
        let Some(record) = lost_record(&call) else {
            tracing::warn!(
                node = %call.node_id,
                call = %call.call_id,
                "a lost node's call has no readable record; it is skipped"
            );
            continue;
        };
        tracing::info!(
            node = %call.node_id,
            call = %call.call_id,
            "a lost node's call ends as failed (node_lost)"
        );
        cdrs.write(record);
    }
}

/// The record of a lost call, ended when its node was last seen.
fn lost_record(call: &LostCall) -> Option<CdrRecord> {
    let mut record: CdrRecord = serde_json::from_str(&call.record).ok()?;
    if record.call_id != call.call_id {
        return None;
    }
    record.on_node_lost(call.last_seen_ms);
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Disposition, EndedBy};
    use crate::store::{NODE_LOST, WidgetRoute};

    fn announced(answered_at_ms: Option<i64>) -> CdrRecord {
        let route = WidgetRoute::demo();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(10_000);
        let mut record = CdrRecord::begin("call-1", &route, "node-b", at);
        record.answered_at_ms = answered_at_ms;
        record
    }

    fn lost(record: &CdrRecord, last_seen_ms: i64) -> LostCall {
        LostCall {
            node_id: "node-b".into(),
            call_id: record.call_id.clone(),
            last_seen_ms,
            record: serde_json::to_string(record).unwrap(),
        }
    }

    #[test]
    fn an_answered_lost_call_counts_its_talk_time_to_its_nodes_last_heartbeat() {
        let record = lost_record(&lost(&announced(Some(12_000)), 42_000)).unwrap();
        assert_eq!(record.disposition, Disposition::Failed);
        assert_eq!(record.ended_by, EndedBy::Node);
        assert_eq!(record.end_reason.as_deref(), Some(NODE_LOST));
        assert_eq!(record.ended_at_ms, 42_000);
        assert_eq!(record.duration_ms, 30_000);
        assert_eq!(record.node_id, "node-b", "the node that carried it");
    }

    #[test]
    fn a_lost_call_never_ends_before_it_began_and_a_foreign_record_is_refused() {
        let record = lost_record(&lost(&announced(None), 1_000)).unwrap();
        assert_eq!(record.ended_at_ms, 10_000);
        assert_eq!(record.duration_ms, 0);
        let mut other = lost(&announced(None), 1_000);
        other.call_id = "call-2".into();
        assert_eq!(lost_record(&other), None);
        other.record = "{ not json".into();
        assert_eq!(lost_record(&other), None);
    }
}
