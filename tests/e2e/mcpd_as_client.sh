#!/usr/bin/env bash
# mcpd_as_client.sh [ARGS...] URL - mcpd as the MCP *client* of the server at
# URL (the official conformance suite's client mode appends its test server's
# URL as the last argument).
#
# Writes a configuration with URL as the only server (a remote upstream,
# `url:`), runs `mcpd stdio -c CONFIG` under mcpd_as_client.mjs (the official
# SDK client over stdio), which lists the tools through mcpd and calls the
# first one (the tools_call scenario's add_numbers with a=2, b=3). Exits 0
# when that worked. mcpd's log goes to stderr.
#
# Environment: MCPD_BIN (default: build/mcpd of this checkout),
# MCPD_TEST_CACHE (default $HOME/.cache/mcpd-test, filled by scripts/deps.sh).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
URL="${!#}"
case "$URL" in http://*|https://*) ;; *) echo "mcpd_as_client.sh: last argument must be a URL, got '$URL'" >&2; exit 2 ;; esac
MCPD_BIN="${MCPD_BIN:-$HERE/../../build/mcpd}"
CACHE="${MCPD_TEST_CACHE:-${HOME:-/root}/.cache/mcpd-test}"
# shellcheck disable=SC1091
. "$CACHE/env.sh" || { echo "mcpd_as_client.sh: $CACHE/env.sh missing: run scripts/deps.sh" >&2; exit 2; }
[ -x "$MCPD_BIN" ] || { echo "mcpd_as_client.sh: no mcpd at $MCPD_BIN" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-as-client.XXXXXX")" || exit 2
trap 'rm -rf "$WORK"' EXIT
cp "$HERE/mcpd_as_client.mjs" "$WORK/"
ln -s "$PKG_DIR/node_modules" "$WORK/node_modules"
cat >"$WORK/mcpd.yaml" <<EOF
# written by mcpd_as_client.sh for scenario ${MCP_CONFORMANCE_SCENARIO:-?}
servers:
  upstream:
    url: "$URL"
    transport: streamable-http
    timeout: 15s
EOF
echo "mcpd_as_client.sh: scenario ${MCP_CONFORMANCE_SCENARIO:-?}, upstream $URL" >&2
timeout -k 5 30 "$NODE" "$WORK/mcpd_as_client.mjs" "$MCPD_BIN" "$WORK/mcpd.yaml"
