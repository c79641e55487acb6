#!/usr/bin/env bash
# Calls through a node on one core: for each CALLS given, starts a node on
# its embedded default (echo trunk, limits raised) pinned to CPU 1, warms it
# with 50 calls, then runs callgate-load pinned to CPU 0 for a 20 s steady
# window and prints its report.
#
#   scripts/bench-calls.sh [--node-bin DIR] CALLS...
#
# --node-bin runs the `callgate` binary in DIR instead of this checkout's
# release build (to compare two builds with the same load tool).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

node_bin=target/release
if [[ ${1:-} == --node-bin ]]; then
    node_bin=$2
    shift 2
fi
if [[ $# -eq 0 ]]; then
    echo "usage: scripts/bench-calls.sh [--node-bin DIR] CALLS..." >&2
    exit 64
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "bench-calls: needs two cores (node on one, load on the other)" >&2
    exit 1
fi

scripts/install-build-deps.sh >/dev/null
cargo build --release --bin callgate --bin callgate-load >&2
ulimit -n "$(ulimit -Hn)"
listen=127.0.0.1:18080

for calls in "$@"; do
    data=$(mktemp -d)
    CALLGATE_DATA_DIR=$data CALLGATE_HTTP_LISTEN=$listen \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP=10000 \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET=100000 \
        CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT=5000 \
        RUST_LOG=warn taskset -c 1 "$node_bin/callgate" serve >"$data/node.log" 2>&1 &
    node=$!
    for _ in $(seq 100); do
        curl -sf "http://$listen/readyz" >/dev/null && break
        sleep 0.1
    done
    load() {
        taskset -c 0 target/release/callgate-load --node "http://$listen" \
            --widget demo --ramp-per-sec 50 "$@"
    }
    load --calls 50 --duration 3 >/dev/null
    echo "== $calls calls"
    load --calls "$calls" --duration 20 --node-pid "$node" || true
    kill "$node"
    wait "$node" 2>/dev/null || true
    rm -rf "$data"
done
