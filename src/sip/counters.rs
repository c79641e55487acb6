//! [`SipCounters`]: what the SIP agent saw, as atomics the metrics read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the agent saw; cheap to read for metrics.
#[derive(Debug, Default)]
pub struct SipCounters {
    pub invites_sent: AtomicU64,
    /// Final and provisional responses to our INVITEs, by class 1..=6.
    pub responses_by_class: [AtomicU64; 6],
    pub invite_timeouts: AtomicU64,
    pub transport_errors: AtomicU64,
    pub options_probe_failures: AtomicU64,
    pub inbound_refused: AtomicU64,
    /// Datagrams and connections from addresses that are neither a trunk,
    /// a trunk's proxy nor a trusted network, dropped unread.
    pub unknown_sources: AtomicU64,
    /// Requests naming a call in progress from a trusted address that is
    /// not that call's trunk (nor its proxy, nor a trusted network):
    /// answered as naming no call (see `pinning`).
    pub foreign_dialog_requests: AtomicU64,
    /// TCP/TLS connections closed unread: their source already held its
    /// cap (see `admission`).
    pub connections_refused: AtomicU64,
    /// Requests dropped unread: their source had sent its budget.
    pub requests_shed: AtomicU64,
}

impl SipCounters {
    pub(crate) fn count_response(&self, code: u16) {
        let class = usize::from(code / 100).clamp(1, 6) - 1;
        self.responses_by_class[class].fetch_add(1, Ordering::Relaxed);
    }
}
