#!/usr/bin/env bash
# bench/policy.sh: the cost of the binding policy and of the audit on
# tools/call over streamable HTTP. See bench/README.md.
#
#   none    mcpd serve, no bots, no audit (the reference)
#   policy  20 bots x 10 bindings (all dimensions in use), audit: {enabled: false}
#   audit   the same policy, audit on (sqlite store in --audit-dir)
#   audit-shm  (with --shm) the same, store on /dev/shm (tmpfs: fsync is free),
#           to separate the cost of fsync from the CPU cost of the audit
# All targets run side by side (one mcpd each, each with its C echo upstream);
# each run measures every target at every concurrency, the order rotated.
# The bench bot is bot00 (key from `mcpd bots create bot00 -c CFG`), its
# calls are echo with {"text":"hello","path":"/srv/data/x","command":"git status",
# "image":"python:3","repo":"acme/app"}, allowed by its last binding.
# Afterwards: audit rows (sqlite3 count) against the calls mcpload made; and
# (--profile auto: when audit/none < 0.85 at the highest c) perf record of
# the audit mcpd under load, split by thread.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}
RUNS=5; DURATION=4; WARMUP=1; CONCS="1 16 64"; PROFILE=auto; MCPD_SRC=""; OUT=""
BOTS=20; BINDINGS=10; AUDIT_DIR=""; SHM=0; TARGET_RATIO=0.85

usage() {
  cat <<'EOF'
usage: bench/policy.sh [options]
  --runs N          repetitions (default 5; medians reported)
  --duration S      measured seconds per load run (default 4, at most 600)
  --warmup S        unmeasured seconds before each (default 1)
  --conc "1 16 64"  concurrencies (default "1 16 64")
  --bots N          bots (default 20)          --bindings N  bindings per bot (default 10)
  --audit-dir DIR   where the audit target's store lives (default $WORK/policy-store)
  --shm             add the target audit-shm: the store on /dev/shm (tmpfs)
  --profile MODE    auto (when audit/none < 0.85 at the highest c; default), yes, no
  --mcpd PATH       mcpd binary (default build-rel/mcpd; it is copied first)
  --quick           1 run x 2 s at c=1 and 64, no profile
  --out DIR         results folder (default $WORK/results/policy-<UTC time>)
Work dir: $MCPD_BENCH_RUN_DIR (default /tmp/mcpd-bench-run).
EOF
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --bots) BOTS=${2:-}; shift 2 || usage;;
    --bindings) BINDINGS=${2:-}; shift 2 || usage;;
    --audit-dir) AUDIT_DIR=${2:-}; shift 2 || usage;;
    --shm) SHM=1; shift;;
    --profile) PROFILE=${2:-}; shift 2 || usage;;
    --mcpd) MCPD_SRC=${2:-}; shift 2 || usage;;
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; CONCS="1 64"; PROFILE=no; shift;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "policy.sh: unknown option $1" >&2; usage;;
  esac
done
source "$HERE/lib/common.sh"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }
for c in $CONCS; do [[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge 1 ] && [ "$c" -le 1000 ] || { echo "--conc: 1..1000" >&2; exit 2; }; done
case $PROFILE in auto|yes|no) ;; *) usage;; esac
for t in gcc python3 sqlite3 setsid timeout; do command -v $t >/dev/null || { echo "policy.sh: $t is required" >&2; exit 1; }; done

MCPD_SRC=${MCPD_SRC:-$ROOT/build-rel/mcpd}
OUT=${OUT:-$WORK/results/policy-$(date -u +%Y%m%dT%H%M%SZ)}
trap common_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
common_init
cd "$WORK" || exit 1
AUDIT_DIR=${AUDIT_DIR:-$WORK/policy-store}
mkdir -p "$AUDIT_DIR" || exit 1
AUDIT_DIR=$(cd "$AUDIT_DIR" && pwd)
ARGS='{"text":"hello","path":"/srv/data/x","command":"git status","image":"python:3","repo":"acme/app"}'

