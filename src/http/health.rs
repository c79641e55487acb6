//! Liveness and readiness: `GET /healthz` and `GET /readyz`.
//!
//! `/healthz` answers 200 whenever the process can serve HTTP at all.
//! `/readyz` answers 200 only while [`Readiness`] is set and the node is
//! not draining: the node sets it once every listener is up and clears it
//! as soon as shutdown begins, and an operator's drain (`POST
//! /v1/node/drain`) holds it off, so a load balancer stops sending new
//! calls before the node stops taking them. In a cluster its body also
//! says whether the node reaches Redis; a node that does not still takes
//! calls, on its own limits, so that does not make it unready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::config::NodeId;

/// Whether the node takes new work; shared between the node and the router.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Flags>);

#[derive(Debug, Default)]
struct Flags {
    /// Every listener is up and shutdown has not begun.
    up: AtomicBool,
    /// An operator asked the node to take no new calls.
    draining: AtomicBool,
}

impl Readiness {
    /// Starts out not ready.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self) {
        self.0.up.store(true, Ordering::Release);
    }

    pub fn set_not_ready(&self) {
        self.0.up.store(false, Ordering::Release);
    }

    /// Starts (`true`) or ends a drain: new calls are refused while it
    /// lasts, calls in progress go on. Returns whether this changed it.
    pub fn set_draining(&self, draining: bool) -> bool {
        self.0.draining.swap(draining, Ordering::AcqRel) != draining
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// Up, and not draining.
    pub fn is_ready(&self) -> bool {
        self.0.up.load(Ordering::Acquire) && !self.is_draining()
    }
}

#[derive(Clone)]
pub struct HealthState {
    node_id: NodeId,
    readiness: Readiness,
    cluster: Option<Cluster>,
}

impl HealthState {
    /// `cluster` when the node is in one: `/readyz` then says whether it
    /// is degraded (Redis down), which does not make it unready.
    pub fn new(node_id: NodeId, readiness: Readiness, cluster: Option<Cluster>) -> Self {
        Self {
            node_id,
            readiness,
            cluster,
        }
    }
}

/// The `/healthz` and `/readyz` routes, with their state applied.
pub fn routes(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node: String,
    version: &'static str,
}

async fn healthz(State(state): State<HealthState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node: state.node_id.to_string(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    draining: bool,
    /// In a cluster: `connected`, or `degraded` while Redis is down (new
    /// calls are then admitted on this node's own limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'static str>,
}

async fn readyz(State(state): State<HealthState>) -> (StatusCode, Json<Ready>) {
    let ready = state.readiness.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let draining = state.readiness.is_draining();
    let cluster = state.cluster.as_ref().map(|cluster| match cluster.is_up() {
        true => "connected",
        false => "degraded",
    });
    let body = Ready {
        ready,
        draining,
        cluster,
    };
    (status, Json(body))
}
