//! The calls a node carries, kept in Redis for two uses: any node can find
//! which node holds a call (to forward the call's hang-up or events socket
//! there), and the node that outlives a dead one can write that node's
//! unfinished calls' records.
//!
//! Each node keeps one hash, `callgate:calls:<node>`: one field per call
//! in progress, whose value is the run of the node that placed it and the
//! call's record as it would read if the node died now (JSON, opaque
//! here). The node writes a call's field when the call starts and again
//! when it is answered, and deletes it when the call ends.
//!
//! **Node loss.** A node whose heartbeat is older than one lease is lost.
//! The first survivor to notice takes it out of the node set and takes its
//! hash, both in one script, so exactly one survivor finalises each lost
//! call. A node restarted under the same id before any survivor noticed
//! takes its own earlier run's calls the same way when it first reaches
//! Redis.
//!
//! **Healing.** The node's own table ([`CallTable`]) is the truth: after
//! Redis was unreachable, the node rewrites its hash from it, as it does
//! its leases.
//!
//! No I/O here: the table, the scripts, and how their answers read.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::domain::CallId;
use redis::Script;
use tokio::sync::Notify;

/// Takes a lost node's calls: removes the first node of the node set whose
/// heartbeat is older than the lease, and its hash of calls.
/// KEYS: the node set. ARGV: lease ms, the calls key prefix.
/// Returns `{}` when no node is lost, else `{node, last seen ms, field,
/// value, field, value, ...}`.
const REAP_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - tonumber(ARGV[1])
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', cutoff), 'WITHSCORES', 'LIMIT', 0, 1)
if #lost == 0 then
  return {}
end
local node, seen = lost[1], lost[2]
redis.call('ZREM', KEYS[1], node)
local key = ARGV[2] .. node
local calls = redis.call('HGETALL', key)
redis.call('DEL', key)
local reply = {node, seen}
for i = 1, #calls do
  reply[#reply + 1] = calls[i]
end
return reply
";

/// Takes a node's own hash whole, with its last heartbeat, to write back
/// what its table holds.
/// KEYS: the node set, the node's calls. ARGV: node id.
/// Returns `{last seen ms or '', field, value, ...}`.
const TAKE_OWN_SCRIPT: &str = r"
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
local calls = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
local reply = {seen or ''}
for i = 1, #calls do
  reply[#reply + 1] = calls[i]
end
return reply
";

pub fn reap_script() -> Script {
    Script::new(REAP_SCRIPT)
}

pub fn take_own_script() -> Script {
    Script::new(TAKE_OWN_SCRIPT)
}

/// A call of a lost node: its record as the node left it, to be ended as
/// lost at `last_seen_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCall {
    pub node_id: String,
    pub call_id: CallId,
    /// The node's last heartbeat, Redis time in unix ms.
    pub last_seen_ms: i64,
    /// What the node wrote for the call (JSON).
    pub record: String,
}

/// One field's value: `<run>:<record>`, the run in 16 hex digits.
pub fn field_value(run: u64, record: &str) -> String {
    format!("{run:016x}:{record}")
}

/// The run and record of a field's value; `None` for what no node wrote.
fn parse_value(value: &str) -> Option<(u64, &str)> {
    let (run, record) = value.split_once(':')?;
    let run = u64::from_str_radix(run, 16).ok()?;
    Some((run, record))
}

/// Reads a reap's reply: the lost node's calls, or `None` when no node is
/// lost. Values no node wrote are skipped.
pub fn read_reaped(reply: &[String]) -> Option<Vec<LostCall>> {
    let [node, seen, calls @ ..] = reply else {
        return None;
    };
    let last_seen_ms = seen.parse::<f64>().ok()? as i64;
    let lost = calls
        .chunks_exact(2)
        .filter_map(|pair| {
            let (_, record) = parse_value(&pair[1])?;
            Some(LostCall {
                node_id: node.clone(),
                call_id: pair[0].clone().into(),
                last_seen_ms,
                record: record.to_owned(),
            })
        })
        .collect();
    Some(lost)
}

/// Reads the node's own hash, taken whole: the calls an earlier run of
/// this node left (to finalise as lost). This run's own fields are
/// dropped: the table writes back those still live.
pub fn read_own(node_id: &str, run: u64, reply: &[String]) -> Vec<LostCall> {
    let Some((seen, calls)) = reply.split_first() else {
        return Vec::new();
    };
    let Ok(last_seen) = seen.parse::<f64>() else {
        // No heartbeat on record: nothing to date the calls by, and no
        // earlier run to speak of.
        return Vec::new();
    };
    calls
        .chunks_exact(2)
        .filter_map(|pair| {
            let (written_by, record) = parse_value(&pair[1])?;
            (written_by != run).then(|| LostCall {
                node_id: node_id.to_owned(),
                call_id: pair[0].clone().into(),
                last_seen_ms: last_seen as i64,
                record: record.to_owned(),
            })
        })
        .collect()
}

/// A change to write to the node's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallChange {
    Put { call_id: String, value: String },
    Remove { call_id: String },
}

