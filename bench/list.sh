#!/usr/bin/env bash
# bench/list.sh: tools/list latency with a large merged catalog, over
# streamable HTTP. See bench/README.md.
#
#   list      mcpd serve with 10 stdio upstreams (bench/upstream/echo_stdio.c in many-tools mode,
#             50 tools each; prefix auto -> "s03__tool_017"): tools/list, one
#             page of 500 tools (page_size default 500); every answer must
#             list exactly 500 tools and carry no nextCursor (mcpload -l 500)
#   call      the same mcpd: tools/call s00__tool_000 {"text":"hello"}
#   list-50   a second mcpd with one such upstream (50 tools, unprefixed):
#             tools/list of 50, to see how the cost grows with the catalog
# Each run measures every target at every concurrency, the order rotated.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}
RUNS=5; DURATION=4; WARMUP=1; CONCS="1 8"; MCPD_SRC=""; OUT=""; NSERVERS=10; NTOOLS=50; PROFILE=no

usage() {
  cat <<'EOF'
usage: bench/list.sh [options]
  --runs N        repetitions (default 5)       --duration S  measured seconds (default 4)
  --warmup S      warm-up seconds (default 1)   --conc "1 8"  concurrencies (default "1 8")
  --servers N     upstreams (default 10)        --tools N     tools per upstream (default 50)
  --mcpd PATH     mcpd binary (default build-rel/mcpd; copied first)
  --profile yes   afterwards, perf record mcpd for 5 s under tools/list at the highest c
  --quick         1 run x 2 s
  --out DIR       results folder (default $WORK/results/list-<UTC time>)
EOF
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --servers) NSERVERS=${2:-}; shift 2 || usage;;
    --tools) NTOOLS=${2:-}; shift 2 || usage;;
    --mcpd) MCPD_SRC=${2:-}; shift 2 || usage;;
    --profile) PROFILE=${2:-}; shift 2 || usage;;
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; shift;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "list.sh: unknown option $1" >&2; usage;;
  esac
done
source "$HERE/lib/common.sh"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }
[[ $NSERVERS =~ ^[0-9]+$ ]] && [ "$NSERVERS" -ge 2 ] && [ "$NSERVERS" -le 100 ] || { echo "--servers: 2..100" >&2; exit 2; }
[[ $NTOOLS =~ ^[0-9]+$ ]] && [ "$NTOOLS" -ge 1 ] && [ "$NTOOLS" -le 1000 ] || { echo "--tools: 1..1000" >&2; exit 2; }
TOTAL=$((NSERVERS * NTOOLS))
[ "$TOTAL" -le 500 ] || { echo "servers x tools must fit one page (500)" >&2; exit 2; }

MCPD_SRC=${MCPD_SRC:-$ROOT/build-rel/mcpd}
OUT=${OUT:-$WORK/results/list-$(date -u +%Y%m%dT%H%M%SZ)}
trap common_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
common_init
cd "$WORK" || exit 1

CFG=$WORK/list-many.yaml
{
  echo "# written by bench/list.sh: $NSERVERS upstreams x $NTOOLS tools"
  echo "log_level: warn"
  echo "servers:"
  for i in $(seq 0 $((NSERVERS - 1))); do
    printf '  s%02d:\n    command: %s\n    args: ["%d", "tool"]\n' "$i" "$BIN/echo_stdio" "$NTOOLS"
  done
  echo "catalog: { prefix: auto }"
  echo "limits:"
  echo "  max_inflight: 128"
  echo "  max_sessions: 2000"
} > "$CFG"
CFG1=$WORK/list-one.yaml
printf '# written by bench/list.sh: 1 upstream x %d tools\nlog_level: warn\nservers:\n  s00:\n    command: %s\n    args: ["%d", "tool"]\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
  "$NTOOLS" "$BIN/echo_stdio" "$NTOOLS" > "$CFG1"
cp "$CFG" "$CFG1" "$OUT/"
echo "[{\"name\":\"list\",\"what\":\"tools/list, $NSERVERS upstreams x $NTOOLS tools = $TOTAL in one page\"},{\"name\":\"call\",\"what\":\"tools/call s00__tool_000 on the same mcpd\"},{\"name\":\"list-$NTOOLS\",\"what\":\"tools/list, 1 upstream x $NTOOLS tools (second mcpd)\"}]" > "$OUT/targets.json"

