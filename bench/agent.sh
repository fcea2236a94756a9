#!/usr/bin/env bash
# bench/agent.sh: tools/call through a connected agent (`mcpd agent`), and
# the memory of many connected agents. See bench/README.md.
#
#   direct   mcpd serve, the C echo upstream (bench/upstream/echo_stdio) over
#            stdio: client -> mcpd -> stdio echo                 (the baseline)
#   agent    the same mcpd process; a `mcpd agent` on 127.0.0.1 bridges the
#            same echo program as group "echo" (tool bench-echo__echo):
#            client -> mcpd -> WebSocket -> mcpd agent -> stdio echo
# Both targets live in one mcpd (one config), measured back to back at each
# concurrency, the order rotated. Ratio: agent / direct.
#
# Then the swarm: a second mcpd with N agent keys (`mcpd agents create` in a
# loop) and bench/agent_swarm.c holding N agent connections (each lists one
# tool); mcpd's RSS before the swarm, with all N listed, and after they left.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}
RUNS=3; DURATION=4; WARMUP=1; CONCS="1 64"; MCPD_SRC=""; SWARM_SRC=""; OUT=""; NAGENTS=1000

usage() {
  cat <<'EOF'
usage: bench/agent.sh [options]
  --runs N        repetitions (default 3)       --duration S  measured seconds (default 4)
  --warmup S      warm-up seconds (default 1)   --conc "1 64" concurrencies (default "1 64")
  --agents N      connected agents for the memory figure (default 1000; 0 skips it)
  --mcpd PATH     mcpd binary (default build-rel/mcpd; copied first)
  --swarm PATH    agent_swarm binary (default build-rel/agent/mcpd-agent-swarm)
  --quick         1 run x 2 s
  --out DIR       results folder (default $WORK/results/agent-<UTC time>)
EOF
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --agents) NAGENTS=${2:-}; shift 2 || usage;;
    --mcpd) MCPD_SRC=${2:-}; shift 2 || usage;;
    --swarm) SWARM_SRC=${2:-}; shift 2 || usage;;
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; shift;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "agent.sh: unknown option $1" >&2; usage;;
  esac
done
source "$HERE/lib/common.sh"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
[[ $NAGENTS =~ ^[0-9]+$ ]] && [ "$NAGENTS" -le 5000 ] || { echo "--agents: 0..5000" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }

MCPD_SRC=${MCPD_SRC:-$ROOT/build-rel/mcpd}
SWARM_SRC=${SWARM_SRC:-$ROOT/build-rel/agent/mcpd-agent-swarm}
OUT=${OUT:-$WORK/results/agent-$(date -u +%Y%m%dT%H%M%SZ)}
trap common_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
common_init
cd "$WORK" || exit 1
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
# keys (ak_, mk_) never reach the logs
mask() { sed -E 's/(ak|mk)_[0-9a-f]{48}/\1_.../g'; }

# ---- throughput: direct vs agent, one mcpd -------------------------------------------
DB=$WORK/agent-bench.db
rm -f "$DB" "$DB"-*
CFG=$WORK/agent-bench.yaml
printf '# written by bench/agent.sh\nlog_level: warn\nstore: %s\nservers:\n  echo:\n    command: %s\nagents: { call_timeout: 30s }\ncatalog: { prefix: always }\nbots:\n  bench:\n    bindings:\n      - { resource: "*", tools: ["*"] }\nauth: { default_bot: bench }\nlimits:\n  max_inflight: 128\n  max_sessions: 2000\n' \
  "$DB" "$BIN/echo_stdio" > "$CFG"
AKEY=$("$MCPD" agents create bench -c "$CFG" 2>> "$OUT/logs/admin.log") || { log "agents create failed"; exit 1; }
BKEY=$("$MCPD" bots create bench -c "$CFG" 2>> "$OUT/logs/admin.log") || { log "bots create failed"; exit 1; }
start_mcpd agent-mcpd "$CFG" || exit 1
PM=$MPID; URL=$MURL
PORT=${URL##*:}; PORT=${PORT%%/*}
ACFG=$WORK/agent-bench-agent.yaml
printf '# written by bench/agent.sh\nserver_url: ws://127.0.0.1:%s/agent\nagent_key: ${BENCH_AGENT_KEY}\nname: bench\nlog_level: warn\nbuiltins:\n  system_info: { enabled: false }\nservers:\n  echo: { command: %s }\n' \
  "$PORT" "$BIN/echo_stdio" > "$ACFG"
chmod 600 "$ACFG"
start_bg mcpd-agent env BENCH_AGENT_KEY="$AKEY" "$MCPD" agent -c "$ACFG" --log-level info
PA=$BGPID
HDR="Authorization: Bearer $BKEY"
listed=""
for _ in $(seq 1 200); do
  if grep -q "mcpd listed .*echo\.echo" "$OUT/logs/mcpd-agent.log" 2>/dev/null; then listed=1; break; fi
  kill -0 "$PA" 2>/dev/null || break
  sleep 0.05
done
[ -n "$listed" ] || { log "the agent did not register (see logs/mcpd-agent.log)"; exit 1; }
sleep 0.3
echo '[{"name":"direct","what":"mcpd, stdio C echo (baseline)"},{"name":"agent","what":"same mcpd, mcpd agent over ws:// bridging the same echo"}]' > "$OUT/targets.json"
sed -E 's/ak_[0-9a-f]{48}/ak_.../' "$CFG" > "$OUT/agent-bench.yaml"; cp "$ACFG" "$OUT/"
declare -A TOOL=([direct]=echo__echo [agent]=bench-echo__echo)
declare -A SPIDS=([direct]="$PM" [agent]="$PM $PA")
load_cmd() { LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -n "${TOOL[$1]}" -H "$HDR" -j "$URL"); }
for t in direct agent; do load_cmd "$t" 1 0.5 0; smoke "$t" "${LCMD[@]}" || exit 1; done
TARGETS=(direct agent); n=2; rot=0
log "load matrix: $RUNS runs x conc [$CONCS] x $n targets x (${WARMUP}+${DURATION}) s"
for r in $(seq 1 "$RUNS"); do
  for c in $CONCS; do
    for k in 0 1; do
      t=${TARGETS[$(((k + rot) % n))]}
      load_cmd "$t" "$c" "$DURATION" "$WARMUP"
      measure "$t" "$c" "$r" "$k" "${SPIDS[$t]}" "${LCMD[@]}"
    done
    rot=$((rot + 1))
  done
