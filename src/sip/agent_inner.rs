//! [`AgentInner`]: what the SIP agent and its calls share: the rsipstack
//! endpoint and dialog layer, the routes, the counters, the pinned
//! Call-IDs, the drain flag and the tasks to wait for at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::HostWithPort;
use rsipstack::transaction::Endpoint;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::counters::SipCounters;
use super::pinning::{DialogPins, Pinned};
use super::reason::TrunkReason;
use super::settings::AgentSettings;
use super::trunk::{RouteTable, Trunk};
use crate::supervise::{self, CoreFailure};

pub(crate) struct AgentInner {
    pub(crate) endpoint: Endpoint,
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) routes: RouteTable,
    pub(crate) settings: AgentSettings,
    pub(crate) local_host: HostWithPort,
    pub(crate) counters: Arc<SipCounters>,
    pub(crate) cancel: CancellationToken,
    /// Every outbound call's task, to wait for their goodbyes at shutdown.
    pub(crate) calls: TaskTracker,
    /// Hears of a core task (the transport loop, the dispatcher, a trunk's
    /// probe) that stopped before the agent was shut down.
    pub(super) failure: CoreFailure,
    /// Each outbound call's Call-ID and the trunk that carries it.
    pub(super) pins: Arc<DialogPins>,
    /// The node is draining: trunks' OPTIONS and new inbound INVITEs get
    /// 503, so a trunk's failover moves new calls elsewhere.
    pub(super) draining: AtomicBool,
}

impl AgentInner {
    /// A fresh Call-ID for a call on `trunk`, pinned to it: in-dialog
    /// requests for it are heard only from that trunk (see `pinning`).
    pub(crate) fn pin_call(&self, trunk: &Trunk) -> Pinned {
        let number = (self.routes.trunks().iter())
            .position(|t| t.name() == trunk.name())
            .unwrap_or(usize::MAX);
        let call_id = format!("{}@callgate", uuid::Uuid::new_v4().simple());
        self.pins.pin(call_id, number)
    }

    /// Why the trunk's BYE for the pinned call `call_id` said it hung up.
    pub(crate) fn take_bye_reason(&self, call_id: &str) -> Option<TrunkReason> {
        self.pins.take_bye_reason(call_id)
    }

    /// Runs `task` until the agent is shut down; if it stops before,
    /// `SipAgent::failure` says so.
    pub(super) fn spawn_core(&self, part: &'static str, task: impl Future + Send + 'static) {
        let (stopping, failure) = (self.cancel.clone(), self.failure.clone());
        supervise::spawn_core(part, task, stopping, failure);
    }
}
