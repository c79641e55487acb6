#!/usr/bin/env bash
# callgate beside rtpengine, the reference media relay, in one run: for
# each CALLS given, the same calls (PCMU, 20 ms, 50 packets a second each
# way) through rtpengine and then through a callgate node, each pinned in
# turn to CPU 1 with the load on CPU 0, and one table row comparing them.
#
#   benches/vs-rtpengine.sh [CALLS...]     (default: 250 500 1000 1500)
#
# It prints a second table: the node's own relay latency each way, and
# how late the load's sends left their 20 ms clocks in both runs.
#
# - rtpengine: Debian's `rtpengine-daemon` (installed if missing), in user
#   space (`--table=-1`), one worker thread, calls set up over its ng
#   protocol by `callgate-load --rtpengine`. The visitor's leg is SDES-SRTP
#   (AES_CM_128_HMAC_SHA1_80), the trunk's leg plain RTP, reflected by the
#   load tool: the closest match to callgate's DTLS-SRTP to RTP.
# - callgate: the node under test relays to a SIP trunk that the load tool
#   plays, reflecting each call's RTP, as in scripts/bench-calls.sh.
#
# Both ways the load's calls and the far end share one core, each on a
# thread of the load tool, and every packet crosses the relay twice.
#
# Each relay is warmed with 50 calls, then measured over a 20 s steady
# window. CPU per relayed packet is the relay's user + system time over
# the window divided by the packets it relayed (each direction counts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -eq 0 ]]; then
    set -- 250 500 1000 1500
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "vs-rtpengine: needs two cores (relay on one, load on the other)" >&2
    exit 1
fi
if ! command -v rtpengine >/dev/null; then
    as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    "${as_root[@]}" apt-get update >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends rtpengine-daemon >/dev/null
fi

scripts/install-build-deps.sh >/dev/null
cargo build --release --bin callgate --bin callgate-load >&2
ulimit -n "$(ulimit -Hn)"
source scripts/lib/bench-nodes.sh
bench_setup
results=$(mktemp -d)
trap 'kill ${rtpengine:-} 2>/dev/null || true; rm -rf "$bench_dir" "$results"' EXIT

ng=127.0.0.1:22222
ng_ping() {
    python3 - "$ng" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(b"1 d7:command4:pinge", (host, int(port)))
sys.exit(0 if b"pong" in s.recv(100) else 1)
PY
}

run_rtpengine() {
    local calls=$1
    taskset -c 1 rtpengine --foreground --table=-1 --interface=127.0.0.1 \
        --listen-ng=$ng --num-threads=1 --port-min=50000 --port-max=59999 \
        --log-level=4 --log-stderr >"$results/rtpengine.log" 2>&1 &
    rtpengine=$!
    for _ in $(seq 50); do ng_ping 2>/dev/null && break; sleep 0.1; done
    bench_load --rtpengine $ng --calls 50 --duration 3 >/dev/null || true
    bench_load --rtpengine $ng --calls "$calls" --duration 20 --node-pid "$rtpengine" \
        --json >"$results/rtpengine-$calls.json" || true
    kill "$rtpengine"
    wait "$rtpengine" 2>/dev/null || true
    rtpengine=
}

run_callgate() {
    local calls=$1
    bench_start_node target/release
    bench_load_node --calls 50 --duration 3 >/dev/null || true
    bench_load_node --calls "$calls" --duration 20 --node-pid "$bench_node" --json \
        >"$results/callgate-$calls.json" || true
    bench_stop_node
}

row() {
    jq -rn --slurpfile c "$results/callgate-$1.json" --slurpfile r "$results/rtpengine-$1.json" '
        def f(x; d): if x == null then "n/a" else (x * pow(10; d) | round / pow(10; d) | tostring) end;
        $c[0] as $c | $r[0] as $r |
        "| \($c.calls) | \(f($c.node_cpu_us_per_packet; 1)) µs | \(f($r.node_cpu_us_per_packet; 1)) µs | " +
        (if $c.node_cpu_us_per_packet and $r.node_cpu_us_per_packet
         then f($c.node_cpu_us_per_packet / $r.node_cpu_us_per_packet; 2) else "n/a" end) +
        " | \(f($c.relay_packets / $c.steady_seconds; -2)) / \(f($r.relay_packets / $r.steady_seconds; -2))" +
        " | \(f($c.loss_percent; 3)) % / \(f($r.loss_percent; 3)) %" +
        " | \(f($c.echo_rtt_p99_ms; 2)) / \(f($r.echo_rtt_p99_ms; 2)) ms" +
        " | \(f($c.node_memory_per_call_kib; 1)) / \(f($r.node_memory_per_call_kib; 1)) KiB |"'
}

# The node's own relay latency (rtpengine has no such figure), and how
# late the load's sends left their clocks in each run.
latency_row() {
    jq -rn --slurpfile c "$results/callgate-$1.json" --slurpfile r "$results/rtpengine-$1.json" '
        def us(x): if x == null then "n/a" else "\(x | round) µs" end;
        $c[0] as $c | $r[0] as $r |
        "| \($c.calls) | \(us($c.relay_to_trunk_p50_us)) / \(us($c.relay_to_trunk_p99_us))" +
        " | \(us($c.relay_to_browser_p50_us)) / \(us($c.relay_to_browser_p99_us))" +
        " | \(us($c.load_lag_p50_us)) / \(us($c.load_lag_p99_us)) ; \(us($r.load_lag_p50_us)) / \(us($r.load_lag_p99_us)) |"'
}

for calls in "$@"; do
    echo "== $calls calls: rtpengine" >&2
    run_rtpengine "$calls"
    echo "== $calls calls: callgate" >&2
    run_callgate "$calls"
done
echo "| calls | callgate CPU per relayed packet | rtpengine | ratio | packets relayed per second (callgate / rtpengine) | loss | echo RTT p99 | memory per call |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for calls in "$@"; do
    row "$calls"
done
echo
echo "| calls | callgate relay p50 / p99 to the trunk | to the browser | load clock lag p50 / p99 (callgate / rtpengine runs) |"
echo "| --- | --- | --- | --- |"
for calls in "$@"; do
    latency_row "$calls"
done
