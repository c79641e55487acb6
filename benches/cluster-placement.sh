#!/usr/bin/env bash
# What a cluster costs a new call, and how fast it heals: two nodes of the
# release build on loopback, sharing a throwaway Redis and PostgreSQL.
#
#   benches/cluster-placement.sh [CALLS]      (default 60)
#
# - Placement overhead: CALLS call requests (the widget's POST, a real
#   offer, no browser behind it) sent to node A while B holds a call, so
#   each stays on A; then CALLS more while A holds one, so each is handed
#   to B. Prints the POST's answer time, p50 and p99, for both. Each call
#   is hung up at once, then the next waits 300 ms (a heartbeat and more)
#   so both nodes' loads are current.
# - Healing: Redis is killed and started again, empty; prints how long
#   until both nodes' /readyz say "connected" again (heartbeat 200 ms).
# - Node loss: a call placed on node B, answered, then B is killed with
#   SIGKILL; prints how long until A has written that call's CDR
#   (`end_reason` `node_lost`; lease 2 s, heartbeat 200 ms).
#
# Needs the release binary (cargo build --release), redis-server and a
# PostgreSQL server's programs (scripts/install-test-deps.sh installs them).
# It runs its database with scripts/test-postgres.sh, so not beside the
# tests (scripts/test.sh), whose server that would replace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

calls=${1:-60}
work=$(mktemp -d)
node_extra=$'heartbeat_ms = 200\nlease_secs = 2'
# shellcheck source=benches/cluster-common.sh
source benches/cluster-common.sh

a=$(node 1)
sleep 1
b=$(node 2)
python3 - "$a" "$b" "$calls" "$redis_port" "$work" "$postgres" <<'EOF'
import json, os, signal, subprocess, sys, time, urllib.request

a, b = (f"http://127.0.0.1:{port}" for port in sys.argv[1:3])
calls, redis_port, work, postgres = int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Xo4b\r\na=ice-pwd:e4P2dmWc0Bz1mGkPuwOZ9y5x\r\n"
    "a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:"
    "DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)

sys.dont_write_bytecode = True
sys.path.insert(0, "benches")
from cluster_common import cluster_state, until as wait_until

def until(condition, what, timeout=20):
    wait_until(condition, f"cluster-placement: {what}", timeout, work)

def post(base):
    body = json.dumps({"offer": OFFER, "consent": None}).encode()
    request = urllib.request.Request(base + "/v1/widgets/demo/calls", data=body,
        method="POST", headers={"Origin": base, "content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request) as answer:
        placed = json.load(answer)
    return (time.perf_counter() - started) * 1000, placed

def owner(placed):
    return "http://" + placed["events"].split("//", 1)[1].split("/", 1)[0]

def hang_up(placed, origin):
    url = f"{owner(placed)}/v1/calls/{placed['call_id']}?token={placed['token']}"
    request = urllib.request.Request(url, method="DELETE", headers={"Origin": origin})
    urllib.request.urlopen(request).read()

def percentile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]

until(lambda: cluster_state(a) == cluster_state(b) == "connected", "both nodes connecting")
print(f"placement overhead: {calls} call requests to node A per row")
print("| where the call went | calls | p50 ms | p99 ms |")
print("| --- | --- | --- | --- |")
for holder in (b, a):
    _, held = post(holder)
    time.sleep(0.5)
    by_owner = {}
    for _ in range(calls):
        elapsed, placed = post(a)
        by_owner.setdefault(owner(placed), []).append(elapsed)
        hang_up(placed, a)
        time.sleep(0.3)
    hang_up(held, holder)
    time.sleep(0.5)
    for where, times in sorted(by_owner.items()):
        times.sort()
        kind = "kept on A" if where == a else "handed to B"
        print(f"| {kind} | {len(times)} | {percentile(times, 0.5):.2f} | {percentile(times, 0.99):.2f} |")

subprocess.run(["redis-cli", "-p", redis_port, "shutdown", "nosave"], capture_output=True)
until(lambda: cluster_state(a) == cluster_state(b) == "degraded", "both nodes degrading")
started = time.monotonic()
subprocess.run(["redis-server", "--port", redis_port, "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no", "--daemonize", "yes", "--logfile", f"{work}/redis.log", "--dir", work],
    check=True)
until(lambda: cluster_state(a) == cluster_state(b) == "connected", "both nodes healing")
print(f"healed: both nodes connected {(time.monotonic() - started) * 1000:.0f} ms after Redis was started again")

_, lost = post(b)
assert owner(lost) == b, "an idle B keeps the call it receives"
time.sleep(1)
with open(f"{work}/n2/pid") as pid_file:
    os.kill(int(pid_file.read()), signal.SIGKILL)
killed = time.monotonic()
def lost_cdr_written():
    query = f"SELECT end_reason FROM cdrs WHERE call_id = '{lost['call_id']}'"
    found = subprocess.run(["psql", postgres, "-Atc", query], capture_output=True, text=True)
    return found.stdout.strip() == "node_lost"
until(lost_cdr_written, "the lost call's CDR")
print(f"node lost: the call's CDR written by A {(time.monotonic() - killed) * 1000:.0f} ms after B was killed (lease 2 s)")
EOF
