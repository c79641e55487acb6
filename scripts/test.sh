#!/usr/bin/env bash
# Runs every check CI runs: installs the test peers, then format, lints, the
# deployment files (scripts/check-deploy.sh), and
# all unit and integration tests in ONE release build (integration tests run
# the binary cargo built for them, so nothing is compiled twice). The build
# has the fail points the panic tests set off (feature "failpoints"); they
# do nothing until a test sets one. Last, what the tests' nodes logged is
# scanned for personal data (scripts/scan-logs.py), and each fuzz target
# runs for a few seconds (scripts/fuzz.sh; the seeds and past crashes are
# already replayed by the unit tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-build-deps.sh
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --release --features failpoints -- -D warnings
scripts/check-deploy.sh

# The store tests run against SQLite and against this PostgreSQL server.
trap 'scripts/test-postgres.sh stop' EXIT
TEST_POSTGRES_URL=$(scripts/test-postgres.sh start)
export TEST_POSTGRES_URL
# Every node a test starts in-process logs at debug into this directory;
# the scan afterwards fails the run on personal data in any line.
TEST_NODE_LOG_DIR="$PWD/target/test-logs"
export TEST_NODE_LOG_DIR
rm -rf "$TEST_NODE_LOG_DIR"
scripts/scan-logs.py --self-test
cargo test --release --features failpoints
scripts/scan-logs.py "$TEST_NODE_LOG_DIR"
scripts/fuzz.sh 10
