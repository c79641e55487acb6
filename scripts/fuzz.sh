#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets/, one per parser of untrusted
# input; see fuzz/README.md) with libFuzzer through cargo-fuzz, each for
# SECONDS (default 60) or for N executions, and prints a line per target:
# executions, executions a second, and crashes.
#
#   scripts/fuzz.sh [SECONDS | --runs N] [TARGET...]
#
# Installs what it needs when missing: a nightly toolchain (cargo-fuzz's
# instrumentation needs it) and cargo-fuzz. Each target starts from its
# seed corpus in fuzz/corpus/TARGET (never written) and keeps what it
# finds in fuzz/target/corpus/TARGET for the next run; its output goes to
# fuzz/target/logs/TARGET.PID.log. A crash stops that
# target and fails the script; libFuzzer leaves the input in
# fuzz/artifacts/TARGET/. Once fixed, the input goes to
# fuzz/regressions/TARGET/, which the unit tests replay on every build.
#
# FUZZ_SANITIZER=none|address (default address) picks the sanitizer; the
# crate itself forbids unsafe code, so address finds what the C and unsafe
# code under it (libopus, ring, the SIMD paths of dependencies) might do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

budget=(-max_total_time=60)
if [[ ${1:-} == --runs ]]; then
    budget=(-runs="$2")
    shift 2
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
    budget=(-max_total_time="$1")
    shift
fi
sanitizer=${FUZZ_SANITIZER:-address}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing a nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2
fi
scripts/install-build-deps.sh

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=()
    for source in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$source" .rs)")
    done
fi

fuzz=(cargo +nightly fuzz)
options=(--release --debug-assertions --sanitizer "$sanitizer")
"${fuzz[@]}" build "${options[@]}" >&2

failed=()
printf '%-16s %14s %10s %s\n' target executions 'per sec' result
for target in "${targets[@]}"; do
    work=fuzz/target/corpus/$target
    mkdir -p "$work" "fuzz/artifacts/$target" fuzz/target/logs
    log=fuzz/target/logs/$target.$$.log
    status=0
    "${fuzz[@]}" run "${options[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(awk '/^stat::number_of_executed_units:/ { print $NF }' "$log")
    speed=$(awk '/^stat::average_exec_per_sec:/ { print $NF }' "$log")
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        result="FAILED (exit $status; see $log and fuzz/artifacts/$target/)"
        failed+=("$target")
    fi
    printf '%-16s %14s %10s %s\n' "$target" "${runs:-?}" "${speed:-?}" "$result"
done
if [[ ${#failed[@]} -ne 0 ]]; then
    echo "fuzz: ${failed[*]} failed" >&2
    for target in "${failed[@]}"; do
        grep -m1 -A12 -E "panicked|ERROR: " "fuzz/target/logs/$target.$$.log" >&2 || true
    done
    exit 1
fi
