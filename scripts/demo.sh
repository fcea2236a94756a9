#!/usr/bin/env bash
# demo.sh - build mcpd and run it on the default example configuration:
# streamable HTTP on http://127.0.0.1:8080/mcp in front of the demo upstream
# (build/mcpd-demo-server). Ctrl-C stops it (and the upstream) cleanly.
# Extra arguments go to `mcpd serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --build-only
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mcpd mcpd-demo-server
echo "mcpd: try   curl -s -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\" >&2
echo "              -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"curl\",\"version\":\"1\"}}}' \\" >&2
echo "              -i http://127.0.0.1:8080/mcp" >&2
exec build/mcpd serve -c examples/default.yaml "$@"