log "results in $OUT"
start_mcpd list-many "$CFG" || exit 1
PM=$MPID; UM=$MURL
start_mcpd list-one "$CFG1" || exit 1
P1=$MPID; U1=$MURL
# wait until every upstream has listed its tools (the catalog is complete)
for _ in $(seq 1 100); do
  timeout 10 "$BIN/mcpload" -c 1 -d 0.2 -w 0 -j -l "$TOTAL" "$UM" 2>/dev/null | grep -q '"errors":0,' && break
  sleep 0.1
done
load_cmd() { # TARGET C D W -> LCMD
  case $1 in
    list) LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j -l "$TOTAL" "$UM");;
    call) LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j -n s00__tool_000 "$UM");;
    list-*) LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j -l "$NTOOLS" "$U1");;
  esac
}
spid() { case $1 in list|call) echo "$PM";; *) echo "$P1";; esac; }
TARGETS=(list call "list-$NTOOLS")
for t in "${TARGETS[@]}"; do load_cmd "$t" 1 0.5 0; smoke "$t" "${LCMD[@]}" || exit 1; done

# the size of one tools/list answer (the bytes mcpd sends per call)
python3 - "$UM" "$U1" > "$OUT/list-size.txt" <<'EOF'
import json, sys, urllib.request
for url in sys.argv[1:]:
    def post(body, sid=None):
        h = {'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream',
             'MCP-Protocol-Version': '2025-06-18'}
        if sid: h['Mcp-Session-Id'] = sid
        r = urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), h), timeout=10)
        return r.headers.get('Mcp-Session-Id'), r.headers.get('Content-Type'), r.read()
    sid, _, _ = post({'jsonrpc': '2.0', 'id': 1, 'method': 'initialize', 'params': {
        'protocolVersion': '2025-06-18', 'capabilities': {}, 'clientInfo': {'name': 'size', 'version': '1'}}})
    post({'jsonrpc': '2.0', 'method': 'notifications/initialized'}, sid)
    _, ct, body = post({'jsonrpc': '2.0', 'id': 2, 'method': 'tools/list', 'params': {}}, sid)
    txt = body.decode()
    if 'event-stream' in (ct or ''):
        txt = ''.join(l[5:].strip() for l in txt.splitlines() if l.startswith('data:'))
    d = json.loads(txt)
    tools = d['result']['tools']
    print('%s: %d tools, %d bytes of HTTP body (%s), first %s, last %s, nextCursor %s' % (
        url, len(tools), len(body), ct, tools[0]['name'], tools[-1]['name'], d['result'].get('nextCursor')))
EOF
cat "$OUT/list-size.txt" >&2

n=${#TARGETS[@]}
log "load matrix: $RUNS runs x conc [$CONCS] x $n targets x (${WARMUP}+${DURATION}) s"
rot=0
for r in $(seq 1 "$RUNS"); do
  for c in $CONCS; do
    for k in $(seq 0 $((n - 1))); do
      t=${TARGETS[$(((k + rot) % n))]}
      load_cmd "$t" "$c" "$DURATION" "$WARMUP"
      measure "$t" "$c" "$r" "$k" "$(spid "$t")" "${LCMD[@]}"
    done
    rot=$((rot + 1))
  done
done

{
  echo "## list.sh: $(date -u +%FT%TZ)"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  python3 "$HERE/lib/summarize_ext.py" "$OUT" --ratio "list/call=list/call" --ratio "list/list-$NTOOLS=list/list-$NTOOLS"
  echo "Answer sizes:"
  echo
  sed 's/^/    /' "$OUT/list-size.txt"
  echo
} > "$OUT/summary.md"
if [ "$PROFILE" = yes ] && command -v perf >/dev/null; then
  cmax=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)
  log "profile: perf record mcpd (pid $PM) under tools/list at c=$cmax for 5 s"
  load_cmd list "$cmax" 7 1
  LCMD=(timeout -k 5 45 "${LCMD[@]}")
  logcmd "${LCMD[@]}"
  "${LCMD[@]}" > "$OUT/logs/perf-list-load.json" 2>> "$OUT/logs/load.log" &
  LOADPID=$!
  sleep 1.5
  profile_pid list "$PM" 5
  wait "$LOADPID"; LOADPID=""
  {
    echo "### Profile: mcpd under tools/list (500 tools) at c=$cmax"
    echo
    echo "load while profiling (perf slows mcpd down): $(grep '^{' "$OUT/logs/perf-list-load.json" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*/\1 req\/s, p50 \2 µs/')"
    echo
    cat "$OUT/profile-list.md" 2>/dev/null
  } >> "$OUT/summary.md"
fi
stop_started
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
