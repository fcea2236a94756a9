#!/usr/bin/env bash
# conformance.sh - run the official MCP server conformance suite
# (copy of shared/harness/conformance.sh; changed: the default cache folder)
# (@modelcontextprotocol/conformance, pinned) against an MCP server URL.
#
# Usage:
#   conformance.sh [options] URL                  test a server already listening at URL
#   conformance.sh [options] --start 'CMD' URL    start CMD (in its own process group),
#                                                 wait for URL, test it, stop CMD
#   conformance.sh [options] --everything         start the pinned
#                                                 @modelcontextprotocol/server-everything
#                                                 (streamable HTTP) on a free loopback port
#                                                 and test it (harness self-test)
#   conformance.sh --install-only                 only populate the cache
#   conformance.sh --install-clients              also install the scriptable clients
#                                                 (@modelcontextprotocol/inspector-cli,
#                                                 sdk-client.mjs) into the cache; see README
#   conformance.sh --list                         list the suite's scenarios
#
# Options:
#   --suite S                 conformance suite: active (default), all, pending
#   --requirements REV        run exactly the scenarios protocol revision REV requires
#                             (suite 0.2.x, e.g. 2026-07-28); replaces --suite
#   --scenario NAME           run one scenario only (repeatable)
#   --expected-failures FILE  baseline of scenario names expected to fail (one per
#                             line, '#' comments, YAML "- name" lines accepted).
#                             A listed scenario that fails is not counted as failed;
#                             a listed scenario that passes IS counted as failed
#                             (stale baseline), like the suite's own --expected-failures.
#                             A line SCENARIO:CHECK-ID lists one check instead: the
#                             scenario then counts as an expected failure only when
#                             exactly its listed checks fail.
#   --results DIR             write per-scenario checks.json into a new run-* folder
#                             under DIR (default: a fresh folder under the cache)
#   --wait SECONDS            how long to wait for the server to come up (default 30)
#   --timeout SECONDS         wall-clock limit for the whole suite run (default 300)
#   -v, --verbose             show the suite's full output
#
# Environment:
#   MCP_CONFORMANCE_CACHE     cache folder (default $MCPD_TEST_CACHE, else
#                             $HOME/.cache/mcpd-test: the folder scripts/deps.sh fills)
#   CONFORMANCE_VERSION       pinned suite version (default 0.1.16)
#   SERVER_EVERYTHING_VERSION pinned server-everything version (default 2026.8.31)
#   NODE22_VERSION            Node >= 22 fetched as an npm package when the system
#                             node is older (default 22.23.3)
#   INSPECTOR_CLI_VERSION     for --install-clients (default 1.0.3)
#   MCP_CONFORMANCE_ALLOW_REMOTE=1  allow a non-loopback URL (default: refuse)
#
# Last line printed: "conformance: N passed, M failed" (counted per scenario).
# Exit status: 0 when M == 0, 1 when M > 0, 2 on usage/setup errors.

set -u
set -o pipefail

CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.1.16}"
SERVER_EVERYTHING_VERSION="${SERVER_EVERYTHING_VERSION:-2026.8.31}"
INSPECTOR_CLI_VERSION="${INSPECTOR_CLI_VERSION:-1.0.3}"
NODE22_VERSION="${NODE22_VERSION:-22.23.3}"
CACHE="${MCP_CONFORMANCE_CACHE:-${MCPD_TEST_CACHE:-${HOME:-/root}/.cache/mcpd-test}}"

SUITE="active"
REQUIREMENTS=""
SCENARIOS=()
EXPECTED=""
RESULTS=""
WAIT_S=30
TIMEOUT_S=300
VERBOSE=0
START_CMD=""
URL=""
MODE="run"

die() { echo "conformance.sh: $*" >&2; echo "conformance: 0 passed, 1 failed"; exit 2; }
log() { echo "conformance.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE="${2:?}"; shift 2 ;;
    --requirements) REQUIREMENTS="${2:?}"; shift 2 ;;
    --scenario) SCENARIOS+=("${2:?}"); shift 2 ;;
    --expected-failures) EXPECTED="${2:?}"; shift 2 ;;
    --results) RESULTS="${2:?}"; shift 2 ;;
    --wait) WAIT_S="${2:?}"; shift 2 ;;
    --timeout) TIMEOUT_S="${2:?}"; shift 2 ;;
    --start) START_CMD="${2:?}"; shift 2 ;;
    --everything) MODE="everything"; shift ;;
    --install-only) MODE="install"; shift ;;
    --install-clients) MODE="clients"; shift ;;
    --list) MODE="list"; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) awk 'NR>1 && !/^#/{exit} NR>1{sub(/^# ?/,""); print}' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$URL" ] || die "more than one URL given"; URL="$1"; shift ;;
  esac