done
stop_started
sed -i -E 's/(ak|mk)_[0-9a-f]{48}/\1_.../g' "$CMDLOG"

# ---- memory: N connected agents ---------------------------------------------------------
SWARM_MD=""
if [ "$NAGENTS" -gt 0 ]; then
  [ -x "$SWARM_SRC" ] || { log "no agent_swarm at $SWARM_SRC (cmake --build build-rel --target mcpd-agent-swarm)"; exit 1; }
  run cp "$SWARM_SRC" "$BIN/agent_swarm" || exit 1
  SDB=$WORK/agent-swarm.db
  SCFG=$WORK/agent-swarm.yaml
  KEYS=$WORK/agent-swarm.keys
  printf '# written by bench/agent.sh\nlog_level: warn\nstore: %s\nagents: {}\nlimits:\n  max_connections: %d\n' "$SDB" $((NAGENTS + 100)) > "$SCFG"
  if [ ! -s "$KEYS" ] || [ "$(wc -l < "$KEYS")" -ne "$NAGENTS" ] || [ ! -s "$SDB" ]; then
    rm -f "$SDB" "$SDB"-* "$KEYS"
    log "creating $NAGENTS agent keys (mcpd agents create, one process each)"
    t0=$(date +%s.%N)
    for i in $(seq 1 "$NAGENTS"); do
      "$MCPD" agents create "swarm-$i" -c "$SCFG" >> "$KEYS" 2>> "$OUT/logs/admin.log" || { log "agents create swarm-$i failed"; exit 1; }
    done
    log "keys created in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s"
  fi
  chmod 600 "$KEYS"
  start_mcpd swarm-mcpd "$SCFG" || exit 1
  PS=$MPID; SPORT=${MURL##*:}; SPORT=${SPORT%%/*}
  sleep 1
  rss0=$(rss_kib "$PS")
  fd0=$(ls /proc/"$PS"/fd | wc -l)
  t0=$(date +%s.%N)
  logcmd "$BIN/agent_swarm" "ws://127.0.0.1:$SPORT/agent" "$KEYS" "$NAGENTS" 8
  timeout -k 5 120 "$BIN/agent_swarm" "ws://127.0.0.1:$SPORT/agent" "$KEYS" "$NAGENTS" 8 > "$OUT/logs/swarm.out" 2> "$OUT/logs/swarm.log" &
  SWPID=$!
  ready=""
  for _ in $(seq 1 1200); do
    ready=$(grep -E '^(READY|PARTIAL)' "$OUT/logs/swarm.out" 2>/dev/null | head -1)
    [ -n "$ready" ] && break
    kill -0 "$SWPID" 2>/dev/null || break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  sleep 2 # status writes and catalog rebuilds settle
  rss1=$(rss_kib "$PS")
  fd1=$(ls /proc/"$PS"/fd | wc -l)
  wait "$SWPID"
  sleep 2
  rss2=$(rss_kib "$PS")
  log "swarm: $ready; mcpd RSS ${rss0} KiB -> ${rss1} KiB with the agents -> ${rss2} KiB after they left"
  nready=$(echo "$ready" | awk '{print $2}')
  SWARM_MD=$(awk -v n="$NAGENTS" -v got="${nready:-0}" -v r0="$rss0" -v r1="$rss1" -v r2="$rss2" -v f0="$fd0" -v f1="$fd1" \
      -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" 'BEGIN{
    printf "| agents connected and listed | %d of %d (in %.1f s) |\n", got, n, t
    printf "| mcpd RSS before | %d KiB |\n| mcpd RSS with the agents | %d KiB (%.2fx the baseline) |\n", r0, r1, (r0 ? r1 / r0 : 0)
    printf "| per connected agent | %.1f KiB |\n", (got ? (r1 - r0) / got : 0)
    printf "| mcpd RSS after they left | %d KiB (%.2fx the baseline) |\n", r2, (r0 ? r2 / r0 : 0)
    printf "| mcpd file descriptors | %d -> %d |\n", f0, f1 }')
  stop_started
fi

{
  echo "## agent.sh: $(date -u +%FT%TZ)"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  python3 "$HERE/lib/summarize_ext.py" "$OUT" --ratio "agent / direct=agent/direct"
  echo "Server CPU/call: direct counts mcpd (with its echo child); agent counts mcpd and the"
  echo "mcpd agent process (with its echo child). Both targets are one mcpd, back to back."
  echo
  if [ -n "$SWARM_MD" ]; then
    echo "Connected agents (bench/agent_swarm.c: each answers initialize and lists one tool):"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "$SWARM_MD"
    echo
  fi
} | mask > "$OUT/summary.md"
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
