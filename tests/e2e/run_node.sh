#!/usr/bin/env bash
# run_node.sh TEST.mjs - runs one e2e test script with Node 22 and the official
# MCP TypeScript SDK from the test cache that scripts/deps.sh fills.
#
# ESM resolves bare imports ('@modelcontextprotocol/sdk/...') next to the
# importing file, not through NODE_PATH. So the test scripts (TEST.mjs and
# lib.mjs) are copied into a fresh temp folder whose node_modules is a
# symlink to the cache's node_modules, and run from there.
#
# Environment: MCPD_BIN, MCPD_FIXTURE, MCPD_DEMO (from CTest); MCPD_TEST_CACHE
# (default $HOME/.cache/mcpd-test); MCPD_E2E_TIMEOUT_MS (per-script watchdog).
set -euo pipefail

TEST="${1:?usage: run_node.sh TEST.mjs}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MCPD_TEST_CACHE:-${HOME:-/root}/.cache/mcpd-test}"
ENV_FILE="$CACHE/env.sh"

if [ ! -r "$ENV_FILE" ]; then
  echo "run_node.sh: $ENV_FILE missing: run scripts/deps.sh first" >&2
  exit 2
fi
# shellcheck disable=SC1090
. "$ENV_FILE"
[ -x "$NODE" ] || { echo "run_node.sh: no node at $NODE: run scripts/deps.sh" >&2; exit 2; }
[ -d "$PKG_DIR/node_modules/@modelcontextprotocol/sdk" ] ||
  { echo "run_node.sh: SDK missing in $PKG_DIR: run scripts/deps.sh" >&2; exit 2; }

for v in MCPD_BIN MCPD_FIXTURE MCPD_DEMO; do
  [ -n "${!v:-}" ] || { echo "run_node.sh: $v is not set" >&2; exit 2; }
  [ -x "${!v}" ] || { echo "run_node.sh: $v=${!v} is not an executable" >&2; exit 2; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-e2e-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp "$HERE"/*.mjs "$HERE"/*.sql "$WORK"/
ln -s "$PKG_DIR/node_modules" "$WORK/node_modules"

export MCPD_EVERYTHING="${MCPD_EVERYTHING:-$EVERYTHING}"
export MCPD_E2E_NODE="$NODE"
# A hard limit above the script's own watchdog, in case the event loop wedges.
limit_s=$(( ${MCPD_E2E_TIMEOUT_MS:-90000} / 1000 + 30 ))
rc=0
timeout -k 5 "$limit_s" "$NODE" "$WORK/$(basename "$TEST")" || rc=$?
exit "$rc"
