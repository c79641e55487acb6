#!/usr/bin/env bash
# Calls through a node on one core: for each CALLS given, starts the node
# under test pinned to CPU 1, its demo route leading over SIP to a second
# node that plays the far end (its built-in echo trunk, pinned to CPU 0), so
# the first node's CPU is relay only; warms it with 50 calls, then runs
# callgate-load pinned to CPU 0 for a 20 s steady window and prints its
# report.
#
#   scripts/bench-calls.sh [--node-bin DIR] [--flood-pps N] CALLS...
#
# --node-bin runs the `callgate` binary in DIR as the node under test
# instead of this checkout's release build (to compare two builds with the
# same load tool and far end). --flood-pps runs the steady window under a
# flood of N junk datagrams a second at the browser ports (callgate-load's
# --flood-pps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

node_bin=target/release
flood_pps=0
while [[ ${1:-} == --* ]]; do
    case $1 in
    --node-bin) node_bin=$2 ;;
    --flood-pps) flood_pps=$2 ;;
    *) break ;;
    esac
    shift 2
done
if [[ $# -eq 0 ]]; then
    echo "usage: scripts/bench-calls.sh [--node-bin DIR] [--flood-pps N] CALLS..." >&2
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

# The far end: this checkout's node on its embedded default (echo trunk),
# on ports of its own.
far=$(mktemp -d)
CALLGATE_DATA_DIR=$far CALLGATE_HTTP_LISTEN=127.0.0.1:18081 \
    CALLGATE_SIP_LISTEN_UDP=127.0.0.1:15062 \
    CALLGATE_ECHO_TRUNK_LISTEN=127.0.0.1:15098 \
    CALLGATE_WEBRTC_LISTEN=127.0.0.1:41000 \
    CALLGATE_MEDIA_RTP_PORT_MIN=30000 CALLGATE_MEDIA_RTP_PORT_MAX=39999 \
    RUST_LOG=warn taskset -c 0 target/release/callgate serve >"$far/node.log" 2>&1 &
far_node=$!
trap 'kill $far_node 2>/dev/null; rm -rf "$far"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:18081/readyz" >/dev/null && break
    sleep 0.1
done
cat >"$far/relay.toml" <<'TOML'
[sip]
options_interval_secs = 0

[[sip.trunks]]
name = "far-echo"
address = "127.0.0.1:15098"
codecs = ["PCMU"]

[[sip.routes]]
name = "demo"
trunks = ["far-echo"]
TOML

for calls in "$@"; do
    data=$(mktemp -d)
    CALLGATE_DATA_DIR=$data CALLGATE_HTTP_LISTEN=$listen \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP=10000 \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET=100000 \
        CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT=5000 \
        RUST_LOG=warn taskset -c 1 "$node_bin/callgate" serve --config "$far/relay.toml" \
        >"$data/node.log" 2>&1 &
    node=$!
    for _ in $(seq 100); do
        curl -sf "http://$listen/readyz" >/dev/null && break
        sleep 0.1
    done
    load() {
        taskset -c 0 target/release/callgate-load --node "http://$listen" \
            --widget demo --ramp-per-sec 50 "$@"
    }
    curl -sf "http://$listen/readyz" >/dev/null || { echo "bench-calls: the node did not start:" >&2; tail -5 "$data/node.log" >&2; }
    load --calls 50 --duration 3 >/dev/null
    echo "== $calls calls"
    load --calls "$calls" --duration 20 --node-pid "$node" --flood-pps "$flood_pps" || true
    kill "$node"
    wait "$node" 2>/dev/null || true
    rm -rf "$data"
done
