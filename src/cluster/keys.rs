//! The names of everything the cluster keeps in Redis, in one place.
//!
//! Every key starts with `callgate:`, so a Redis shared with other
//! software can be told apart. A visitor's address never becomes part of a
//! key as it is: it is keyed by an HMAC under the cluster secret, which
//! every node shares and Redis never sees, so the keys say nothing of who
//! called. Tenant, widget and number ids are the operator's own opaque ids.
//!
//! Pure: no I/O.

use std::net::IpAddr;

use hmac::{KeyInit as _, Mac as _};

const PREFIX: &str = "callgate";

/// The sorted set of every node that has announced itself, scored by its
/// last heartbeat (Redis time, milliseconds).
pub fn nodes() -> String {
    format!("{PREFIX}:nodes")
}

/// One node's registry entry (JSON), which expires unless renewed.
pub fn node(id: &str) -> String {
    format!("{PREFIX}:node:{id}")
}

/// The hash of one node's calls in progress ([`super::calls`]).
pub fn calls(node_id: &str) -> String {
    format!("{}{node_id}", calls_prefix())
}

/// What [`calls`] puts before a node's id.
pub fn calls_prefix() -> String {
    format!("{PREFIX}:calls:")
}

/// What a concurrency limit counts: calls in progress per tenant, per
/// widget or per number, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotScope {
    Tenant,
    Widget,
    Number,
}

impl SlotScope {
    fn as_str(self) -> &'static str {
        match self {
            SlotScope::Tenant => "tenant",
            SlotScope::Widget => "widget",
            SlotScope::Number => "number",
        }
    }
}

/// The sorted set of the leases on `scope`'s slots for `id`, each scored by
/// when it expires.
pub fn slots(scope: SlotScope, id: &str) -> String {
    format!("{PREFIX}:slots:{}:{id}", scope.as_str())
}

/// The rate limiter's state (its theoretical arrival time) for the calls
/// through one widget.
pub fn widget_rate(widget_id: &str) -> String {
    format!("{PREFIX}:rate:widget:{widget_id}")
}

/// Keys a client's address (already grouped by the caller, e.g. to its
/// IPv6 /64) without revealing it.
#[derive(Clone)]
pub struct AddressKeys {
    mac: hmac::Hmac<sha2::Sha256>,
}

impl AddressKeys {
    /// Keyed by the cluster secret, which every node must share for their
    /// keys to agree.
    pub fn new(secret: &[u8]) -> Self {
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
            .expect("HMAC takes a key of any length");
        Self { mac }
    }

    /// The rate limiter's state for the calls from `client`.
    pub fn client_rate(&self, client: IpAddr) -> String {
        let mut mac = self.mac.clone();
        match client {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let digest = mac.finalize().into_bytes();
        // 128 bits: collisions between clients are out of reach.
        let id = hex::encode(&digest[..16]);
        format!("{PREFIX}:rate:client:{id}")
    }
}

impl std::fmt::Debug for AddressKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressKeys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_key_names_no_address_and_depends_on_the_secret() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let key = AddressKeys::new(b"one secret").client_rate(ip);
        assert!(key.starts_with("callgate:rate:client:"));
        assert!(!key.contains("203") && !key.contains("113"), "{key}");
        assert_eq!(key, AddressKeys::new(b"one secret").client_rate(ip));
        assert_ne!(key, AddressKeys::new(b"another").client_rate(ip));
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        assert_ne!(key, AddressKeys::new(b"one secret").client_rate(other));
    }

    #[test]
    fn slot_keys_are_apart_per_scope() {
        assert_eq!(slots(SlotScope::Tenant, "t1"), "callgate:slots:tenant:t1");
        assert_ne!(slots(SlotScope::Widget, "x"), slots(SlotScope::Number, "x"));
    }
}
