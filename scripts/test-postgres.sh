#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on a free loopback port.
#
#   scripts/test-postgres.sh start   starts it; prints its URL on stdout
#   scripts/test-postgres.sh stop    stops it and removes its data
#
# The URL is an admin connection (user postgres, no password: trust on
# loopback only); the tests make a fresh database per test from it. Data
# lives in a temporary directory, with fsync off: it is thrown away after.
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user the Debian package creates.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state_file=target/test-postgres.dir

pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    echo "test-postgres: no PostgreSQL server programs; run scripts/install-test-deps.sh" >&2
    exit 1
  fi
  echo "$dir"
}

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin dir port
  bin=$(pg_bin)
  stop_quietly
  dir=$(mktemp -d /tmp/callgate-test-postgres.XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  mkdir -p target
  echo "$dir" >"$state_file"
  as_server_user "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  port=$(free_port)
  as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
  }
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

stop_quietly() {
  [ -f "$state_file" ] || return 0
  local dir
  dir=$(cat "$state_file")
  if [ -d "$dir/data" ]; then
    as_server_user "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  case "$dir" in
    /tmp/callgate-test-postgres.*) rm -rf "$dir" ;;
  esac
  rm -f "$state_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
