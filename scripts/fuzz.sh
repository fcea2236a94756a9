#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets with clang and run each for a while
# (by hand; CI only replays the corpora through CTest's fuzz-replay label).
#
#   scripts/fuzz.sh [seconds]      default 60 seconds per target
#
# Build: build-fuzz/ (clang, CMAKE_BUILD_TYPE=Asan, MCPD_BUILD_FUZZERS=ON).
# Each target fuzz_<t> runs with its dictionary tests/fuzz/<t>.dict over a
# scratch copy of tests/fuzz/corpus/<t>/, so new inputs never land in the
# repository by themselves; they stay in $FUZZ_WORK/<t>/corpus (default
# build-fuzz/fuzz-work). Crashes, leaks and timeouts are written to
# $FUZZ_WORK/<t>/artifacts/; replay one with
#   build-fuzz/tests/fuzz_<t> $FUZZ_WORK/<t>/artifacts/crash-...
# To keep an input that adds coverage, copy it into tests/fuzz/corpus/<t>/
# (`fuzz_<t> -merge=1 DEST tests/fuzz/corpus/<t> $FUZZ_WORK/<t>/corpus`
# picks a minimal set). Exit status: 0 when every target ran clean.
#
# Environment: FUZZ_TARGETS="jsonrpc http" limits the targets; FUZZ_JOBS=N
# runs N targets at once (default 1); FUZZ_ARGS adds libFuzzer flags.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-60}"
BUILD="$ROOT/build-fuzz"
WORK="${FUZZ_WORK:-$BUILD/fuzz-work}"
JOBS="${FUZZ_JOBS:-1}"

case "$SECONDS_PER_TARGET" in
'' | *[!0-9]*)
    echo "usage: $0 [seconds]" >&2
    exit 2
    ;;
esac
command -v clang >/dev/null || { echo "fuzz.sh: clang is required" >&2; exit 2; }

# -Wno-unknown-warning-option: the shared warning list carries GCC-only flags.
CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Asan -DMCPD_BUILD_FUZZERS=ON \
    -DCMAKE_C_FLAGS=-Wno-unknown-warning-option >/dev/null || exit 1

if [ -n "${FUZZ_TARGETS:-}" ]; then
    targets="$FUZZ_TARGETS"
else
    targets=""
    for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
        t="${src##*/fuzz_}"
        targets="$targets ${t%.c}"
    done
fi
build_targets=""
for t in $targets; do
    build_targets="$build_targets fuzz_$t"
done
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $build_targets >"$BUILD/fuzz-build.log" 2>&1 ||
    { tail -n 30 "$BUILD/fuzz-build.log"; exit 1; }

# run_one TARGET: fuzzes one target; its log goes to $WORK/TARGET/fuzz.log.
run_one() {
    local t="$1" dir="$WORK/$1" rc
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -n "$ROOT/tests/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null
    # shellcheck disable=SC2086
    (cd "$dir" && "$BUILD/tests/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" \
        -dict="$ROOT/tests/fuzz/$t.dict" -artifact_prefix="$dir/artifacts/" \
        -print_final_stats=1 ${FUZZ_ARGS:-} corpus >fuzz.log 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        printf '%-14s ok    %s\n' "$t" \
            "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/fuzz.log" | tail -n 1)"
    else
        printf '%-14s FAIL  rc=%d, see %s/fuzz.log and %s/artifacts/\n' "$t" "$rc" "$dir" "$dir"
    fi
    return "$rc"
}

failed=0
running=0
pids=""
for t in $targets; do
    run_one "$t" &
    pids="$pids $!"
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        for p in $pids; do
            wait "$p" || failed=$((failed + 1))
        done
        pids=""
        running=0
    fi
done
for p in $pids; do
    wait "$p" || failed=$((failed + 1))
done
[ "$failed" -eq 0 ]
