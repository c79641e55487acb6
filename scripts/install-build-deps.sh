#!/usr/bin/env bash
# Installs what building callgate needs beyond the Rust toolchain: libopus
# (Opus transcoding, linked through pkg-config). Debian packages; idempotent:
# installs only what is missing and fails loudly if it cannot.
set -euo pipefail

packages=(
  libopus-dev   # Opus <-> G.711 transcoding on the browser leg
  pkg-config    # lets the opus crate find libopus
)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

if pkg-config --exists opus 2>/dev/null; then
  exit 0
fi
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-build-deps: libopus with pkg-config is needed; install it with your package manager" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -ne 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    echo "install-build-deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
    exit 1
  fi
  echo "install-build-deps: installing ${missing[*]}"
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
if ! pkg-config --exists opus; then
  echo "install-build-deps: libopus is still not visible to pkg-config" >&2
  exit 1
fi
