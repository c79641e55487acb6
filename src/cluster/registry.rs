//! The node registry: what each node announces of itself, and how.
//!
//! Each node writes its [`NodeEntry`] (its state, calls, shards and CPU)
//! under its own key with a time to live
//! of one lease (`cluster.lease_secs`), every heartbeat, and adds its id to
//! the set of known nodes scored by that heartbeat's Redis time. A node
//! whose entry has expired is stale: it is not eligible for anything, and
//! (once a survivor acts on it) its calls are lost. A node that stops
//! cleanly removes both, so leaving is never mistaken for dying.

use redis::Script;
use serde::{Deserialize, Serialize};

/// Writes a node's entry and heartbeat.
/// KEYS: the node set, the node's entry. ARGV: entry JSON, TTL ms, node id.
/// Returns Redis's time in ms.
const HEARTBEAT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
return now
";

pub fn heartbeat_script() -> Script {
    Script::new(HEARTBEAT_SCRIPT)
}

/// Whether a node takes new calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Serving,
    /// Calls in progress go on; new ones go elsewhere.
    Draining,
}

/// One node as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: String,
    pub region: String,
    /// Where browsers reach the node's HTTP.
    pub public_url: String,
    /// Where the other nodes reach it, to hand it calls.
    pub internal_url: String,
    pub state: NodeState,
    /// Calls in progress on the node.
    pub calls: u32,
    /// Its media shards (threads, one per core by default).
    pub shards: u32,
    /// Its process's CPU over its last heartbeat, in % of one core (two
    /// cores busy read 200).
    #[serde(default)]
    pub cpu_percent: u32,
    pub version: String,
}

impl NodeEntry {
    /// The entry as written, or `None` for what is not one (written by
    /// another version, or not by a node): such a node counts as stale.
    pub fn parse(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written_and_junk_is_no_entry() {
        let entry = NodeEntry {
            id: "node-a".into(),
            region: "eu".into(),
            public_url: "https://a.example".into(),
            internal_url: "http://10.0.0.1:8080".into(),
            state: NodeState::Draining,
            calls: 3,
            shards: 2,
            cpu_percent: 140,
            version: "0.1.0".into(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(r#""state":"draining""#), "{json}");
        assert_eq!(NodeEntry::parse(&json), Some(entry));
        assert_eq!(NodeEntry::parse("{}"), None);
        // An entry from a node that does not announce its CPU yet.
        let older = json.replace(r#","cpu_percent":140"#, "");
        assert_ne!(older, json);
        assert_eq!(NodeEntry::parse(&older).map(|e| e.cpu_percent), Some(0));
        assert_eq!(NodeEntry::parse("not json"), None);
    }
}
