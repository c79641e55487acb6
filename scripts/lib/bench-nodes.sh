# Sourced by the benchmarks that run a node on one core
# (scripts/bench-calls.sh, benches/vs-rtpengine.sh): the far end, the node
# under test, and the load tool pinned beside the far end.
#
# The far end is this checkout's node on its embedded default (its echo
# trunk) on ports of its own, pinned to CPU 0 with the load. The node under
# test, pinned to CPU 1 (one media shard), has its limits raised and its
# demo route leading over SIP to the far end's echo trunk, so its CPU is
# relay only.

bench_listen=127.0.0.1:18080

# Waits up to 10 s for URL/readyz to answer.
bench_wait_ready() {
    for _ in $(seq 100); do
        curl -sf "$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Starts the far end; sets bench_far (its directory) and bench_far_node
# (its pid) and arranges for both to go when the script exits.
bench_start_far_end() {
    bench_far=$(mktemp -d)
    CALLGATE_DATA_DIR=$bench_far CALLGATE_HTTP_LISTEN=127.0.0.1:18081 \
        CALLGATE_SIP_LISTEN_UDP=127.0.0.1:15062 \
        CALLGATE_ECHO_TRUNK_LISTEN=127.0.0.1:15098 \
        CALLGATE_WEBRTC_LISTEN=127.0.0.1:41000 \
        CALLGATE_MEDIA_RTP_PORT_MIN=30000 CALLGATE_MEDIA_RTP_PORT_MAX=39999 \
        RUST_LOG=warn taskset -c 0 target/release/callgate serve >"$bench_far/node.log" 2>&1 &
    bench_far_node=$!
    trap 'kill $bench_far_node 2>/dev/null; rm -rf "$bench_far"' EXIT
    bench_wait_ready http://127.0.0.1:18081 || {
        echo "bench: the far-end node did not start:" >&2
        tail -5 "$bench_far/node.log" >&2
        return 1
    }
    cat >"$bench_far/relay.toml" <<'TOML'
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
}

# Starts the `callgate` in directory $1 as the node under test; sets
# bench_node (its pid) and bench_node_data (its data directory).
bench_start_node() {
    bench_node_data=$(mktemp -d)
    CALLGATE_DATA_DIR=$bench_node_data CALLGATE_HTTP_LISTEN=$bench_listen \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP=10000 \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET=100000 \
        CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT=5000 \
        RUST_LOG=warn taskset -c 1 "$1/callgate" serve --config "$bench_far/relay.toml" \
        >"$bench_node_data/node.log" 2>&1 &
    bench_node=$!
    bench_wait_ready "http://$bench_listen" || {
        echo "bench: the node under test did not start:" >&2
        tail -5 "$bench_node_data/node.log" >&2
        return 1
    }
}

bench_stop_node() {
    kill "$bench_node" 2>/dev/null || true
    wait "$bench_node" 2>/dev/null || true
    rm -rf "$bench_node_data"
}

# callgate-load pinned beside the far end, ramping at 50 calls a second.
bench_load() {
    taskset -c 0 target/release/callgate-load --ramp-per-sec 50 "$@"
}