done

if [ -n "$EXPECTED" ]; then
  [ -r "$EXPECTED" ] || die "cannot read expected-failures file $EXPECTED"
  EXPECTED="$(cd "$(dirname "$EXPECTED")" && pwd)/$(basename "$EXPECTED")"
fi

# ---------------------------------------------------------------- install ---
PKG_DIR="$CACHE/pkgs-c${CONFORMANCE_VERSION}-e${SERVER_EVERYTHING_VERSION}"
NODE_DIR="$CACHE/node-${NODE22_VERSION}"

pick_node() {
  local sys_major=0
  if command -v node >/dev/null 2>&1; then
    sys_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  fi
  if [ "$sys_major" -ge 22 ] 2>/dev/null; then
    NODE="$(command -v node)"
    return 0
  fi
  # The suite's bundle uses fs.globSync (Node >= 22). Fetch Node 22 as an npm package.
  local arch pkg
  case "$(uname -m)" in
    x86_64|amd64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "no Node 22 package known for $(uname -m); install Node >= 22" ;;
  esac
  pkg="node-linux-${arch}"
  NODE="$NODE_DIR/node_modules/$pkg/bin/node"
  if [ ! -x "$NODE" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (needed to fetch Node 22)"
    log "system node is v${sys_major}; installing $pkg@$NODE22_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR" || die "cannot create $NODE_DIR"
    [ -f "$NODE_DIR/package.json" ] || echo '{"name":"mcpd-node22","private":true}' > "$NODE_DIR/package.json"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error "$pkg@$NODE22_VERSION" >&2) \
      || die "npm install $pkg@$NODE22_VERSION failed"
  fi
  [ -x "$NODE" ] || die "node 22 binary missing at $NODE"
}

install_pkgs() {
  local cli="$PKG_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  local se="$PKG_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
  if [ ! -f "$cli" ] || [ ! -f "$se" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found"
    log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and server-everything@$SERVER_EVERYTHING_VERSION into $PKG_DIR"
    mkdir -p "$PKG_DIR" || die "cannot create $PKG_DIR"
    [ -f "$PKG_DIR/package.json" ] || echo '{"name":"mcpd-conformance-cache","private":true}' > "$PKG_DIR/package.json"
    (cd "$PKG_DIR" && npm install --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
        "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION" >&2) \
      || die "npm install of the pinned packages failed"
  fi
  CLI="$cli"
  EVERYTHING="$se"
  # Node servers that call listen(port) with no host bind every interface;
  # this preload pins such calls to 127.0.0.1 (used for server-everything
  # and for the suite's own helper servers).
  LOOPBACK="$CACHE/loopback.cjs"
  cat > "$LOOPBACK" <<'EOF'
const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (a0 !== null && typeof a0 === 'object' && !Array.isArray(a0)) {
    if (a0.path === undefined && a0.fd === undefined && a0.handle === undefined &&
        a0._handle === undefined && !a0.host) args[0] = Object.assign({}, a0, { host: '127.0.0.1' });
  } else if (a0 === undefined || typeof a0 === 'number' || (typeof a0 === 'string' && /^\d+$/.test(a0))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  }
  return orig.apply(this, args);
};
EOF
}

mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"
pick_node
install_pkgs
export NODE_OPTIONS="--require $LOOPBACK${NODE_OPTIONS:+ $NODE_OPTIONS}"

if [ "$MODE" = "install" ]; then
  log "cache ready: node=$("$NODE" --version) suite=$CONFORMANCE_VERSION"
  exit 0