/// The node's own calls, as it writes them to Redis; see the module
/// documentation.
#[derive(Debug, Default)]
pub struct CallTable {
    live: Mutex<HashMap<String, String>>,
    changes: Mutex<Vec<CallChange>>,
    /// Woken when a change is queued.
    pub changed: Notify,
}

impl CallTable {
    /// Records `call_id`'s field value (on start, and again on answer).
    pub fn put(&self, call_id: &str, value: String) {
        lock(&self.live).insert(call_id.to_owned(), value.clone());
        self.queue(CallChange::Put {
            call_id: call_id.to_owned(),
            value,
        });
    }

    /// Forgets `call_id`: it ended here.
    pub fn remove(&self, call_id: &str) {
        if lock(&self.live).remove(call_id).is_some() {
            self.queue(CallChange::Remove {
                call_id: call_id.to_owned(),
            });
        }
    }

    /// Every call's field value now, to write the hash anew.
    pub fn live(&self) -> Vec<(String, String)> {
        let live = lock(&self.live);
        live.iter()
            .map(|(id, value)| (id.clone(), value.clone()))
            .collect()
    }

    /// The changes queued since the last take, in order.
    pub fn take_changes(&self) -> Vec<CallChange> {
        std::mem::take(&mut *lock(&self.changes))
    }

    fn queue(&self, change: CallChange) {
        lock(&self.changes).push(change);
        self.changed.notify_one();
    }
}

/// Each lock guards one value replaced whole, so a poisoned one is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_reap_reads_each_lost_call_with_its_nodes_last_heartbeat() {
        assert_eq!(read_reaped(&[]), None);
        let reply = strings(&[
            "node-b",
            "1700000000123",
            "call-1",
            &field_value(7, r#"{"a":1}"#),
            "call-2",
            "junk without a run",
        ]);
        let lost = read_reaped(&reply).expect("a lost node");
        assert_eq!(
            lost,
            [LostCall {
                node_id: "node-b".into(),
                call_id: "call-1".into(),
                last_seen_ms: 1_700_000_000_123,
                record: r#"{"a":1}"#.into(),
            }]
        );
    }

    #[test]
    fn a_node_takes_back_only_the_calls_of_its_earlier_runs() {
        let reply = strings(&[
            "5000",
            "mine",
            &field_value(2, "{}"),
            "earlier",
            &field_value(1, r#"{"x":true}"#),
        ]);
        let lost = read_own("node-a", 2, &reply);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].call_id, "earlier");
        assert_eq!(lost[0].last_seen_ms, 5000);
        assert_eq!(lost[0].record, r#"{"x":true}"#);
        // Never seen: no earlier run.
        assert!(
            read_own(
                "node-a",
                2,
                &strings(&["", "earlier", &field_value(1, "{}")])
            )
            .is_empty()
        );
    }

    #[test]
    fn the_table_queues_each_change_and_forgets_an_ended_call_once() {
        let table = CallTable::default();
        table.put("c1", "v1".into());
        table.put("c1", "v2".into());
        table.remove("c1");
        table.remove("c1");
        assert!(table.live().is_empty());
        assert_eq!(
            table.take_changes(),
            [
                CallChange::Put {
                    call_id: "c1".into(),
                    value: "v1".into()
                },
                CallChange::Put {
                    call_id: "c1".into(),
                    value: "v2".into()
                },
                CallChange::Remove {
                    call_id: "c1".into()
                },
            ]
        );
        assert!(table.take_changes().is_empty());
    }
}