# ------------------------------------------------------------- configs, keys
TARGETS=(none policy audit)
[ $SHM -eq 1 ] && TARGETS+=(audit-shm)
declare -A CFG KEY PIDS URLS STORE
for t in "${TARGETS[@]}"; do
  case $t in
    none) v=none; st="";;
    policy) v=policy; st=$AUDIT_DIR/policy.db;;
    audit) v=audit; st=$AUDIT_DIR/audit.db;;
    audit-shm) v=audit; st=/dev/shm/mcpd-bench-audit-$$.db;;
  esac
  STORE[$t]=$st
  [ -n "$st" ] && rm -f "$st" "$st-wal" "$st-shm"
  CFG[$t]=$WORK/policy-$t.yaml
  run python3 "$HERE/lib/gen_policy.py" --variant "$v" --upstream "$BIN/echo_stdio" ${st:+--store "$st"} \
    --bots "$BOTS" --bindings "$BINDINGS" > "${CFG[$t]}" || exit 1
  cp "${CFG[$t]}" "$OUT/"
  if [ -n "$st" ]; then
    logcmd "$MCPD" bots create bot00 -c "${CFG[$t]}"
    KEY[$t]=$("$MCPD" bots create bot00 -c "${CFG[$t]}" 2>> "$OUT/logs/bots.log") || { log "bots create failed"; exit 1; }
    [[ ${KEY[$t]} == mk_* ]] || { log "no key from bots create: ${KEY[$t]}"; exit 1; }
  fi
done
{
  echo "bindings_in_all: $(grep -c '^      - {' "${CFG[policy]}")"
  echo "audit_store: ${STORE[audit]} on $(df -T "$AUDIT_DIR" | awk 'NR==2{print $1" ("$2")"}')"
  [ $SHM -eq 1 ] && echo "audit_shm_store: ${STORE[audit-shm]} on $(df -T /dev/shm | awk 'NR==2{print $1" ("$2")"}')"
} >> "$OUT/machine.txt"

# load_cmd TARGET C D W: into LCMD
load_cmd() {
  LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j -A "$ARGS")
  [ -n "${KEY[$1]:-}" ] && LCMD+=(-H "Authorization: Bearer ${KEY[$1]}")
  LCMD+=("${URLS[$1]}")
}

python3 - "${TARGETS[@]}" > "$OUT/targets.json" <<'EOF'
import json, sys
what = {'none': 'no bots, no audit (reference)',
        'policy': 'policy (20 bots, 200 bindings), audit off',
        'audit': 'policy + audit (store on the work dir\'s file system)',
        'audit-shm': 'policy + audit, store on /dev/shm (tmpfs)'}
print(json.dumps([{'name': t, 'what': what[t]} for t in sys.argv[1:]]))
EOF

log "results in $OUT"
ALIVE=()
for t in "${TARGETS[@]}"; do
  start_mcpd "policy-$t" "${CFG[$t]}" || continue
  PIDS[$t]=$MPID; URLS[$t]=$MURL
  sleep 0.3
  load_cmd "$t" 1 0.5 0
  smoke "$t" "${LCMD[@]}" && ALIVE+=("$t")
