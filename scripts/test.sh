#!/usr/bin/env bash
# test.sh - the project's test command (README, CI's .ci/run):
#
#   1. scripts/deps.sh                       apt + npm test tools (idempotent)
#   2. build/       Debug, MCPD_WERROR=ON    ctest, all labels (unit, e2e, conformance, ...)
#   3. build-asan/  Asan (ASan + UBSan)      ctest -L 'unit|e2e|fuzz-replay'
#
# ASan/UBSan errors of mcpd and of the test servers it starts make the tests
# fail: ASAN_OPTIONS sets a distinctive exit code, the e2e tests require mcpd to
# exit 0 and scan its stderr (which relays its children's stderr) for
# sanitizer reports.
#
# The last line is "N passed, M failed", summed over both ctest runs (a failed
# configure or build counts as one failure). Exit status 0 only when M is 0.
#
# Environment: MCPD_TEST_SKIP_DEPS=1 skips step 1; MCPD_TEST_SKIP_ASAN=1 skips
# step 3; CTEST_ARGS adds arguments to both ctest runs (e.g. "-R e2e").
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2

total_pass=0
total_fail=0
step() { printf '\n===== %s =====\n' "$*"; }

# run_ctest DIR [ctest args...]: runs ctest, adds its counts to the totals.
run_ctest() {
  local dir="$1" out rc line passed failed total
  shift
  out="$(mktemp "${TMPDIR:-/tmp}/mcpd-ctest.XXXXXX")"
  # shellcheck disable=SC2086
  ctest --test-dir "$dir" --output-on-failure -j2 "$@" ${CTEST_ARGS:-} 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1)"
  rm -f "$out"
  if [ -n "$line" ]; then
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
    total="$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")"
    passed=$((total - failed))
  else
    # no summary: no tests found (counts as a failure: something is wrong) or ctest itself failed
    echo "test.sh: ctest in $dir printed no summary (exit $rc)" >&2
    passed=0
    failed=1
  fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
  fi
  total_pass=$((total_pass + passed))
  total_fail=$((total_fail + failed))
}

# build DIR cmake-args...: configure + build; on failure counts one failure and returns 1.
build() {
  local dir="$1"
  shift
  if ! cmake -S "$ROOT" -B "$dir" "$@"; then
    echo "test.sh: configure of $dir failed" >&2
    total_fail=$((total_fail + 1))
    return 1
  fi
  if ! cmake --build "$dir" -j2; then
    echo "test.sh: build of $dir failed" >&2
    total_fail=$((total_fail + 1))
    return 1
  fi
}

if [ "${MCPD_TEST_SKIP_DEPS:-0}" != 1 ]; then
  step "dependencies (scripts/deps.sh)"
  if ! "$ROOT/scripts/deps.sh"; then
    echo "test.sh: scripts/deps.sh failed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

step "Debug build (build/) + ctest, all labels"
if build "$ROOT/build" -DCMAKE_BUILD_TYPE=Debug -DMCPD_WERROR=ON; then
  run_ctest "$ROOT/build"
fi

if [ "${MCPD_TEST_SKIP_ASAN:-0}" != 1 ]; then
  step "ASan build (build-asan/) + ctest -L 'unit|e2e|fuzz-replay'"
  if build "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Asan; then
    ASAN_OPTIONS="detect_leaks=1:exitcode=86:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    LSAN_OPTIONS="exitcode=86${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
      run_ctest "$ROOT/build-asan" -L 'unit|e2e|fuzz-replay'
  fi
fi

echo
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
