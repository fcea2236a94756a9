#!/usr/bin/env bash
# client_conformance.sh - the official MCP conformance suite's CLIENT scenarios
# with mcpd as the client (CTest: conformance.client, label conformance).
#
# For each scenario the suite starts its test server on a free port and runs
#   bash tests/e2e/mcpd_as_client.sh <test server URL>
# which puts mcpd (stdio, the URL as its remote upstream) between the official
# SDK client and that server and drives one action through it. A scenario
# passes when its checks have no FAILURE and no WARNING and the command exited
# 0 (the suite's own verdict). The suite's helper servers call listen() without
# a host; loopback.cjs (preloaded through NODE_OPTIONS) pins them to 127.0.0.1.
#
# Environment: MCPD_BIN (from CTest; default build/mcpd), MCPD_TEST_CACHE,
# CLIENT_SCENARIOS (default "initialize tools_call sse-retry").
# Exit status: 0 when every scenario passed, 1 otherwise, 2 on setup errors.
set -u
set -o pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MCPD_TEST_CACHE:-${HOME:-/root}/.cache/mcpd-test}"
SCENARIOS="${CLIENT_SCENARIOS:-initialize tools_call sse-retry}"
export MCPD_BIN="${MCPD_BIN:-$HERE/../../build/mcpd}"
# shellcheck disable=SC1091
. "$CACHE/env.sh" || { echo "client_conformance: $CACHE/env.sh missing: run scripts/deps.sh" >&2; exit 2; }
if [ ! -x "$NODE" ] || [ ! -f "$CONFORMANCE_CLI" ]; then echo "client_conformance: node or the suite missing: run scripts/deps.sh" >&2; exit 2; fi
[ -x "$MCPD_BIN" ] || { echo "client_conformance: no mcpd at $MCPD_BIN" >&2; exit 2; }
case "$HERE" in *' '*) echo "client_conformance: the suite splits --command on spaces; $HERE has one" >&2; exit 2 ;; esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-client-conformance.XXXXXX")" || exit 2
trap 'rm -rf "$WORK"' EXIT
# Like the harness's loopback.cjs, but the harness's version turns listen(port)
# into listen(port, '127.0.0.1'), which binds asynchronously, and the
# tools_call scenario reads server.address().port right after app.listen(0).
# So a host-less listen binds 127.0.0.1 synchronously here, as listen(port)
# itself does (Server#_listen2 is what listen() calls for a port without host).
cat >"$WORK/loopback.cjs" <<'EOF'
const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  const cb = args.find((a) => typeof a === 'function');
  let port;
  if (a0 !== null && typeof a0 === 'object' && !Array.isArray(a0)) {
    if (a0.path !== undefined || a0.fd !== undefined || a0.handle !== undefined || a0._handle !== undefined || a0.host)
      return orig.apply(this, args);
    port = a0.port;
  } else if (a0 === undefined || typeof a0 === 'function' || typeof a0 === 'number' || (typeof a0 === 'string' && /^\d+$/.test(a0))) {
    if (typeof args[1] === 'string') return orig.apply(this, args);
    port = typeof a0 === 'function' ? 0 : a0;
  } else {
    return orig.apply(this, args);
  }
  if (typeof this._listen2 !== 'function' || this._handle)
    return orig.call(this, { port: Number(port || 0), host: '127.0.0.1' }, ...(cb ? [cb] : []));
  if (cb) this.once('listening', cb);
  this._listen2('127.0.0.1', Number(port || 0), 4, 511);
  return this;
};
EOF

passed=0
failed=0
for s in $SCENARIOS; do
  out="$WORK/results-$s"
  mkdir -p "$out"
  echo "== scenario $s: conformance client --command 'bash $HERE/mcpd_as_client.sh' --scenario $s"
  (cd "$WORK" && NODE_OPTIONS="--require $WORK/loopback.cjs" timeout -k 5 90 \
    "$NODE" "$CONFORMANCE_CLI" client --command "bash $HERE/mcpd_as_client.sh" --scenario "$s" --timeout 40000 -o "$out") \
    >"$WORK/suite-$s.log" 2>&1
  rc=$?
  checks="$(find "$out" -name checks.json | head -n 1)"
  verdict="$("$NODE" - "$checks" "$rc" <<'EOF'
const fs = require('fs');
const [file, rc] = process.argv.slice(2);
let checks = null;
try { checks = JSON.parse(fs.readFileSync(file, 'utf8')); } catch {}
if (!Array.isArray(checks)) { console.log(`FAIL no checks.json (suite exit ${rc})`); process.exit(0); }
const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
const good = checks.filter((c) => c.status === 'SUCCESS');
const what = bad.map((c) => `${c.status} ${c.id}: ${(c.errorMessage || c.description || '').replace(/\s+/g, ' ')}`).join(' | ');
const ids = good.map((c) => c.id).join(', ');
console.log(bad.length === 0 && rc === '0' ? `PASS ${good.length} checks ok (${ids})` : `FAIL suite exit ${rc}; ${good.length} ok (${ids}); ${what}`);
EOF
)"
  echo "$verdict"
  case "$verdict" in
    PASS*) passed=$((passed + 1)) ;;
    *)
      failed=$((failed + 1))
      echo "---- suite output ($s) ----"
      tail -n 60 "$WORK/suite-$s.log"
      for f in stderr.txt stdout.txt; do
        p="$(find "$out" -name "$f" | head -n 1)"
        [ -n "$p" ] && [ -s "$p" ] && { echo "---- client $f ($s) ----"; tail -n 60 "$p"; }
      done
      echo "---- end ----"
      ;;
  esac
done
echo "client conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
