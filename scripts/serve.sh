#!/usr/bin/env bash
# Builds and runs a node on its embedded default (or the config given with
# --config), after installing the one system library the build needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-build-deps.sh
exec cargo run --release -- serve "$@"
