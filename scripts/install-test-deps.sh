#!/usr/bin/env bash
# Installs the programs the tests drive (SIP peers, audio tools, capture), from
# Debian packages. Idempotent: installs only what is missing, runs
# `apt-get update` at most once, and fails loudly if anything is still missing.
set -euo pipefail

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
  openssl         # test certificates for SIP over TLS
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

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all test dependencies are installed"
  exit 0
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
for program in sipp baresip kamailio sox espeak-ng tshark kill ip openssl; do
  if ! command -v "$program" >/dev/null; then
    echo "install-test-deps: $program is not on PATH after installing" >&2
    exit 1
  fi
done
echo "install-test-deps: done"
