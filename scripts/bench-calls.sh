#!/usr/bin/env bash
# Calls through a node on one core: for each CALLS given, starts the node
# under test pinned to CPU 1, its demo route leading over SIP to a trunk
# that callgate-load plays itself (each call's RTP sent back on its own
# 20 ms clock), so the node's CPU is relay only; warms it with 50 calls,
# then runs callgate-load pinned to CPU 0 for a 20 s steady window and
# prints its report.
#
#   scripts/bench-calls.sh [--node-bin DIR] [--flood-pps N] [--opus-calls N] CALLS...
#
# --node-bin runs the `callgate` binary in DIR as the node under test
# instead of this checkout's release build (to compare two builds with the
# same load tool). --flood-pps runs the steady window under a
# flood of N junk datagrams a second at the browser ports from many
# loopback addresses (callgate-load's --flood-pps), on the load's core, and
# prints the node's shed counters after the report.
# --opus-calls makes N of the calls offer Opus only, so the node
# transcodes them (callgate-load's --opus-calls); the node's latency for
# those packets is printed after the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

node_bin=target/release
flood_pps=0
opus_calls=0
while [[ ${1:-} == --* ]]; do
    case $1 in
    --node-bin) node_bin=$2 ;;
    --flood-pps) flood_pps=$2 ;;
    --opus-calls) opus_calls=$2 ;;
    *) break ;;
    esac
    shift 2
done
if [[ $# -eq 0 ]]; then
    echo "usage: scripts/bench-calls.sh [--node-bin DIR] [--flood-pps N] [--opus-calls N] CALLS..." >&2
    exit 64
fi
source scripts/lib/bench-nodes.sh
bench_prepare bench-calls
bench_setup

for calls in "$@"; do
    bench_start_node "$node_bin"
    load() {
        bench_load_node "$@"
    }
    load --calls 50 --duration 3 >/dev/null
    echo "== $calls calls"
    if [[ $flood_pps -gt 0 ]]; then
        load --calls "$calls" --duration 20 --node-pid "$bench_node" \
            --flood-pps "$flood_pps" || true
        bench_shed
    else
        load --calls "$calls" --opus-calls "$opus_calls" --duration 20 \
            --node-pid "$bench_node" || true
    fi
    if [[ $opus_calls -gt 0 ]]; then
        bench_transcoded_latency
    fi
    bench_stop_node
done
