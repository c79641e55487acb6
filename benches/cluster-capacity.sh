#!/usr/bin/env bash
# Calls carried by one, two and three nodes of a cluster on this machine:
# for each node count and each CALLS given, `callgate-load` places CALLS
# concurrent calls (PCMU, 50 packets a second each way, real ICE, DTLS and
# SRTP) through node 1, which spreads them by placement; each node relays
# its own calls to its echo trunk.
#
#   benches/cluster-capacity.sh [CALLS...]     (default: 200 400)
#
# One table row per run: the calls each node carried, each node's CPU
# (user + system over 10 s of the steady window, in % of one core), the
# loss and the echo's round trip p50 and p99 as the load tool saw them.
# The nodes share the machine's cores with each other and with the load
# tool, so the rows show how the load spreads and what each node spends,
# not what one machine per node would carry.
#
# Needs the release build (cargo build --release: the node and
# callgate-load), redis-server and PostgreSQL's programs
# (scripts/install-test-deps.sh). Not beside scripts/test.sh: it runs its
# database with scripts/test-postgres.sh, as the tests do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -eq 0 ]]; then
    set -- 200 400
fi
load=target/release/callgate-load
[[ -x $load ]] || { echo "cluster-capacity: build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
# shellcheck source=benches/cluster-common.sh
source benches/cluster-common.sh

echo "| nodes | calls | calls per node | CPU per node % | loss % | echo RTT p50 / p99 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
for nodes in 1 2 3; do
    ports=()
    for i in $(seq 1 "$nodes"); do
        ports+=("$(node "$i")")
    done
    for calls in "$@"; do
        python3 - "$work" "$load" "$calls" "${ports[@]}" <<'PY'
import json, os, subprocess, sys, time

work, load, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
ports = sys.argv[4:]
bases = [f"http://127.0.0.1:{port}" for port in ports]
pids = [int(open(f"{work}/n{i + 1}/pid").read()) for i in range(len(ports))]
ticks = os.sysconf("SC_CLK_TCK")

sys.dont_write_bytecode = True
sys.path.insert(0, "benches")
from cluster_common import cluster_state, metric, until as wait_until

def until(condition, what, timeout=60):
    wait_until(condition, f"cluster-capacity: {what}", timeout, work, interval=0.1)

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks

until(lambda: all(cluster_state(b) == "connected" for b in bases), "every node connecting")
until(lambda: sum(metric(b, "callgate_calls_active") for b in bases) == 0,
      "the last run's calls ending")
until(lambda: all(metric(b, "callgate_cluster_nodes") == len(bases) for b in bases),
      "every node seeing the others")
ramp = 100.0
runner = subprocess.Popen([load, "--node", bases[0], "--calls", str(calls), "--duration", "25",
    "--ramp-per-sec", str(ramp), "--json"], stdout=subprocess.PIPE, text=True)
until(lambda: sum(metric(b, "callgate_calls_active") for b in bases) >= calls,
      "every call up", timeout=calls / ramp + 30)
time.sleep(5)
carried = [int(metric(b, "callgate_calls_active")) for b in bases]
before = [cpu_seconds(pid) for pid in pids]
started = time.monotonic()
time.sleep(10)
spent = [cpu_seconds(pid) - was for pid, was in zip(pids, before)]
elapsed = time.monotonic() - started
report = json.loads(runner.communicate()[0])
cpu = " / ".join(f"{100 * s / elapsed:.0f}" for s in spent)
per_node = " / ".join(str(c) for c in carried)
loss = report.get("loss_percent")
p50, p99 = report.get("echo_rtt_p50_ms"), report.get("echo_rtt_p99_ms")
fmt = lambda v: "-" if v is None else f"{v:.2f}"
print(f"| {len(bases)} | {calls} | {per_node} | {cpu} | {fmt(loss)} | {fmt(p50)} / {fmt(p99)} |")
PY
    done
    for i in $(seq 1 "$nodes"); do
        kill "$(cat "$work/n$i/pid")"
        while kill -0 "$(cat "$work/n$i/pid")" 2>/dev/null; do sleep 0.2; done
        rm -f "$work/n$i/pid"
    done
done
