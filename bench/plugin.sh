#!/usr/bin/env bash
# bench/plugin.sh: a declarative plugin call through mcpd against calling the
# API fixture directly, in the same run. See bench/README.md.
#
#   direct  bench/load/httpload (C, keep-alive GET) -> bench/upstream/echo_api (C, epoll)
#   plugin  mcpload (tools/call "echo" over streamable HTTP) -> mcpd serve with one
#           declarative plugin whose operation is GET {config.base}/echo?text=... on
#           echo_api (egress.allowPrivate: true for the loopback fixture), answer
#           text picked with response.text: /text
#   stdio   mcpload -> mcpd serve with the C echo upstream over stdio (the usual
#           reference of the other benchmarks)
# The fixture is C so that Node is not the bottleneck. Each run measures every
# target at every concurrency, the order rotated. Ratios: plugin / direct (what
# the MCP layer plus mcpd's HTTP client cost over a bare HTTP call) and
# plugin / stdio.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}
RUNS=5; DURATION=4; WARMUP=1; CONCS="1 16"; MCPD_SRC=""; OUT=""

usage() {
  cat <<'EOF2'
usage: bench/plugin.sh [options]
  --runs N        repetitions (default 5)       --duration S  measured seconds (default 4)
  --warmup S      warm-up seconds (default 1)   --conc "1 16" concurrencies (default "1 16")
  --mcpd PATH     mcpd binary (default build-rel/mcpd; copied first)
  --quick         1 run x 2 s
  --out DIR       results folder (default $WORK/results/plugin-<UTC time>)
EOF2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --mcpd) MCPD_SRC=${2:-}; shift 2 || usage;;
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; shift;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "plugin.sh: unknown option $1" >&2; usage;;
  esac
done
source "$HERE/lib/common.sh"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }

MCPD_SRC=${MCPD_SRC:-$ROOT/build-rel/mcpd}
OUT=${OUT:-$WORK/results/plugin-$(date -u +%Y%m%dT%H%M%SZ)}
trap common_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
common_init
cd "$WORK" || exit 1
run gcc -O2 -Wall -Wextra -Werror -o "$BIN/echo_api" "$HERE/upstream/echo_api.c" || exit 1
run gcc -O2 -Wall -Wextra -Werror -pthread -o "$BIN/httpload" "$HERE/load/httpload.c" || exit 1

log "results in $OUT"
declare -A URL SPIDS
start_bg echo-api "$BIN/echo_api" 0
PAPI=$BGPID
for _ in $(seq 1 100); do APORT=$(head -1 "$OUT/logs/echo-api.log" 2>/dev/null | tr -dc 0-9); [ -n "$APORT" ] && break; sleep 0.05; done
[ -n "${APORT:-}" ] || { log "echo_api did not start"; exit 1; }
log "echo-api: pid $PAPI port $APORT"

PDIR=$WORK/plugin-echo
mkdir -p "$PDIR"
cat > "$PDIR/manifest.yaml" <<'EOF2'
# written by bench/plugin.sh: one declarative operation on bench/upstream/echo_api
name: echo-api
version: 1.0.0
config: { type: object, properties: { base: { type: string } }, required: [base] }
operations:
  echo:
    description: GET /echo?text=...
    input: { type: object, properties: { text: { type: string } }, required: [text] }
    method: GET
    url: "{config.base}/echo"
    query: [text]
    response: { text: /text }
EOF2
CFGP=$WORK/plugin.yaml
printf '# written by bench/plugin.sh\nlog_level: warn\nplugins:\n  api:\n    source: %s\n    config: { base: "http://127.0.0.1:%s" }\n    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
  "$PDIR" "$APORT" > "$CFGP"
CFGS=$WORK/plugin-stdio.yaml
printf '# written by bench/plugin.sh: the reference\nlog_level: warn\nservers:\n  echo:\n    command: %s\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
  "$BIN/echo_stdio" > "$CFGS"
start_mcpd plugin "$CFGP" || exit 1
URL[plugin]=$MURL; SPIDS[plugin]="$MPID $PAPI"
start_mcpd plugin-stdio "$CFGS" || exit 1
URL[stdio]=$MURL; SPIDS[stdio]=$MPID
SPIDS[direct]=$PAPI
TARGETS=(direct plugin stdio)
echo '[{"name":"direct","what":"httpload -> echo_api (C HTTP fixture), no mcpd"},{"name":"plugin","what":"mcpload -> mcpd, declarative plugin -> echo_api"},{"name":"stdio","what":"mcpload -> mcpd, stdio C echo (reference)"}]' > "$OUT/targets.json"
cp "$CFGP" "$CFGS" "$PDIR/manifest.yaml" "$OUT/"

load_cmd() { # target conc duration warmup
  if [ "$1" = direct ]; then
    LCMD=("$BIN/httpload" -p "$APORT" -P "/echo?text=hello" -t hello -c "$2" -d "$3" -w "$4" -j)
  else
    LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j "${URL[$1]}")
  fi
}
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
echo "tcp connections mcpd->echo_api at the end (ss): $(ss -tnH state established "( dport = :$APORT )" 2>/dev/null | wc -l)" >> "$OUT/machine.txt"
{
  echo "## plugin.sh: $(date -u +%FT%TZ)"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  python3 "$HERE/lib/summarize_ext.py" "$OUT" --ratio "plugin / direct=plugin/direct" --ratio "plugin / stdio=plugin/stdio"
  echo "Server CPU/call: direct counts echo_api, plugin mcpd and echo_api, stdio mcpd (with its echo)."
  echo
} > "$OUT/summary.md"
stop_started
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
