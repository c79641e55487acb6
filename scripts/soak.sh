#!/usr/bin/env bash
# A long run at a steady number of calls, watching the node for leaks.
#
#   scripts/soak.sh CALLS MINUTES
#
# Starts the node under test as scripts/bench-calls.sh does (pinned to
# CPU 1, its route leading to a trunk that callgate-load plays on CPU 0),
# then keeps CALLS calls up for MINUTES in rounds of about a minute: each
# round places CALLS new calls (50 a second), holds them, and hangs them
# all up, so every call's setup and teardown is exercised again and again.
#
# Once a minute, while all CALLS calls are up, it samples the node: RSS,
# open file descriptors, threads, tasks alive on its async runtime
# (callgate_runtime_tasks_alive) and calls in progress
# (callgate_calls_active). The table goes to stdout and to
# soak-samples.tsv in the working directory's target/.
#
# Verdict (exit 0 only if all hold):
# - no call failed (callgate-load's report: every call connected and
#   echoed audio);
# - after warm-up (the first sixth of the samples, at least two), every
#   RSS sample is within ±5 % of their median;
# - tasks and file descriptors at the last sample are no more than 5 %
#   above the first sample after warm-up (what a leak would grow);
# - 10 s after the last round, the node has no call left in progress.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -ne 2 || ! $1 =~ ^[0-9]+$ || ! $2 =~ ^[0-9]+$ || $1 -eq 0 || $2 -lt 5 ]]; then
    echo "usage: scripts/soak.sh CALLS MINUTES   (MINUTES at least 5)" >&2
    exit 64
fi
calls=$1
minutes=$2
source scripts/lib/bench-nodes.sh
bench_prepare soak
bench_setup

# A round: the ramp at 50 calls a second, then the steady window, to make
# about a minute with the hang-ups.
ramp=$(((calls + 49) / 50))
window=$((58 - ramp))
((window < 10)) && window=10
rounds=$(((minutes * 60 + ramp + window + 1) / (ramp + window + 2)))

metric() {
    curl -sf "http://$bench_listen/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}
proc_field() {
    awk -v key="$1:" '$1 == key { print $2 }' "/proc/$bench_node/status"
}

bench_start_node target/release
load_out="$bench_dir/load.json"
bench_load_node --calls "$calls" --duration "$window" --repeat "$rounds" \
    --node-pid "$bench_node" --json >"$load_out" 2>"$bench_dir/load.err" &
load=$!

samples=target/soak-samples.tsv
mkdir -p target
printf 'minute\trss_kib\tfds\tthreads\ttasks\tcalls_active\n' | tee "$samples"
start=$(date +%s)
next=$((start + 60))
while kill -0 "$load" 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    ((now < next)) && continue
    active=$(metric callgate_calls_active || echo 0)
    # Only while every call of the round is up, so each sample is taken
    # at the same point of a round.
    [[ ${active%.*} -eq $calls ]] || continue
    printf '%d\t%d\t%d\t%d\t%d\t%d\n' $(((now - start) / 60)) "$(proc_field VmRSS)" \
        "$(find "/proc/$bench_node/fd" -mindepth 1 -maxdepth 1 | wc -l)" \
        "$(proc_field Threads)" "$(metric callgate_runtime_tasks_alive)" "${active%.*}" |
        tee -a "$samples"
    next=$((next + 60))
done
load_status=0
wait "$load" || load_status=$?
sleep 10
left=$(metric callgate_calls_active)
bench_stop_node

echo "== callgate-load, $rounds rounds of $calls calls (exit $load_status)"
cat "$bench_dir/load.err" >&2
python3 - "$load_out" "$samples" "${left%.*}" <<'PY'
import json, statistics, sys

load_path, samples_path, left = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    report = json.load(open(load_path))
except ValueError:
    report = None
rows = [line.split("\t") for line in open(samples_path).read().splitlines()[1:]]
rows = [[int(x) for x in row] for row in rows]
failures = []
if report is None:
    failures.append("the load tool wrote no report")
else:
    print(f"calls        {report['calls']} placed, {report['connected']} connected, "
          f"{report['failed']} failed, {report['calls_with_echo']} echoed audio")
    print(f"loss         {report['loss_percent']:.4f} %")
    if report["failed"] or report["calls_with_echo"] != report["calls"]:
        failures.append(f"{report['failed']} calls failed: {report['failures']}")
warm = max(2, len(rows) // 6)
steady = rows[warm:]
if len(steady) < 2:
    failures.append(f"only {len(rows)} samples taken; too few after warm-up")
else:
    rss = [row[1] for row in steady]
    median = statistics.median(rss)
    low, high = (min(rss) - median) / median * 100, (max(rss) - median) / median * 100
    print(f"rss          after warm-up ({len(steady)} samples): median {median:.0f} KiB, "
          f"{low:+.2f} % .. {high:+.2f} %")
    if max(abs(low), abs(high)) > 5:
        failures.append("RSS moved more than 5 % after warm-up")
    first, last = steady[0], steady[-1]
    for name, column in (("fds", 2), ("tasks", 4)):
        grown = (last[column] - first[column]) / max(first[column], 1) * 100
        print(f"{name:<12} {first[column]} after warm-up, {last[column]} at the end ({grown:+.1f} %)")
        if grown > 5:
            failures.append(f"{name} grew {grown:.1f} %")
print(f"calls left   {left} in progress 10 s after the last round")
if left:
    failures.append(f"{left} calls still in progress after the run")
for failure in failures:
    print(f"soak: FAILED: {failure}")
print("soak: passed" if not failures else "")
sys.exit(1 if failures else 0)
PY
