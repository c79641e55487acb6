//! [`NodeControl`]: what the operator routes see of the node, and its
//! drain switch.

use std::sync::Arc;

use crate::call::service::CallService;
use crate::cluster::Cluster;
use crate::config::NodeId;
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::sip::SipAgent;

/// What the operator routes see of the node.
#[derive(Clone)]
pub struct NodeControl {
    pub id: NodeId,
    pub readiness: Readiness,
    pub calls: CallService,
    pub metrics: Arc<Metrics>,
    pub sip: SipAgent,
    /// The cluster this node is part of, if any.
    pub cluster: Option<Cluster>,
}

impl NodeControl {
    /// Starts (`true`) or ends the drain: readiness, the SIP agent's
    /// answers and the gauge. Returns whether this changed it.
    pub fn set_draining(&self, draining: bool) -> bool {
        let changed = self.readiness.set_draining(draining);
        self.sip.set_draining(draining);
        self.metrics.draining.set(i64::from(draining));
        if let Some(cluster) = &self.cluster {
            cluster.nudge();
        }
        changed
    }
}
