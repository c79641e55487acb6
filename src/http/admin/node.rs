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

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Operator;
use super::error::{ApiError, ErrorBody};
use super::node_control::NodeControl;
use super::state::AdminState;
use crate::cluster::NodeState;

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
    /// In a cluster: this node's view of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// A node's view of its cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// Whether Redis answers; while it does not, new calls are admitted on
    /// this node's own limits.
    pub redis_up: bool,
    /// Cluster-wide call slots this node holds (one per call admitted).
    pub leases: usize,
}

impl NodeStatus {
    fn of(node: &NodeControl) -> Self {
        NodeStatus {
            node: node.id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ready: node.readiness.is_ready(),
            draining: node.readiness.is_draining(),
            calls_active: node.calls.active(),
            cluster: node.cluster.as_ref().map(|cluster| ClusterStatus {
                redis_up: cluster.is_up(),
                leases: cluster.leases_held(),
            }),
        }
    }
}

/// One node of the cluster, as the registry shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterNode {
    pub id: String,
    pub region: String,
    /// Where browsers reach the node.
    pub public_url: String,
    /// `serving`, or `draining`: calls in progress go on, new ones go elsewhere.
    pub state: String,
    /// Calls in progress on the node at its last heartbeat.
    pub calls: u32,
    pub shards: u32,
    /// Its CPU over its last heartbeat, in % of one core (two cores busy
    /// read 200).
    pub cpu_percent: u32,
    pub version: String,
}

/// The nodes with a fresh registry entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterNodes {
    pub nodes: Vec<ClusterNode>,
}

#[utoipa::path(get, path = "/v1/cluster/nodes", tag = "node",
    security(("api_key" = [])),
    responses((status = 200, body = ClusterNodes), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "this node is not in a cluster", body = ErrorBody),
        (status = 503, description = "Redis is down", body = ErrorBody)))]
pub async fn cluster_nodes(
    State(state): State<AdminState>,
    _operator: Operator,
) -> Result<Json<ClusterNodes>, ApiError> {
    let Some(cluster) = &state.node.cluster else {
        return Err(ApiError::NotFound("cluster (this node runs alone)"));
    };
    let entries = cluster.nodes().await.map_err(|error| {
        tracing::warn!(%error, "cluster: cannot read the registry");
        ApiError::Unavailable("the cluster registry cannot be read now: try again".to_owned())
    })?;
    let mut nodes: Vec<ClusterNode> = entries
        .into_iter()
        .map(|entry| ClusterNode {
            id: entry.id,
            region: entry.region,
            public_url: entry.public_url,
            state: match entry.state {
                NodeState::Serving => "serving",
                NodeState::Draining => "draining",
            }
            .to_owned(),
            calls: entry.calls,
            shards: entry.shards,
            cpu_percent: entry.cpu_percent,
            version: entry.version,
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(ClusterNodes { nodes }))
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
