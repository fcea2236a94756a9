#!/usr/bin/env bash
# bench/remote.sh: tools/call through a remote (streamable HTTP) upstream.
# See bench/README.md.
#
#   A          mcpd A: serve, the C echo upstream over stdio (the reference)
#   B_A        mcpd B: serve, one remote server `url: http://127.0.0.1:PORT_A/mcp`
#              (share: shared): client -> B -> HTTP -> A -> stdio echo
#   node       bench/upstream/echo_http.cjs (the official TypeScript SDK's
#              streamable HTTP server, SSE answers) alone    [when node and the SDK exist]
#   C_node     mcpd C: serve, `url:` the node server          [same]
# Each run measures every target at every concurrency, the order rotated.
# Ratios: B_A / A (what one more mcpd hop over HTTP costs) and C_node / node.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}
RUNS=5; DURATION=4; WARMUP=1; CONCS="1 64"; MCPD_SRC=""; OUT=""; NODE=auto; PROFILE=no

usage() {
  cat <<'EOF'
usage: bench/remote.sh [options]
  --runs N        repetitions (default 5)       --duration S  measured seconds (default 4)
  --warmup S      warm-up seconds (default 1)   --conc "1 64" concurrencies (default "1 64")
  --node MODE     auto (default: with node and the SDK found), yes, no
  --profile yes   afterwards, perf record mcpd B for 5 s under c=max
  --mcpd PATH     mcpd binary (default build-rel/mcpd; copied first)
  --quick         1 run x 2 s
  --out DIR       results folder (default $WORK/results/remote-<UTC time>)
The SDK is looked for in $MCPD_BENCH_PEERS, /tmp/mcpd-bench/peers and
~/.cache/mcpd-test/pkgs-*/ (what scripts/test.sh installs); nothing is installed.
EOF
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --node) NODE=${2:-}; shift 2 || usage;;
    --profile) PROFILE=${2:-}; shift 2 || usage;;
    --mcpd) MCPD_SRC=${2:-}; shift 2 || usage;;
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; shift;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "remote.sh: unknown option $1" >&2; usage;;
  esac
done
source "$HERE/lib/common.sh"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }
case $NODE in auto|yes|no) ;; *) usage;; esac

MCPD_SRC=${MCPD_SRC:-$ROOT/build-rel/mcpd}
OUT=${OUT:-$WORK/results/remote-$(date -u +%Y%m%dT%H%M%SZ)}
trap common_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
common_init
cd "$WORK" || exit 1

PEERS=""
if [ "$NODE" != no ] && command -v node >/dev/null; then
  for d in "${MCPD_BENCH_PEERS:-}" /tmp/mcpd-bench/peers "$HOME"/.cache/mcpd-test/pkgs-*; do
    [ -n "$d" ] && [ -f "$d/node_modules/@modelcontextprotocol/sdk/package.json" ] && { PEERS=$d; break; }
  done
fi
[ "$NODE" = yes ] && [ -z "$PEERS" ] && { echo "remote.sh: node or the SDK not found" >&2; exit 1; }
echo "node: $(command -v node >/dev/null && node --version) sdk: ${PEERS:-none} $( [ -n "$PEERS" ] && sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PEERS/node_modules/@modelcontextprotocol/sdk/package.json" | head -1)" >> "$OUT/machine.txt"

CFGA=$WORK/remote-a.yaml
printf '# written by bench/remote.sh: mcpd A, the C echo upstream over stdio\nlog_level: warn\nservers:\n  echo:\n    command: %s\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
  "$BIN/echo_stdio" > "$CFGA"
remote_cfg() { # file url
  printf '# written by bench/remote.sh: a remote streamable-HTTP upstream\nlog_level: warn\nservers:\n  echo:\n    url: %s\n    transport: streamable-http\n    share: shared\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
    "$2" > "$1"
}

