#!/usr/bin/env bash
# run_conformance.sh BUILD_DIR [conformance.sh options...]
#
# Runs the official MCP server conformance suite (tests/conformance/conformance.sh,
# --suite all) against `mcpd serve` with one upstream: BUILD_DIR/mcpd-fixture,
# which implements the suite's fixture names; catalog prefix "never" so the
# names reach the suite unchanged. mcpd listens on a free 127.0.0.1 port
# (--listen 127.0.0.1:0 --port-file). Scenarios listed in
# tests/conformance/expected-failures.txt are expected to fail.
# Exit status: the suite's (0 = every scenario as expected).
set -u
set -o pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD="${1:?usage: run_conformance.sh BUILD_DIR [conformance.sh options]}"
shift
BUILD="$(cd "$BUILD" && pwd)" || exit 2
MCPD="$BUILD/mcpd"
FIXTURE="$BUILD/mcpd-fixture"
[ -x "$MCPD" ] || { echo "run_conformance: no $MCPD" >&2; exit 2; }
[ -x "$FIXTURE" ] || { echo "run_conformance: no $FIXTURE" >&2; exit 2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance.XXXXXX")" || exit 2
MCPD_PID=""

stop_mcpd() {
  [ -n "$MCPD_PID" ] || return 0
  local i rc
  kill -TERM "$MCPD_PID" 2>/dev/null
  for i in $(seq 1 50); do            # 10 s at most
    kill -0 "$MCPD_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$MCPD_PID" 2>/dev/null; then
    echo "run_conformance: mcpd did not exit 10 s after SIGTERM; killing it" >&2
    kill -KILL "$MCPD_PID" 2>/dev/null
  fi
  wait "$MCPD_PID" 2>/dev/null
  rc=$?
  echo "run_conformance: mcpd (pid $MCPD_PID) exited with status $rc" >&2
  MCPD_PID=""
  return "$rc"
}
cleanup() {
  stop_mcpd
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$TMP/mcpd.yaml" <<EOF
servers:
  fixture:
    command: $FIXTURE
catalog: {prefix: never}
EOF

"$MCPD" serve -c "$TMP/mcpd.yaml" --listen 127.0.0.1:0 --port-file "$TMP/port" \
  >"$TMP/mcpd.log" 2>&1 </dev/null &
MCPD_PID=$!

PORT=""
for _ in $(seq 1 150); do             # 15 s at most
  if [ -s "$TMP/port" ]; then
    PORT="$(tr -dc 0-9 <"$TMP/port")"
    [ -n "$PORT" ] && break
  fi
  if ! kill -0 "$MCPD_PID" 2>/dev/null; then
    echo "run_conformance: mcpd exited during start-up:" >&2
    sed 's/^/  mcpd: /' "$TMP/mcpd.log" >&2
    MCPD_PID=""
    exit 2
  fi
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "run_conformance: mcpd wrote no port file within 15 s" >&2
  sed 's/^/  mcpd: /' "$TMP/mcpd.log" >&2
  exit 2
fi
echo "run_conformance: mcpd pid $MCPD_PID listening on 127.0.0.1:$PORT" >&2

"$HERE/conformance.sh" --suite all --timeout 240 \
  --expected-failures "$HERE/expected-failures.txt" "$@" "http://127.0.0.1:$PORT/mcp"
RC=$?

if ! kill -0 "$MCPD_PID" 2>/dev/null; then
  echo "run_conformance: mcpd died during the suite" >&2
  [ "$RC" -ne 0 ] || RC=1
fi
if [ "$RC" -ne 0 ]; then
  echo "run_conformance: last 40 lines of the mcpd log:" >&2
  tail -n 40 "$TMP/mcpd.log" | sed 's/^/  mcpd: /' >&2
fi
exit "$RC"