done
[ ${#ALIVE[@]} -eq ${#TARGETS[@]} ] || { log "not every target passed its smoke test: ${ALIVE[*]}"; exit 1; }

# -------------------------------------------------------------- load matrix
n=${#TARGETS[@]}
log "load matrix: $RUNS runs x conc [$CONCS] x $n targets x (${WARMUP}+${DURATION}) s"
rot=0
for r in $(seq 1 "$RUNS"); do
  for c in $CONCS; do
    for k in $(seq 0 $((n - 1))); do
      t=${TARGETS[$(((k + rot) % n))]}
      load_cmd "$t" "$c" "$DURATION" "$WARMUP"
      measure "$t" "$c" "$r" "$k" "${PIDS[$t]}" "${LCMD[@]}"
    done
    rot=$((rot + 1))
  done
done

# ------------------------------------------------------------ audit rows check
# Every call mcpload sent to an audit target (smoke + load runs, warm-up
# included) against the rows the audit holds. A call still in flight when a
# load run ended is sent but not answered (mcpd still finishes and audits it).
sleep 1
{
  echo "### Audit rows against calls made"
  echo
  echo "A call is audited as a \`call\` row (written as it is forwarded) plus its outcome, listed in a later \`result\` row: [[call_id, status, latency_us], ...]."
  echo
  echo "| target | calls sent (mcpload, all runs) | calls answered ok | call rows | call rows with one outcome 'ok' | outcomes (by status) | result rows | rows − sent | chain (mcpd audit verify) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for t in "${TARGETS[@]}"; do
    [[ $t == audit* ]] || continue
    sent=$( (grep "\"target\":\"$t\"" "$RESULTS"; grep "\"smoke\":\"$t\"" "$OUT/smoke.jsonl") | sed -E 's/.*"sent_all":([0-9]+).*/\1/' | awk '{s+=$1} END{print s+0}')
    okc=$( (grep "\"target\":\"$t\"" "$RESULTS"; grep "\"smoke\":\"$t\"" "$OUT/smoke.jsonl") | sed -E 's/.*"ok_all":([0-9]+).*/\1/' | awk '{s+=$1} END{print s+0}')
    # the records once into indexed temporary tables: joining the view to itself is quadratic
    IFS='|' read -r rows complete outs < <(sqlite3 "${STORE[$t]}" "
      create temp table calls(id integer primary key);
      insert into calls select id from audit where kind='call' and decision='allow';
      create temp table outs as select json_extract(j.value,'\$[0]') cid, json_extract(j.value,'\$[1]') st from audit r, json_each(r.args) j where r.kind='result';
      create index outs_cid on outs(cid);
      select (select count(*) from calls),
             (select count(*) from (select cid, count(*) n, max(st) st from outs group by cid) g join calls c on c.id = g.cid where g.n = 1 and g.st = 'ok'),
             (select group_concat(st||': '||n, ', ') from (select st, count(*) n from outs group by st));")
    nres=$(sqlite3 "${STORE[$t]}" "select count(*) from audit where kind='result'")
    verify=$(timeout 120 "$MCPD" audit verify -c "${CFG[$t]}" 2>&1 | tail -1)
    echo "| $t | $sent | $okc | $rows | $complete | ${outs:-none} | $nres | $((rows - sent)) | $verify |"
  done
  echo
} > "$OUT/audit-rows.md"
cat "$OUT/audit-rows.md" >&2

# ------------------------------------------------------------------ summary
cmax=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)
RATIOS=(--ratio "policy/none=policy/none" --ratio "audit/none=audit/none")
[ $SHM -eq 1 ] && RATIOS+=(--ratio "audit-shm/none=audit-shm/none")
{
  echo "## policy.sh: $(date -u +%FT%TZ)"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  python3 "$HERE/lib/summarize_ext.py" "$OUT" "${RATIOS[@]}" --min-ratio "$TARGET_RATIO"
  cat "$OUT/audit-rows.md"
} > "$OUT/summary.md"

# ------------------------------------------------------------------ profile
# perf record (DWARF call graphs) on the policy and the audit mcpd under
# c=max load (when policy/none or audit/none missed the target at c=max, or
# --profile yes); self time by thread (the loop thread has tid = pid; the
# checkpointer is the other thread running sqlite3), the top symbols,
# and who calls the policy's glob matcher.
missed=$(awk -v c="$cmax" -F'|' '$2 ~ /(audit|policy)\/none/ && $3+0 == c && /MISSED/' "$OUT/summary.md" | wc -l)
if [ "$PROFILE" = yes ] || { [ "$PROFILE" = auto ] && [ "$missed" -gt 0 ]; }; then
  command -v perf >/dev/null || { log "perf not found: no profile"; PROFILE=no; }
fi
if [ "$PROFILE" = yes ] || { [ "$PROFILE" = auto ] && [ "$missed" -gt 0 ]; }; then
  PD=5
  for t in policy audit; do
    log "profile: perf record the $t mcpd (pid ${PIDS[$t]}) under c=$cmax load for $PD s"
    load_cmd "$t" "$cmax" $((PD + 2)) 1
    LCMD=(timeout -k 5 $((PD + 40)) "${LCMD[@]}")
    logcmd "${LCMD[@]}"
    "${LCMD[@]}" > "$OUT/logs/perf-$t-load.json" 2>> "$OUT/logs/load.log" &
    LOADPID=$!
    sleep 1.5
    profile_pid "$t" "${PIDS[$t]}" "$PD" 65528   # the glob matcher's frame is ~30 KiB
    wait "$LOADPID"; LOADPID=""
    [ -s "$OUT/perf-$t.data" ] && perf script -i "$OUT/perf-$t.data" 2>/dev/null \
      | awk -v SYM=mcpd_policy_glob -v DEPTH=4 -f "$HERE/lib/callers.awk" | sort | uniq -c | sort -rn | head -12 > "$OUT/perf-$t-glob-callers.txt"
    {
      echo "### Profile: $t mcpd under c=$cmax"
      echo
      echo "load while profiling (perf slows mcpd down): $(grep '^{' "$OUT/logs/perf-$t-load.json" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*/\1 req\/s, p50 \2 µs/')"
      echo
      cat "$OUT/profile-$t.md" 2>/dev/null
      echo "samples inside mcpd_policy_glob, by caller chain:"; echo; echo '```'; cat "$OUT/perf-$t-glob-callers.txt" 2>/dev/null; echo '```'; echo
    } >> "$OUT/summary.md"
  done
fi

stop_started
[ $SHM -eq 1 ] && rm -f "${STORE[audit-shm]}" "${STORE[audit-shm]}-wal" "${STORE[audit-shm]}-shm"
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
