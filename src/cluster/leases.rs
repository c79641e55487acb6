//! This node's leases on cluster-wide concurrency slots, as the node itself
//! remembers them.
//!
//! A call admitted in cluster mode holds a [`Lease`]: one member, named
//! after the node and the lease, in the Redis sorted set of each slot it
//! takes (its tenant's, and its widget's and its number's where those have
//! a limit). Redis forgets a lease unless its node renews it, so the slots
//! of a node that dies free themselves. The node renews from this table,
//! not from Redis, which is what heals the cluster after Redis lost its
//! data or was unreachable: every lease still held here is written back,
//! including those of calls admitted on local limits while Redis was away.
//!
//! Dropping a [`Lease`] takes it out of the table at once (it is never
//! renewed again) and queues its release, which the cluster task sends.
//!
//! No I/O: the cluster task reads [`LeaseTable::live`] and
//! [`LeaseTable::take_released`] and talks to Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// One lease as Redis holds it: its member name, in each of these slot keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEntry {
    pub member: String,
    pub keys: Vec<String>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct LeaseTable {
    /// Tells members of this run of the node apart from any earlier run's.
    owner: String,
    next: AtomicU64,
    live: Mutex<HashMap<u64, LeaseEntry>>,
    released: Mutex<Vec<LeaseEntry>>,
    /// Woken when a release is queued.
    pub released_ready: Notify,
}

impl LeaseTable {
    /// Members are named `<node>:<run>:<n>`; `run` is unique per start.
    pub fn new(node: &str, run: u64) -> Arc<Self> {
        Arc::new(Self {
            owner: format!("{node}:{run:016x}"),
            next: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            released: Mutex::new(Vec::new()),
            released_ready: Notify::new(),
        })
    }

    /// A new lease on the slots of `keys`, held (and renewed) until dropped.
    pub fn lease(self: &Arc<Self>, keys: Vec<String>) -> Lease {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = LeaseEntry {
            member: format!("{}:{id}", self.owner),
            keys,
        };
        lock(&self.live).insert(id, entry.clone());
        Lease {
            id,
            entry,
            table: self.clone(),
        }
    }

    /// Every lease held now, to renew.
    pub fn live(&self) -> Vec<LeaseEntry> {
        lock(&self.live).values().cloned().collect()
    }

    /// Leases held now.
    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leases dropped since the last call, to release in Redis.
    pub fn take_released(&self) -> Vec<LeaseEntry> {
        std::mem::take(&mut *lock(&self.released))
    }

    fn release(&self, id: u64) {
        if let Some(entry) = lock(&self.live).remove(&id) {
            lock(&self.released).push(entry);
            self.released_ready.notify_one();
        }
    }
}

/// A call's hold on its cluster-wide slots; see the module documentation.
#[must_use = "the slots are released as soon as the lease is dropped"]
#[derive(Debug)]
pub struct Lease {
    id: u64,
    entry: LeaseEntry,
    table: Arc<LeaseTable>,
}

impl Lease {
    pub fn entry(&self) -> &LeaseEntry {
        &self.entry
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

/// Every update is a single insert, remove or swap, so a poisoned lock
/// still guards a consistent table.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_while_held_and_released_once_when_dropped() {
        let table = LeaseTable::new("node-a", 7);
        let first = table.lease(vec!["k1".into(), "k2".into()]);
        let second = table.lease(vec!["k1".into()]);
        assert_ne!(first.entry().member, second.entry().member);
        assert!(first.entry().member.starts_with("node-a:0000000000000007:"));
        assert_eq!(table.len(), 2);
        drop(first);
        let live = table.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0], *second.entry());
        let released = table.take_released();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].keys, ["k1", "k2"]);
        assert!(table.take_released().is_empty(), "released only once");
    }

    #[test]
    fn runs_of_one_node_never_share_a_member() {
        let earlier = LeaseTable::new("node-a", 1).lease(vec![]);
        let later = LeaseTable::new("node-a", 2).lease(vec![]);
        assert_ne!(earlier.entry().member, later.entry().member);
    }
}