fi
if [ "$MODE" = "clients" ]; then
  HERE="$(cd "$(dirname "$0")" && pwd)"
  if [ ! -f "$PKG_DIR/node_modules/@modelcontextprotocol/inspector-cli/build/cli.js" ]; then
    (cd "$PKG_DIR" && npm install --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/inspector-cli@$INSPECTOR_CLI_VERSION" >&2) \
      || die "npm install of inspector-cli failed"
  fi
  cp "$HERE/sdk-client.mjs" "$PKG_DIR/sdk-client.mjs" || die "cannot copy sdk-client.mjs"
  mkdir -p "$PKG_DIR/cwd"
  echo "NODE=$NODE"
  echo "PKG_DIR=$PKG_DIR"
  echo "SDK_CLIENT=$PKG_DIR/sdk-client.mjs"
  echo "INSPECTOR_CLI=$PKG_DIR/node_modules/@modelcontextprotocol/inspector-cli/build/cli.js   (run it with cwd $PKG_DIR/cwd)"
  echo "SERVER_EVERYTHING=$EVERYTHING"
  exit 0
fi
if [ "$MODE" = "list" ]; then
  "$NODE" "$CLI" list --server
  exit $?
fi

# ----------------------------------------------------------- server start ---
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    # The server was started with setsid: its PID is its process-group id.
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.3
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

free_port() {
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

if [ "$MODE" = "everything" ]; then
  [ -z "$URL" ] || die "--everything takes no URL"
  [ -z "$START_CMD" ] || die "--everything and --start are exclusive"
  PORT="$(free_port)" || die "could not find a free port"
  URL="http://127.0.0.1:$PORT/mcp"
  START_CMD="PORT=$PORT exec '$NODE' '$EVERYTHING' streamableHttp"
fi

[ -n "$URL" ] || die "no server URL given (see --help)"
case "$URL" in http://*|https://*) ;; *) die "URL must be http(s)://..." ;; esac
HOSTPART="${URL#*://}"; HOSTPART="${HOSTPART%%/*}"
case "$HOSTPART" in
  127.*|localhost|localhost:*|\[::1\]|\[::1\]:*) ;;
  *) [ "${MCP_CONFORMANCE_ALLOW_REMOTE:-0}" = 1 ] || die "refusing non-loopback URL $URL (set MCP_CONFORMANCE_ALLOW_REMOTE=1)" ;;
esac

# keep the 10 newest run folders
ls -1dt "$CACHE"/run.* 2>/dev/null | tail -n +10 | while read -r d; do rm -rf -- "$d"; done
RUN_DIR="$(mktemp -d "$CACHE/run.XXXXXX")" || die "mktemp failed"
if [ -n "$START_CMD" ]; then
  log "starting server: $START_CMD"
  setsid bash -c "$START_CMD" >"$RUN_DIR/server.log" 2>&1 < /dev/null &
  SERVER_PID=$!
  deadline=$(( $(date +%s) + WAIT_S ))
  until "$NODE" -e 'fetch(process.argv[1],{method:"GET",headers:{Accept:"text/event-stream"},signal:AbortSignal.timeout(2000)}).then(()=>process.exit(0),()=>process.exit(1))' "$URL" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      sed 's/^/  server: /' "$RUN_DIR/server.log" >&2
      die "server command exited before $URL answered"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { sed 's/^/  server: /' "$RUN_DIR/server.log" >&2; die "server did not answer at $URL within ${WAIT_S}s"; }
    sleep 0.3
  done
  log "server is up (pid $SERVER_PID) at $URL"
fi

# -------------------------------------------------------------- run suite ---
if [ -n "$RESULTS" ]; then OUT="$RESULTS/run-$(date +%Y%m%dT%H%M%S)-$$"; else OUT="$RUN_DIR/results"; fi
mkdir -p "$OUT" || die "cannot create results folder $OUT"
OUT="$(cd "$OUT" && pwd)"
LOGF="$RUN_DIR/suite.log"
: > "$LOGF"

