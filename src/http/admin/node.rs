//! `/v1/node`: the operator's view of this node, and its drain.
//!
//! Draining is how a node leaves service for an upgrade without cutting
//! anyone off: `/readyz` answers 503 so load balancers move new visitors
//! elsewhere, new calls answer 503 with `Retry-After`, and every call in
//! progress goes on until its people hang up; the SIP agent answers
//! trunks' OPTIONS 503, so trunks with failover move new calls away too.
//! The operator watches `calls_active` fall to 0, then stops the node.
//! `DELETE` ends a drain. The node's first SIGTERM starts the same drain
//! ([`NodeControl::set_draining`]).
//!
//! Only `operator` keys reach these routes (a tenant's key is 403). The
//! drain is the node's own state: it lasts until ended or the process
//! exits, and a restarted node takes calls again.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AdminState;
use super::auth::Operator;
use super::error::ErrorBody;
use crate::call::service::CallService;
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
}

impl NodeControl {
    /// Starts (`true`) or ends the drain: readiness, the SIP agent's
    /// answers and the gauge. Returns whether this changed it.
    pub fn set_draining(&self, draining: bool) -> bool {
        let changed = self.readiness.set_draining(draining);
        self.sip.set_draining(draining);
        self.metrics.draining.set(i64::from(draining));
        changed
    }
}

/// The node as its operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStatus {
    /// `node.id` from the configuration.
    pub node: String,
    pub version: String,
    /// What `/readyz` answers: up and not draining.
    pub ready: bool,
    /// New calls are refused; calls in progress go on.
    pub draining: bool,
    /// Calls in progress on this node.
    pub calls_active: usize,
}

impl NodeStatus {
    fn of(node: &NodeControl) -> Self {
        NodeStatus {
            node: node.id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ready: node.readiness.is_ready(),
            draining: node.readiness.is_draining(),
            calls_active: node.calls.active(),
        }
    }
}

#[utoipa::path(get, path = "/v1/node", tag = "node",
    security(("api_key" = [])),
    responses((status = 200, body = NodeStatus), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn status(State(state): State<AdminState>, _operator: Operator) -> Json<NodeStatus> {
    Json(NodeStatus::of(&state.node))
}

#[utoipa::path(post, path = "/v1/node/drain", tag = "node",
    security(("api_key" = [])),
    responses((status = 200, description = "draining: new calls refused", body = NodeStatus),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn drain(State(state): State<AdminState>, operator: Operator) -> Json<NodeStatus> {
    if state.node.set_draining(true) {
        tracing::info!(
            key = %operator.key_id,
            calls_active = state.node.calls.active(),
            "draining: new calls refused, calls in progress go on"
        );
    }
    Json(NodeStatus::of(&state.node))
}

#[utoipa::path(delete, path = "/v1/node/drain", tag = "node",
    security(("api_key" = [])),
    responses((status = 200, description = "taking calls again", body = NodeStatus),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn resume(State(state): State<AdminState>, operator: Operator) -> Json<NodeStatus> {
    if state.node.set_draining(false) {
        tracing::info!(key = %operator.key_id, "drain ended: taking new calls");
    }
    Json(NodeStatus::of(&state.node))
}
