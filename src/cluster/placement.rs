//! Which node takes a new call: "the less loaded of two random choices".
//!
//! The candidates are the fresh registry entries of the node's region that
//! are serving (not draining). Two of them are drawn at random and the one
//! with fewer calls wins; a tie keeps the call on the node that received
//! it, which saves a hop. A node's load is the calls its last heartbeat
//! announced plus the calls this node has placed on it since (the ramp-up
//! penalty): without it, a burst between two heartbeats would pile onto
//! whichever node looked emptiest. Calls kept count too, against the node
//! itself.
//!
//! Two random choices rather than the global minimum: every node decides
//! alone on a registry a heartbeat old, and the minimum would send all of
//! them to the same node at once.
//!
//! Pure: the caller passes the entries, the placements since, and the
//! random draws.

use std::collections::HashMap;

use super::registry::{NodeEntry, NodeState};

/// The node that should take a new call received by `me` (`me` itself
/// included), or `None` when no node is eligible. `draw(n)` returns a
/// random index below `n`.
pub fn choose<'a>(
    me: &str,
    region: &str,
    nodes: &'a [NodeEntry],
    placed_since: &HashMap<String, u32>,
    mut draw: impl FnMut(usize) -> usize,
) -> Option<&'a NodeEntry> {
    let eligible: Vec<&NodeEntry> = nodes
        .iter()
        .filter(|node| node.state == NodeState::Serving && node.region == region)
        .collect();
    let load = |node: &NodeEntry| {
        let placed = placed_since.get(&node.id).copied().unwrap_or(0);
        u64::from(node.calls) + u64::from(placed)
    };
    let winner = match eligible.len() {
        0 => return None,
        1 => eligible[0],
        n => {
            let first = draw(n);
            // A second draw among the others, so the two differ.
            let second = (first + 1 + draw(n - 1)) % n;
            let (a, b) = (eligible[first], eligible[second]);
            match load(a).cmp(&load(b)) {
                std::cmp::Ordering::Less => a,
                std::cmp::Ordering::Greater => b,
                std::cmp::Ordering::Equal if b.id == me => b,
                std::cmp::Ordering::Equal => a,
            }
        }
    };
    Some(winner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, calls: u32, state: NodeState, region: &str) -> NodeEntry {
        NodeEntry {
            id: id.into(),
            region: region.into(),
            public_url: format!("http://{id}"),
            internal_url: format!("http://{id}"),
            state,
            calls,
            shards: 1,
            cpu_percent: 0,
            version: "0".into(),
        }
    }

    fn serving(id: &str, calls: u32) -> NodeEntry {
        node(id, calls, NodeState::Serving, "eu")
    }

    fn chosen<'a>(
        me: &str,
        nodes: &'a [NodeEntry],
        placed: &HashMap<String, u32>,
        draw: impl FnMut(usize) -> usize,
    ) -> Option<&'a str> {
        choose(me, "eu", nodes, placed, draw).map(|node| node.id.as_str())
    }

    #[test]
    fn of_two_nodes_the_less_loaded_takes_the_call_and_a_tie_stays() {
        let nodes = [serving("a", 5), serving("b", 2)];
        let none = HashMap::new();
        for first in 0..2 {
            assert_eq!(chosen("a", &nodes, &none, |_| first), Some("b"));
            assert_eq!(chosen("b", &nodes, &none, |_| first), Some("b"));
        }
        let tied = [serving("a", 3), serving("b", 3)];
        assert_eq!(chosen("a", &tied, &none, |_| 0), Some("a"));
        assert_eq!(chosen("b", &tied, &none, |_| 1), Some("b"));
    }

    #[test]
    fn calls_placed_since_the_heartbeat_count_against_a_node() {
        let nodes = [serving("a", 1), serving("b", 0)];
        let mut placed = HashMap::new();
        assert_eq!(chosen("a", &nodes, &placed, |_| 0), Some("b"));
        placed.insert("b".to_owned(), 2);
        assert_eq!(chosen("a", &nodes, &placed, |_| 0), Some("a"));
    }

    #[test]
    fn draining_nodes_and_other_regions_are_never_chosen() {
        let nodes = [
            node("a", 9, NodeState::Serving, "eu"),
            node("b", 0, NodeState::Draining, "eu"),
            node("c", 0, NodeState::Serving, "us"),
        ];
        let none = HashMap::new();
        for first in 0..3 {
            assert_eq!(chosen("a", &nodes, &none, |n| first % n), Some("a"));
        }
        // A draining node that received the call hands it to one serving.
        assert_eq!(chosen("b", &nodes, &none, |_| 0), Some("a"));
        assert_eq!(chosen("x", &[], &none, |_| 0), None);
    }

    #[test]
    fn the_two_draws_always_differ() {
        let nodes: Vec<NodeEntry> = (0..4).map(|i| serving(&format!("n{i}"), i)).collect();
        let none = HashMap::new();
        // Both draws pick index 0 of their range: n0 and then n1, never n0
        // twice; n0 has the fewest calls.
        assert_eq!(chosen("n3", &nodes, &none, |_| 0), Some("n0"));
        // first = 3 (n3), second = (3 + 1 + 2) % 4 = 2 (n2): n2 wins.
        assert_eq!(chosen("n0", &nodes, &none, |n| n - 1), Some("n2"));
    }
}