run_suite() {
  if [ -n "$REQUIREMENTS" ] && [ ${#SCENARIOS[@]} -eq 0 ]; then
    (cd "$RUN_DIR" && timeout -k 10 "$TIMEOUT_S" "$NODE" "$CLI" server --url "$URL" --requirements "$REQUIREMENTS" -o "$OUT") >>"$LOGF" 2>&1
  elif [ ${#SCENARIOS[@]} -eq 0 ]; then
    (cd "$RUN_DIR" && timeout -k 10 "$TIMEOUT_S" "$NODE" "$CLI" server --url "$URL" --suite "$SUITE" -o "$OUT") >>"$LOGF" 2>&1
  else
    local s rc=0
    for s in "${SCENARIOS[@]}"; do
      echo "=== Running scenario: $s ===" >>"$LOGF"
      (cd "$RUN_DIR" && timeout -k 10 "$TIMEOUT_S" "$NODE" "$CLI" server --url "$URL" --scenario "$s" -o "$OUT") >>"$LOGF" 2>&1 || rc=$?
    done
    return $rc
  fi
}
run_suite
SUITE_RC=$?
[ "$VERBOSE" = 1 ] && cat "$LOGF"
[ "$SUITE_RC" -eq 124 ] || [ "$SUITE_RC" -eq 137 ] && log "suite run hit the ${TIMEOUT_S}s limit"

# ------------------------------------------------------------- summarise ---
"$NODE" - "$OUT" "$LOGF" "${EXPECTED:-}" <<'EOF'
const fs = require('fs'), path = require('path');
const [outDir, logFile, expectedFile] = process.argv.slice(2);
const log = fs.readFileSync(logFile, 'utf8');
// Scenarios the suite announced, in order.
const announced = [...log.matchAll(/^=== Running scenario: (.+?) ===$/gm)].map(m => m[1]);
const results = new Map();
for (const d of fs.readdirSync(outDir)) {
  const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/.exec(d);
  if (!m) continue;
  const f = path.join(outDir, d, 'checks.json');
  let checks = null;
  try { checks = JSON.parse(fs.readFileSync(f, 'utf8')); } catch { /* crashed */ }
  results.set(m[1], checks);
}
const names = [...new Set([...announced, ...results.keys()])];
let expected = new Set();
const expectedChecks = new Map(); // scenario -> Set of check ids expected to fail
if (expectedFile) {
  for (let line of fs.readFileSync(expectedFile, 'utf8').split('\n')) {
    line = line.replace(/#.*/, '').trim().replace(/^-\s*/, '').replace(/^['"]|['"]$/g, '');
    if (!line || line.endsWith(':')) continue;
    const c = line.indexOf(':');
    if (c < 0) { expected.add(line); continue; }
    const sc = line.slice(0, c), id = line.slice(c + 1);
    if (!expectedChecks.has(sc)) expectedChecks.set(sc, new Set());
    expectedChecks.get(sc).add(id);
  }
}
let passed = 0, failed = 0, xfail = 0;
const w = Math.max(10, ...names.map(n => n.length));
for (const n of names) {
  const checks = results.get(n);
  let status, detail = '';
  if (!Array.isArray(checks)) {
    status = 'FAIL'; detail = 'no checks.json (scenario crashed or timed out)';
  } else {
    const bad = checks.filter(c => c.status === 'FAILURE');
    const ok = checks.filter(c => c.status === 'SUCCESS').length;
    const warn = checks.filter(c => c.status === 'WARNING').length;
    status = bad.length ? 'FAIL' : 'PASS';
    detail = `${ok} ok, ${bad.length} failed, ${warn} warnings`;
    if (bad.length) detail += ' - ' + bad.map(c => `${c.id}: ${(c.errorMessage || c.description || '').replace(/\s+/g, ' ').slice(0, 160)}`).join(' | ');
  }
  let verdict;
  const want = expectedChecks.get(n);
  if (want && Array.isArray(checks)) {
    const badIds = new Set(checks.filter(c => c.status === 'FAILURE').map(c => c.id));
    const extra = [...badIds].filter(id => !want.has(id));
    const stale = [...want].filter(id => !badIds.has(id));
    if (extra.length) { verdict = 'FAIL'; failed++; }
    else if (stale.length) { verdict = 'XPASS'; failed++; detail += ` (checks listed as expected failures passed: ${stale.join(', ')}; stale baseline)`; }
    else { verdict = 'XFAIL'; xfail++; }
  } else if (expected.has(n)) {
    if (status === 'FAIL') { verdict = 'XFAIL'; xfail++; }
    else { verdict = 'XPASS'; failed++; detail += ' (listed as expected failure: stale baseline)'; }
  } else if (status === 'PASS') { verdict = 'PASS'; passed++; }
  else { verdict = 'FAIL'; failed++; }
  console.log(`${verdict.padEnd(5)} ${n.padEnd(w)}  ${detail}`);
}
for (const n of [...expected, ...expectedChecks.keys()]) if (!names.includes(n)) console.log(`NOTE  ${n.padEnd(w)}  listed in baseline but not run`);
if (names.length === 0) { console.log('no scenario ran; see the suite log'); failed++; }
if (xfail) console.log(`expected failures (baseline): ${xfail}`);
console.log(`results: ${outDir}`);
if (failed) console.log(`suite log: ${logFile}`);
console.log(`conformance: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
EOF
exit $?
