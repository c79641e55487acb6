#!/usr/bin/env bash
# What HTTPS costs the node: full TLS handshakes per second with the CPU
# each takes on the node, and requests per second on the widget config
# route (what every call starts with) over TLS and over plain HTTP.
#
# Runs the release binary on its embedded default with a throwaway
# certificate (ECDSA P-256, the kind ACME CAs issue by default), pinned to
# CPU 1; the load (openssl s_time, wrk) runs on CPU 0. Each visitor of the
# config route gets an address of its own through X-Forwarded-For from a
# trusted loopback proxy, so the per-IP limit does not turn the run into
# 429s. Needs openssl and wrk (installed from Debian's packages if missing).
#
#   scripts/bench-https.sh [SECONDS]      (default 10 per figure)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-10}
command -v wrk >/dev/null || {
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y --no-install-recommends wrk >/dev/null
}
scripts/install-build-deps.sh
cargo build --release --bin callgate >/dev/null

work=$(mktemp -d)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU seconds (user + system) the node has used so far.
node_cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$node_pid/stat"; }

start_node() { # $1: extra [http] lines; sets port and node_pid
  port=$(free_port)
  cat >"$work/node.toml" <<EOF
[node]
data_dir = "$work/data-$port"
[http]
listen = "127.0.0.1:$port"
trusted_proxies = ["127.0.0.1"]
$1
[limits]
config_requests_per_minute_per_ip = 10000
lookups_per_minute_per_ip = 1000000
[echo_trunk]
enabled = true
[[sip.routes]]
name = "demo"
trunks = ["echo"]
EOF
  taskset -c 1 target/release/callgate serve --config "$work/node.toml" 2>"$work/node.log" &
  node_pid=$!
  for _ in $(seq 100); do
    curl -skf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
}

# Microseconds of node CPU per unit of work between two node_cpu readings.
per_unit() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }'; }

# The first SIGTERM drains (calls left go on); the second hangs them up.
stop_node() {
  kill "$node_pid"; sleep 1; kill "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true; node_pid=
}

cat >"$work/visitors.lua" <<'EOF'
-- A new visitor address per request, named by the trusted proxy.
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  wrk.headers["X-Forwarded-For"] = ip
  return wrk.format("GET")
end
EOF

config_rps() { # $1: base URL; prints requests/s and the node's CPU per request
  local before after
  before=$(node_cpu)
  taskset -c 0 wrk -t1 -c16 -d"${seconds}s" -s "$work/visitors.lua" \
    -H "Origin: $1" "$1/v1/widgets/demo/config" >"$work/wrk.txt"
  after=$(node_cpu)
  local rps total
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.txt")
  total=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
  local non2xx; non2xx=$(awk '/Non-2xx/ { print $5 }' "$work/wrk.txt")
  printf '%s req/s, node CPU %s us per request%s\n' "$rps" \
    "$(per_unit "$before" "$after" "$total")" "${non2xx:+, $non2xx non-2xx}"
}

start_node "tls_cert_file = \"$work/cert.pem\"
tls_key_file = \"$work/key.pem\""
base="https://127.0.0.1:$port"
for version in -tls1_3 -tls1_2; do
  before=$(node_cpu)
  out=$(taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -new "$version" -time "$seconds" 2>/dev/null)
  after=$(node_cpu)
  connections=$(echo "$out" | awk '/connections in/ && /real seconds/ { print $1; exit }')
  printf 'TLS handshakes (%s, ECDSA P-256): %s in %ss, node CPU %s us per handshake\n' \
    "${version#-}" "$connections" "$seconds" "$(per_unit "$before" "$after" "$connections")"
done
printf 'config route over HTTPS (keep-alive): '; config_rps "$base"
stop_node

start_node ""
printf 'config route over HTTP (keep-alive):  '; config_rps "http://127.0.0.1:$port"
stop_node
