# Sourced by the benchmarks that run a node on one core
# (scripts/bench-calls.sh, benches/vs-rtpengine.sh): the node under test
# and the load tool beside it.
#
# The node under test, pinned to CPU 1 (one media shard), has its limits
# raised and its demo route leading over SIP to a trunk that the load tool
# plays itself (`--reflect-trunk`): each call's RTP is sent back on a 20 ms
# clock of the call's own, from the load's core (CPU 0), so the node's CPU
# is relay only and the far end adds no tasks of its own there.

bench_listen=127.0.0.1:18080
bench_trunk=127.0.0.1:15098

# Waits up to 10 s for URL/readyz to answer.
bench_wait_ready() {
    for _ in $(seq 100); do
        curl -sf "$1/readyz" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# For the script named $1: checks for two cores, builds the node and the
# load tool, and raises the open-file limit to its maximum.
bench_prepare() {
    if [[ $(nproc) -lt 2 ]]; then
        echo "$1: needs two cores (node on one, load on the other)" >&2
        exit 1
    fi
    scripts/install-build-deps.sh >/dev/null
    cargo build --release --bin callgate --bin callgate-load >&2
    ulimit -n "$(ulimit -Hn)"
}

# Writes the node's config (its route to the load's trunk) into
# $bench_dir, removed when the script exits.
bench_setup() {
    bench_dir=$(mktemp -d)
    trap 'rm -rf "$bench_dir"' EXIT
    cat >"$bench_dir/relay.toml" <<TOML
[sip]
options_interval_secs = 0

[[sip.trunks]]
name = "load-reflector"
address = "$bench_trunk"
codecs = ["PCMU"]

[[sip.routes]]
name = "demo"
trunks = ["load-reflector"]
TOML
}

# Starts the `callgate` in directory $1 as the node under test; sets
# bench_node (its pid) and bench_node_data (its data directory).
bench_start_node() {
    bench_node_data=$(mktemp -d)
    CALLGATE_DATA_DIR=$bench_node_data CALLGATE_HTTP_LISTEN=$bench_listen \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP=10000 \
        CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET=100000 \
        CALLGATE_LIMITS_LOOKUPS_PER_MINUTE_PER_IP=1000000 \
        CALLGATE_HTTP_MAX_CONNECTIONS_PER_IP=4096 \
        CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT=5000 \
        RUST_LOG=warn taskset -c 1 "$1/callgate" serve --config "$bench_dir/relay.toml" \
        >"$bench_node_data/node.log" 2>&1 &
    bench_node=$!
    bench_wait_ready "http://$bench_listen" || {
        echo "bench: the node under test did not start:" >&2
        tail -5 "$bench_node_data/node.log" >&2
        return 1
    }
}

# Prints what the node under test shed on its browser ports, by reason.
bench_shed() {
    curl -sf "http://$bench_listen/metrics" |
        grep '^callgate_packets_dropped_total{leg="browser"' || true
}

# Prints the node under test's latency for transcoded packets over its
# whole run (callgate_relay_transcoded_latency_seconds): for each
# direction, the upper bounds of the buckets holding the median and p99.
bench_transcoded_latency() {
    curl -sf "http://$bench_listen/metrics" | awk '
        /^callgate_relay_transcoded_latency_seconds_bucket/ {
            match($0, /direction="[a-z_]+"/)
            dir = substr($0, RSTART + 11, RLENGTH - 12)
            match($0, /le="[^"]+"/)
            le[dir, ++n[dir]] = substr($0, RSTART + 4, RLENGTH - 5)
            count[dir, n[dir]] = $NF
        }
        END {
            for (dir in n) {
                total = count[dir, n[dir]]
                if (total == 0) continue
                p50 = p99 = ""
                for (i = 1; i <= n[dir]; i++) {
                    if (p50 == "" && count[dir, i] >= 0.5 * total) p50 = le[dir, i]
                    if (p99 == "" && count[dir, i] >= 0.99 * total) p99 = le[dir, i]
                }
                printf "transcoded %-10s %d packets, p50 <= %s s, p99 <= %s s\n", dir, total, p50, p99
            }
        }'
}

bench_stop_node() {
    # The first SIGTERM drains (calls left go on); the second hangs them up.
    kill "$bench_node" 2>/dev/null || true
    sleep 1
    kill "$bench_node" 2>/dev/null || true
    wait "$bench_node" 2>/dev/null || true
    rm -rf "$bench_node_data"
}

# callgate-load on CPU 0, ramping at 50 calls a second.
bench_load() {
    taskset -c 0 target/release/callgate-load --ramp-per-sec 50 "$@"
}

# callgate-load against the node under test, playing its trunk.
bench_load_node() {
    bench_load --node "http://$bench_listen" --widget demo --reflect-trunk "$bench_trunk" "$@"
}
