//! Trunk health: up or down from consecutive probe and call failures.
//!
//! Pure bookkeeping, no I/O: the OPTIONS pinger and the call attempts feed
//! outcomes in, routing reads `is_up`. A trunk goes down after
//! `down_after` consecutive failures and comes back on the first success, so
//! one lost UDP packet never takes a trunk out of service.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Health of one trunk, shared between the pinger and the call path.
#[derive(Debug)]
pub struct TrunkHealth {
    down_after: u32,
    consecutive_failures: AtomicU32,
    up: AtomicBool,
}

/// A change of state worth logging once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    WentDown,
    CameUp,
}

impl TrunkHealth {
    /// A trunk starts up: a node must be able to place calls before the first probe.
    pub fn new(down_after: u32) -> Self {
        Self {
            down_after: down_after.max(1),
            consecutive_failures: AtomicU32::new(0),
            up: AtomicBool::new(true),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Record a success (any answer to a probe, or a call the trunk carried).
    pub fn handle_success(&self) -> Option<HealthChange> {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let was_up = self.up.swap(true, Ordering::Relaxed);
        (!was_up).then_some(HealthChange::CameUp)
    }

    /// Record a failure (no answer, a transport error, a 503).
    pub fn handle_failure(&self) -> Option<HealthChange> {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.down_after {
            let was_up = self.up.swap(false, Ordering::Relaxed);
            return was_up.then_some(HealthChange::WentDown);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_after_consecutive_failures_only() {
        let h = TrunkHealth::new(3);
        assert_eq!(h.handle_failure(), None);
        assert_eq!(h.handle_failure(), None);
        assert_eq!(h.handle_success(), None);
        assert_eq!(h.handle_failure(), None);
        assert_eq!(h.handle_failure(), None);
        assert!(h.is_up());
        assert_eq!(h.handle_failure(), Some(HealthChange::WentDown));
        assert!(!h.is_up());
        assert_eq!(h.handle_failure(), None, "already down: no second change");
    }

    #[test]
    fn one_success_brings_it_back() {
        let h = TrunkHealth::new(1);
        assert_eq!(h.handle_failure(), Some(HealthChange::WentDown));
        assert_eq!(h.handle_success(), Some(HealthChange::CameUp));
        assert!(h.is_up());
    }
}
