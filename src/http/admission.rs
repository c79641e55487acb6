//! Whether a new call may start: the node's own guards ([`super::guard`])
//! and, on a node in a cluster, the same limits counted cluster-wide.
//!
//! - **Rates** (per client, per widget): while Redis is up the cluster's
//!   count alone decides, so a client spreading its calls over nodes gets
//!   no more than it would from one; while Redis is down, the node's own
//!   limiter does.
//! - **Concurrency** (per tenant, widget, number): the node always counts
//!   its own calls (the same limits, so it never refuses first), and in a
//!   cluster the call also holds a lease on the cluster-wide slots for as
//!   long as its [`CallPermit`] lives. While Redis is down the lease is
//!   kept by the node alone and written to Redis when it is back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::guard::{CallPermit, Guards, Refusal, client_key};
use crate::cluster::{Cluster, Rate, RateVerdict, SlotClaim, SlotScope, keys};
use crate::config::LimitsConfig;
use crate::store::WidgetLimits;

/// See the module documentation.
#[derive(Clone)]
pub struct Admission {
    pub guards: Arc<Guards>,
    cluster: Option<Cluster>,
    calls_per_minute_per_ip: u32,
    calls_per_minute_per_widget: u32,
    max_calls_per_tenant: u32,
}

/// Which number a call goes to, and its own cap on calls at once.
pub struct NumberSlot<'a> {
    pub id: &'a str,
    pub limit: Option<u32>,
}

impl Admission {
    pub fn new(limits: &LimitsConfig, cluster: Option<Cluster>) -> Self {
        Self {
            guards: Arc::new(Guards::new(limits)),
            cluster,
            calls_per_minute_per_ip: limits.calls_per_minute_per_ip,
            calls_per_minute_per_widget: limits.calls_per_minute_per_widget,
            max_calls_per_tenant: limits.max_concurrent_calls_per_tenant.max(1),
        }
    }

    /// Counts one new call from `client` through `widget_id`: the client's
    /// rate first, then the widget's.
    pub async fn check_rates(
        &self,
        client: IpAddr,
        widget_id: &str,
        limits: &WidgetLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        if let Some(cluster) = self.cluster.as_ref().filter(|c| c.is_up()) {
            let widget_limit = limits
                .calls_per_minute
                .map_or(self.calls_per_minute_per_widget, |own| {
                    own.min(self.calls_per_minute_per_widget)
                });
            let client_rate = Rate::per_minute(self.calls_per_minute_per_ip);
            let widget_rate = Rate::per_minute(widget_limit);
            let checked = cluster
                .check_rates(client_key(client), widget_id, client_rate, widget_rate)
                .await;
            if let Some(verdict) = checked {
                return match verdict {
                    RateVerdict::Allowed => Ok(()),
                    RateVerdict::Client(retry_after) => Err(Refusal::RateLimitedIp { retry_after }),
                    RateVerdict::Widget(retry_after) => {
                        Err(Refusal::RateLimitedWidget { retry_after })
                    }
                };
            }
        }
        self.guards.check_new_call(client, widget_id, limits, now)
    }

    /// Takes the call's slots: its tenant's, and its widget's and its
    /// number's where those have a limit; held until the permit is dropped.
    pub async fn take_slots(
        &self,
        tenant: &str,
        widget_id: &str,
        limits: &WidgetLimits,
        number: NumberSlot<'_>,
    ) -> Result<CallPermit, Refusal> {
        let permit =
            self.guards
                .try_acquire_call_to(tenant, widget_id, limits, number.id, number.limit)?;
        let Some(cluster) = &self.cluster else {
            return Ok(permit);
        };
        let claim = |scope, id, limit| SlotClaim {
            scope,
            key: keys::slots(scope, id),
            limit,
        };
        let mut claims = vec![claim(SlotScope::Tenant, tenant, self.max_calls_per_tenant)];
        if let Some(limit) = limits.max_concurrent_calls {
            claims.push(claim(SlotScope::Widget, widget_id, limit));
        }
        if let Some(limit) = number.limit {
            claims.push(claim(SlotScope::Number, number.id, limit));
        }
        match cluster.take_slots(&claims).await {
            Ok(lease) => Ok(permit.holding(lease)),
            Err(full) => Err(match full.scope {
                SlotScope::Tenant => Refusal::TooManyCalls { limit: full.limit },
                SlotScope::Widget => Refusal::WidgetBusy { limit: full.limit },
                SlotScope::Number => Refusal::NumberBusy { limit: full.limit },
            }),
        }
    }
}
