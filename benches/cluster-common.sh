# Shared by the cluster benches (sourced, not run): a throwaway Redis and
# PostgreSQL, and `node I` to start node-I of the release build on them.
#
# The caller sets `work` (a fresh directory) before sourcing, and may set
# `node_extra` (more TOML appended to every node's config).

bin=target/release/callgate
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 1; }

cluster_cleanup() {
    local pid_file
    for pid_file in "$work"/n*/pid; do
        [[ -f $pid_file ]] && kill -9 "$(cat "$pid_file")" 2>/dev/null || true
    done
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    scripts/test-postgres.sh stop
    rm -rf "$work"
}
trap cluster_cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_port=$(free_port)
start_redis() {
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --logfile "$work/redis.log" --dir "$work"
}
start_redis
postgres=$(scripts/test-postgres.sh start)
export BENCH_CLUSTER_SECRET=bench-cluster-secret-of-this-run
BENCH_KEK=$(head -c 32 /dev/urandom | base64)
export BENCH_KEK

# node I: writes node-I's config (4000 media ports from 10000 + 4000 I,
# browser ports from 4I000) and starts it; its HTTP port on stdout, its
# pid in $work/nI/pid.
node() {
    local i=$1 http sip echo
    http=$(free_port) sip=$(free_port) echo=$(free_port)
    mkdir -p "$work/n$i"
    cat >"$work/n$i/callgate.toml" <<TOML
[node]
id = "node-$i"
data_dir = "$work/n$i/data"
[http]
listen = "127.0.0.1:$http"
[sip]
listen_udp = "127.0.0.1:$sip"
options_interval_secs = 0
[media]
rtp_port_min = $((10000 + 4000 * i))
rtp_port_max = $((13999 + 4000 * i))
[webrtc]
listen = "127.0.0.1:4${i}000"
[limits]
calls_per_minute_per_ip = 10000
calls_per_minute_per_widget = 100000
max_concurrent_calls_per_tenant = 5000
lookups_per_minute_per_ip = 1000000
[echo_trunk]
enabled = true
listen = "127.0.0.1:$echo"
[[sip.routes]]
name = "demo"
trunks = ["echo"]
[database]
url = "$postgres"
[recording]
keys = [{ id = "k1", env = "BENCH_KEK" }]
current_key = "k1"
[cluster]
redis_url = "redis://127.0.0.1:$redis_port/0"
secret_env = "BENCH_CLUSTER_SECRET"
${node_extra:-}
TOML
    CALLGATE_LOG_LEVEL=warn CALLGATE_HTTP_MAX_CONNECTIONS_PER_IP=4096 \
        "$bin" serve --config "$work/n$i/callgate.toml" >"$work/n$i/log" 2>&1 &
    echo $! >"$work/n$i/pid"
    echo "$http"
}
