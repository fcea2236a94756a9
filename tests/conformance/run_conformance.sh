#!/usr/bin/env bash
# run_conformance.sh BUILD_DIR SETUP [conformance.sh options...]
#
# Runs the official MCP server conformance suite (tests/conformance/conformance.sh,
# --suite all) against `mcpd serve` with BUILD_DIR/mcpd-fixture (which implements
# the suite's fixture names) behind it, in one of three set-ups:
#
#   stdio   mcpd spawns the fixture over stdio (share: per-client, so the
#           fixture sees each client's sampling/elicitation capabilities)
#   remote  mcpd reaches the fixture over remote streamable HTTP: a first mcpd
#           serves the fixture at /mcp, a second one has it as `url:` and is
#           the one tested (both per-client, so capabilities pass through)
#   multi   a second upstream (the demo server) is present; prefix "never" so
#           the fixture's names reach the suite unchanged (they are unique in
#           that catalog; the demo's `echo` collides with the fixture's and is
#           reported and left out, which the suite does not use)
#   modern  the stateless revision: suite $MODERN_CONFORMANCE_VERSION (default
#           0.2.0-alpha.12) with --requirements 2026-07-28, the fixture shared
#           over stdio (its list changes reach every subscriptions/listen
#           stream), and BUILD_DIR/mcpd-fixture-modern, a 2026-07-28-only
#           server with the MRTR fixtures (protocol: auto finds its era);
#           baseline expected-failures-2026-07-28.txt
#
# mcpd listens on free 127.0.0.1 ports (--listen 127.0.0.1:0 --port-file).
# Scenarios listed in tests/conformance/expected-failures.txt are expected to fail.
# Exit status: the suite's (0 = every scenario as expected).
set -u
set -o pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD="${1:?usage: run_conformance.sh BUILD_DIR stdio|remote|multi [conformance.sh options]}"
SETUP="${2:?usage: run_conformance.sh BUILD_DIR stdio|remote|multi [conformance.sh options]}"
shift 2
BUILD="$(cd "$BUILD" && pwd)" || exit 2
MCPD="$BUILD/mcpd"
FIXTURE="$BUILD/mcpd-fixture"
[ -x "$MCPD" ] || { echo "run_conformance: no $MCPD" >&2; exit 2; }
[ -x "$FIXTURE" ] || { echo "run_conformance: no $FIXTURE" >&2; exit 2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance.XXXXXX")" || exit 2
PIDS=()
STATUS=0

stop_all() {
  local pid i rc
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do            # 10 s at most
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run_conformance: mcpd $pid did not exit 10 s after SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    echo "run_conformance: mcpd (pid $pid) exited with status $rc" >&2
    [ "$rc" -eq 0 ] || STATUS=1
  done
  PIDS=()
}
cleanup() {
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_mcpd NAME: serves $TMP/NAME.yaml; sets PORT.
start_mcpd() {
  local name="$1" pid
  "$MCPD" serve -c "$TMP/$name.yaml" --listen 127.0.0.1:0 --port-file "$TMP/$name.port" \
    >"$TMP/$name.log" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  PORT=""
  for _ in $(seq 1 150); do             # 15 s at most
    if [ -s "$TMP/$name.port" ]; then
      PORT="$(tr -dc 0-9 <"$TMP/$name.port")"
      [ -n "$PORT" ] && break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run_conformance: mcpd $name exited during start-up:" >&2
      sed 's/^/  mcpd: /' "$TMP/$name.log" >&2
      exit 2
    fi
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    echo "run_conformance: mcpd $name wrote no port file within 15 s" >&2
    sed 's/^/  mcpd: /' "$TMP/$name.log" >&2
    exit 2
  fi
  echo "run_conformance: mcpd $name (pid $pid) listening on 127.0.0.1:$PORT" >&2
}

case "$SETUP" in
  stdio)
    printf 'servers:\n  fixture:\n    command: %s\n    share: per-client\ncatalog: {prefix: never}\n' \
      "$FIXTURE" >"$TMP/front.yaml"
    ;;
  remote)
    printf 'servers:\n  fixture:\n    command: %s\n    share: per-client\ncatalog: {prefix: never}\n' \
      "$FIXTURE" >"$TMP/back.yaml"
    start_mcpd back
    printf 'servers:\n  fixture:\n    url: http://127.0.0.1:%s/mcp\n    share: per-client\ncatalog: {prefix: never}\n' \
      "$PORT" >"$TMP/front.yaml"
    ;;
  multi)
    printf 'servers:\n  fixture:\n    command: %s\n    share: per-client\n  demo:\n    command: %s\ncatalog: {prefix: never}\n' \
      "$FIXTURE" "$BUILD/mcpd-demo-server" >"$TMP/front.yaml"
    ;;
  modern)
    [ -x "$BUILD/mcpd-fixture-modern" ] || { echo "run_conformance: no $BUILD/mcpd-fixture-modern" >&2; exit 2; }
    printf 'servers:\n  fixture:\n    command: %s\n  modern:\n    command: %s\ncatalog: {prefix: never}\n' \
      "$FIXTURE" "$BUILD/mcpd-fixture-modern" >"$TMP/front.yaml"
    ;;
  *)
    echo "run_conformance: unknown set-up '$SETUP' (stdio, remote or multi)" >&2
    exit 2
    ;;
esac
start_mcpd front

if [ "$SETUP" = modern ]; then
  CONFORMANCE_VERSION="${MODERN_CONFORMANCE_VERSION:-0.2.0-alpha.12}" \
    "$HERE/conformance.sh" --requirements 2026-07-28 --timeout 300 \
    --expected-failures "$HERE/expected-failures-2026-07-28.txt" "$@" "http://127.0.0.1:$PORT/mcp"
else
  "$HERE/conformance.sh" --suite all --timeout 240 \
    --expected-failures "$HERE/expected-failures.txt" "$@" "http://127.0.0.1:$PORT/mcp"
fi
RC=$?

for pid in "${PIDS[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run_conformance: an mcpd died during the suite" >&2
    [ "$RC" -ne 0 ] || RC=1
  fi
done
if [ "$RC" -ne 0 ]; then
  for f in "$TMP"/*.log; do
    echo "run_conformance: last 40 lines of $(basename "$f"):" >&2
    tail -n 40 "$f" | sed 's/^/  mcpd: /' >&2
  done
fi
stop_all
[ "$RC" -ne 0 ] || RC=$STATUS
exit "$RC"