log "results in $OUT"
declare -A URL SPIDS
start_mcpd remote-a "$CFGA" || exit 1
PA=$MPID; URL[A]=$MURL; SPIDS[A]=$PA
CFGB=$WORK/remote-b.yaml
remote_cfg "$CFGB" "${URL[A]}"
start_mcpd remote-b "$CFGB" || exit 1
URL[B_A]=$MURL; SPIDS[B_A]="$MPID $PA"; PB=$MPID
TARGETS=(A B_A)
WHAT='[{"name":"A","what":"mcpd A, stdio C echo (reference)"},{"name":"B_A","what":"mcpd B, url: mcpd A (remote streamable HTTP)"}'
if [ -n "$PEERS" ]; then
  NPORT=$(free_port)
  start_bg node-echo env MCPD_BENCH_PEERS="$PEERS" node "$HERE/upstream/echo_http.cjs" --port "$NPORT" --host 127.0.0.1
  PN=$BGPID
  for _ in $(seq 1 300); do port_open "$NPORT" && break; kill -0 "$PN" 2>/dev/null || break; sleep 0.02; done
  if port_open "$NPORT"; then
    URL[node]=http://127.0.0.1:$NPORT/mcp; SPIDS[node]=$PN
    CFGC=$WORK/remote-c.yaml
    remote_cfg "$CFGC" "${URL[node]}"
    start_mcpd remote-c "$CFGC" || exit 1
    URL[C_node]=$MURL; SPIDS[C_node]="$MPID $PN"
    TARGETS+=(node C_node)
    WHAT+=',{"name":"node","what":"echo_http.cjs (SDK, node) alone"},{"name":"C_node","what":"mcpd C, url: echo_http.cjs"}'
  else
    log "echo_http.cjs did not start (see logs/node-echo.log): no node targets"
  fi
fi
echo "$WHAT]" > "$OUT/targets.json"
cp "$CFGA" "$CFGB" ${CFGC:+"$CFGC"} "$OUT/"

load_cmd() { LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j "${URL[$1]}"); }
sleep 0.5
for t in "${TARGETS[@]}"; do load_cmd "$t" 1 0.5 0; smoke "$t" "${LCMD[@]}" || exit 1; done

n=${#TARGETS[@]}
log "load matrix: $RUNS runs x conc [$CONCS] x $n targets x (${WARMUP}+${DURATION}) s"
rot=0
for r in $(seq 1 "$RUNS"); do
  for c in $CONCS; do
    for k in $(seq 0 $((n - 1))); do
      t=${TARGETS[$(((k + rot) % n))]}
      load_cmd "$t" "$c" "$DURATION" "$WARMUP"
      measure "$t" "$c" "$r" "$k" "${SPIDS[$t]}" "${LCMD[@]}"
    done
    rot=$((rot + 1))
  done
done
# connections between B and A after the matrix (how many the remote adapter keeps)
PORTA=${URL[A]##*:}; PORTA=${PORTA%%/*}
echo "tcp connections B->A at the end (ss): $(ss -tnH state established "( dport = :$PORTA )" 2>/dev/null | wc -l)" >> "$OUT/machine.txt"

RATIOS=(--ratio "B_A / A=B_A/A")
[ -n "${URL[node]:-}" ] && RATIOS+=(--ratio "C_node / node=C_node/node" --ratio "C_node / B_A=C_node/B_A")
{
  echo "## remote.sh: $(date -u +%FT%TZ)"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  python3 "$HERE/lib/summarize_ext.py" "$OUT" "${RATIOS[@]}"
  echo "Server CPU/call: B_A counts mcpd B and mcpd A (with its echo), C_node mcpd C and node."
  echo
} > "$OUT/summary.md"

if [ "$PROFILE" = yes ] && command -v perf >/dev/null; then
  cmax=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)
  log "profile: perf record mcpd B (pid $PB) at c=$cmax for 5 s"
  load_cmd B_A "$cmax" 7 1
  LCMD=(timeout -k 5 45 "${LCMD[@]}")
  logcmd "${LCMD[@]}"
  "${LCMD[@]}" > "$OUT/logs/perf-b-load.json" 2>> "$OUT/logs/load.log" &
  LOADPID=$!
  sleep 1.5
  profile_pid mcpd-b "$PB" 5
  wait "$LOADPID"; LOADPID=""
  {
    echo "### Profile: mcpd B (remote upstream) at c=$cmax"
    echo
    echo "load while profiling: $(grep '^{' "$OUT/logs/perf-b-load.json" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*/\1 req\/s, p50 \2 µs/')"
    echo
    cat "$OUT/profile-mcpd-b.md" 2>/dev/null
  } >> "$OUT/summary.md"
fi
stop_started
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
