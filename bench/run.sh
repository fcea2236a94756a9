#!/usr/bin/env bash
# bench/run.sh: measure mcpd against the nginx ceiling and the bare upstream, in
# one run on one machine. See bench/README.md.
#
#   (a) nginx        nginx, 1 worker, fixed JSON body            mcpload -I
#   (b) mcpd-http    mcpd serve (streamable HTTP) -> echo_stdio  mcpload
#   (c) mcpd-stdio   mcpd stdio -> echo_stdio                    stdioload
#   (d) echo-direct  echo_stdio alone over stdio (floor of (c))  stdioload
# each at concurrency 1 and 64, --runs times, target order rotated; then
# mcpd's idle RSS and memory per idle session (fresh mcpd, 1000 sessions).
#
# Everything listens on 127.0.0.1 only; every load run is bounded in time
# (the tools' own limits plus `timeout`); every process started here runs in
# its own process group and is stopped by that group id (TERM, KILL after 5 s),
# also on errors and Ctrl-C.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${MCPD_BENCH_RUN_DIR:-/tmp/mcpd-bench-run}

RUNS=3; DURATION=5; WARMUP=1; CONCS="1 64"; SESSIONS=1000; HOLD=5
NGINX_PORT=18180; DO_BUILD=1; DO_INSTALL=1; PROFILE=auto; MCPD=""; OUT=""; WAIT_QUIET=0

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]
  --quick            smoke test of the harness: 1 run x 2 s, 200 sessions, no profile
  --runs N           repetitions of the load matrix (default 3; medians reported)
  --duration S       measured seconds per load run (default 5, at most 600)
  --warmup S         unmeasured seconds before each load run (default 1)
  --conc "1 64"      concurrencies (default "1 64")
  --sessions N       sessions for the memory-per-session probe (default 1000; 0 skips it)
  --profile MODE     perf record mcpd under c=64 load: auto (when a target is missed,
                     default), yes, no
  --mcpd PATH        use this mcpd binary (implies --no-build)
  --no-build         do not (re)build build-rel
  --no-install       do not apt-get install nginx-light when missing
  --nginx-port P     loopback port of the nginx reference (default 18180)
  --wait-quiet S     before measuring, wait up to S seconds for the machine to be quiet
                     (other processes below 0.25 cores for 15 s); default 0 (no wait)
  --out DIR          results folder (default $WORK/results/<UTC time>)
Work dir: $MCPD_BENCH_RUN_DIR (default /tmp/mcpd-bench-run).
EOF
  exit 2
}

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) RUNS=1; DURATION=2; WARMUP=0.5; SESSIONS=200; HOLD=2; PROFILE=no; shift;;
    --runs) RUNS=${2:-}; shift 2 || usage;;
    --duration) DURATION=${2:-}; shift 2 || usage;;
    --warmup) WARMUP=${2:-}; shift 2 || usage;;
    --conc) CONCS=${2:-}; shift 2 || usage;;
    --sessions) SESSIONS=${2:-}; shift 2 || usage;;
    --profile) PROFILE=${2:-}; shift 2 || usage;;
    --mcpd) MCPD=${2:-}; DO_BUILD=0; shift 2 || usage;;
    --no-build) DO_BUILD=0; shift;;
    --no-install) DO_INSTALL=0; shift;;
    --nginx-port) NGINX_PORT=${2:-}; shift 2 || usage;;
    --wait-quiet) WAIT_QUIET=${2:-}; shift 2 || usage;;
    --out) OUT=${2:-}; shift 2 || usage;;
    -h|--help) usage;;
    *) echo "run.sh: unknown option $1" >&2; usage;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || { echo "--runs: 1..50" >&2; exit 2; }
is_num "$DURATION" && awk -v d="$DURATION" 'BEGIN{exit !(d > 0 && d <= 600)}' || { echo "--duration: (0, 600]" >&2; exit 2; }
is_num "$WARMUP" && awk -v d="$WARMUP" 'BEGIN{exit !(d >= 0 && d <= 60)}' || { echo "--warmup: [0, 60]" >&2; exit 2; }
[[ $SESSIONS =~ ^[0-9]+$ ]] && [ "$SESSIONS" -le 100000 ] || { echo "--sessions: 0..100000" >&2; exit 2; }
[[ $NGINX_PORT =~ ^[0-9]+$ ]] && [ "$NGINX_PORT" -ge 1024 ] && [ "$NGINX_PORT" -le 65535 ] || { echo "--nginx-port: 1024..65535" >&2; exit 2; }
for c in $CONCS; do [[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge 1 ] && [ "$c" -le 4096 ] || { echo "--conc: integers 1..4096" >&2; exit 2; }; done
case $PROFILE in auto|yes|no) ;; *) echo "--profile: auto|yes|no" >&2; exit 2;; esac
[[ $WAIT_QUIET =~ ^[0-9]+$ ]] && [ "$WAIT_QUIET" -le 3600 ] || { echo "--wait-quiet: 0..3600" >&2; exit 2; }

mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || exit 1
BIN=$WORK/bin
OUT=${OUT:-$WORK/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT/logs" "$BIN" || exit 1
RESULTS=$OUT/results.jsonl; MEMORY=$OUT/memory.jsonl; CMDLOG=$OUT/commands.log
: > "$RESULTS"; : > "$MEMORY"; : > "$CMDLOG"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
# Every command that matters is written to commands.log exactly as run.
logcmd() { { printf '%s  ' "$(date -u +%H:%M:%S)"; printf '%q ' "$@"; printf '\n'; } >> "$CMDLOG"; }
run() { logcmd "$@"; "$@"; }
echo "# bench/run.sh $(date -u +%FT%TZ) in $ROOT; args: RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP CONCS='$CONCS' SESSIONS=$SESSIONS" >> "$CMDLOG"

# ------------------------------------------------------------ process control
tree_pids() { # pid and all its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '{k[$2]=k[$2]" "$1}
    END{q[1]=root; n=1; i=1; while(i<=n){p=q[i++]; m=split(k[p],a," "); for(j=1;j<=m;j++) q[++n]=a[j]} for(i=1;i<=n;i++) print q[i]}'
}
STARTED=()   # process-group leaders started by this script
LOADPID=""   # the load generator currently running (a `timeout` group leader)
stop_pid() { # pid: TERM its process group, KILL it after 5 s; then the same
  # for descendants that run in groups of their own (mcpd's upstream child)
  local p=$1 q kids
  [ -n "$p" ] || return 0
  kids=$(tree_pids "$p" | tail -n +2)
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL -- "-$p" 2>/dev/null
  fi
  wait "$p" 2>/dev/null
  for q in $kids; do
    kill -0 "$q" 2>/dev/null || continue
    for _ in $(seq 1 20); do kill -0 "$q" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$q" 2>/dev/null && kill -TERM "$q" 2>/dev/null && sleep 0.5
    kill -0 "$q" 2>/dev/null && kill -KILL "$q" 2>/dev/null
  done
  return 0
}
stop_started() {
  local p keep=()
  for p in "${STARTED[@]}"; do
    if [ "$#" -eq 0 ] || [ "$p" = "$1" ]; then stop_pid "$p"; else keep+=("$p"); fi
  done
  STARTED=("${keep[@]}")
}
cleanup() {
  [ -n "$LOADPID" ] && stop_pid "$LOADPID"
  LOADPID=""
  stop_started
  [ -n "${POLICY_RC:-}" ] && rm -f "$POLICY_RC"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# start_bg NAME CMD...: runs CMD in a new session (its process group id is its
# PID), output to logs/NAME.log; sets BGPID.
start_bg() {
  local name=$1; shift
  logcmd setsid "$@"
  setsid "$@" >> "$OUT/logs/$name.log" 2>&1 < /dev/null &
  BGPID=$!
  STARTED+=("$BGPID")
  # setsid forks when started as a group leader (only under job control):
  # then the new group is led by its child
  if [ "$(ps -o pgid= -p "$BGPID" 2>/dev/null | tr -d ' ')" != "$BGPID" ]; then
    sleep 0.05
    local k; k=$(ps -o pid= --ppid "$BGPID" 2>/dev/null | head -1 | tr -d ' ')
    [ -n "$k" ] && { BGPID=$k; STARTED+=("$BGPID"); }
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ------------------------------------------------------------------ install
for t in gcc cmake python3 awk ps setsid timeout; do
  command -v "$t" >/dev/null 2>&1 || { echo "run.sh: $t is required" >&2; exit 1; }
done
if ! command -v nginx >/dev/null 2>&1; then
  [ $DO_INSTALL -eq 1 ] || { echo "run.sh: nginx missing (apt-get install nginx-light)" >&2; exit 1; }
  log "apt-get install nginx-light"
  # Keep the package's init script from starting a system nginx on *:80
  # during the install (the Debian policy-rc.d mechanism), only if none exists.
  if [ ! -e /usr/sbin/policy-rc.d ] && [ -w /usr/sbin ]; then
    POLICY_RC=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC" && chmod 755 "$POLICY_RC"
  fi
  run apt-get update -qq && DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq nginx-light >/dev/null \
    || { echo "run.sh: apt-get install nginx-light failed" >&2; exit 1; }
  [ -n "${POLICY_RC:-}" ] && rm -f "$POLICY_RC"; POLICY_RC=""
fi
[ "$PROFILE" = no ] || command -v perf >/dev/null 2>&1 || { log "perf not found: no profile"; PROFILE=no; }

# ------------------------------------------------------------------- build
if [ $DO_BUILD -eq 1 ]; then
  log "build $ROOT/build-rel (Release)"
  ( cd "$ROOT" && run cmake -B build-rel -DCMAKE_BUILD_TYPE=Release > "$OUT/logs/build.log" 2>&1 \
    && run cmake --build build-rel -j2 --target mcpd >> "$OUT/logs/build.log" 2>&1 ) \
    || { tail -30 "$OUT/logs/build.log" >&2
         echo "run.sh: build failed (see $OUT/logs/build.log); --no-build or --mcpd PATH use an existing binary" >&2
         exit 1; }
fi
MCPD_SRC=${MCPD:-$ROOT/build-rel/mcpd}
[ -x "$MCPD_SRC" ] || { echo "run.sh: no mcpd binary at $MCPD_SRC" >&2; exit 1; }
# Measure a private copy: a rebuild of build-rel during the run (others work in
# the same tree) must not swap the binary between targets.
MCPD=$BIN/mcpd
run cp "$MCPD_SRC" "$MCPD.tmp" && mv -f "$MCPD.tmp" "$MCPD" || exit 1
OUT=$(cd "$OUT" && pwd)
cd "$WORK" || exit 1   # nothing below writes into the source tree
log "build bench tools into $BIN"
CFLAGS=(-O2 -Wall -Wextra -Werror)
run gcc "${CFLAGS[@]}" -o "$BIN/mcpload" "$HERE/load/mcpload.c" || exit 1
run gcc "${CFLAGS[@]}" -o "$BIN/stdioload" "$HERE/load/stdioload.c" || exit 1
run gcc "${CFLAGS[@]}" -o "$BIN/echo_stdio" "$HERE/upstream/echo_stdio.c" || exit 1

# ------------------------------------------------------------------ config
CFG=$WORK/mcpd-bench.yaml
# max_inflight 128: (c) keeps 64 calls in flight on its one stdio session
# (default 32). max_sessions 2000: the probe opens 1000 sessions (default 1000).
cat > "$CFG" <<EOF
# written by bench/run.sh: mcpd in front of the C echo upstream
log_level: warn
servers:
  echo:
    command: $BIN/echo_stdio
limits:
  max_inflight: 128
  max_sessions: 2000
EOF
NGX=$WORK/nginx
mkdir -p "$NGX/tmp"
sed -e "s|@DIR@|$NGX|g; s|@PORT@|$NGINX_PORT|; s|@WORKERS@|1|; s|@USER@|$([ "$(id -u)" = 0 ] && echo 'user root;')|" \
  "$HERE/conf/nginx.conf.in" > "$NGX/nginx.conf"
cp "$CFG" "$NGX/nginx.conf" "$OUT/"

# ------------------------------------------------------------------ machine
cpu_stat() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; } # busy steal total
{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "host_nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "kernel: $(uname -sr)"
  echo "mem: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"
  echo "gcc: $(gcc -dumpfullversion)"
  echo "nginx: $(nginx -v 2>&1 | sed 's/.*version: //')"
  echo "mcpd: $MCPD_SRC, copied to $MCPD ($("$MCPD" --version 2>&1 | head -1); built $(date -u -r "$MCPD_SRC" +%FT%TZ); sha256 $(sha256sum "$MCPD" | cut -c1-16))"
  echo "git_head: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  echo "git_dirty_files: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) ($(git -C "$ROOT" status --porcelain 2>/dev/null | awk '{print $2}' | tr '\n' ' '))"
  echo "runs: $RUNS; duration: ${DURATION}s; warmup: ${WARMUP}s; conc: $CONCS; sessions: $SESSIONS"
  echo "loadavg_start: $(cat /proc/loadavg)"
  echo "busiest_processes_start:"
  ps -eo pid=,pcpu=,etime=,comm= --sort=-pcpu | head -5 | sed 's/^/  /'
} > "$OUT/machine.txt"
STAT0=$(cpu_stat)

# --------------------------------------------------------------- helpers
vmrss() { awk '/^VmRSS:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
vmhwm() { awk '/^VmHWM:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks() { "$HERE/lib/memtree.sh" "$1" | awk '{print $5}'; } # CPU ticks of a process tree
mem_json() { # target phase run pid [extra json members]
  local pid=$4 main sum=0 p n=0 mt
  main=$(vmrss "$pid")
  for p in $(tree_pids "$pid"); do sum=$((sum + $(vmrss "$p"))); n=$((n + 1)); done
  mt=$("$HERE/lib/memtree.sh" "$pid")   # main_rss tree(main RSS + children USS) tree_pss nprocs ticks
  printf '{"target":"%s","phase":"%s","run":%s,"main_rss_kb":%s,"tree_rss_kb":%s,"tree_uss_kb":%s,"nprocs":%s%s}\n' \
    "$1" "$2" "$3" "$main" "$sum" "$(echo "$mt" | awk '{print $2}')" "$n" "${5:+,$5}"
}
wait_port_file() { # file pid: wait (10 s at most) for mcpd to write its port
  local t0; t0=$(date +%s%N)
  for _ in $(seq 1 1000); do
    [ -s "$1" ] && { PORT_MS=$((($(date +%s%N) - t0) / 1000000)); return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
start_mcpd_http() { # name: fresh `mcpd serve` on an ephemeral loopback port; sets MPID MURL
  local pf=$WORK/mcpd-$1.port
  rm -f "$pf"
  start_bg "$1" "$MCPD" serve -c "$CFG" --listen 127.0.0.1:0 --port-file "$pf"
  MPID=$BGPID
  wait_port_file "$pf" "$MPID" || { log "mcpd ($1) did not start (see logs/$1.log)"; return 1; }
  MURL=http://127.0.0.1:$(tr -d ' \n' < "$pf")/mcp
  log "mcpd serve pid $MPID at $MURL (port file after ${PORT_MS} ms)"
}
start_nginx() {
  if port_open "$NGINX_PORT"; then log "port $NGINX_PORT already in use: pick another with --nginx-port"; return 1; fi
  rm -f "$NGX/nginx.pid"
  start_bg nginx nginx -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/error.log"
  NPID=$BGPID
  for _ in $(seq 1 500); do port_open "$NGINX_PORT" && return 0; kill -0 "$NPID" 2>/dev/null || break; sleep 0.01; done
  log "nginx did not start (see $NGX/error.log)"; return 1
}
NURL=http://127.0.0.1:$NGINX_PORT/mcp

# load_cmd TARGET C D W: the exact load command for a target (into LCMD)
load_cmd() {
  case $1 in
    nginx)       LCMD=("$BIN/mcpload" -I -c "$2" -d "$3" -w "$4" -j "$NURL");;
    mcpd-http)   LCMD=("$BIN/mcpload" -c "$2" -d "$3" -w "$4" -j "$MURL");;
    mcpd-stdio)  LCMD=("$BIN/stdioload" -c "$2" -d "$3" -w "$4" -j -- "$MCPD" stdio -c "$CFG");;
    echo-direct) LCMD=("$BIN/stdioload" -c "$2" -d "$3" -w "$4" -j -- "$BIN/echo_stdio");;
  esac
}
server_pid() { case $1 in nginx) echo "$NPID";; mcpd-http) echo "$MPID";; *) echo "";; esac; }

# run_one TARGET C RUN ORDER: one bounded load run; appends to results.jsonl
run_one() {
  local t=$1 c=$2 r=$3 k=$4 spid resf line s0 s1 m0 m1 l0 l1 tt0 tt1
  spid=$(server_pid "$t")
  resf=$OUT/logs/res-$t-c$c-r$r.json
  load_cmd "$t" "$c" "$DURATION" "$WARMUP"
  LCMD=(timeout -k 5 "$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN{printf "%d", d + w + 30}')" "${LCMD[@]}")
  logcmd "${LCMD[@]}"
  "${LCMD[@]}" > "$resf" 2>> "$OUT/logs/load.log" &
  LOADPID=$!
  # CPU over the measured window, trimmed by 0.1 s at each end so that the load
  # tool is still alive at both samples: server tree, load tree, whole machine
  sleep "$(awk -v w="$WARMUP" 'BEGIN{print w + 0.1}')"
  m0=$(cpu_stat); l0=$(ticks "$LOADPID"); s0=0; [ -n "$spid" ] && s0=$(ticks "$spid"); tt0=$(date +%s.%N)
  sleep "$(awk -v d="$DURATION" 'BEGIN{x = d - 0.3; print (x > 0.1 ? x : 0.1)}')"
  m1=$(cpu_stat); l1=$(ticks "$LOADPID"); s1=0; [ -n "$spid" ] && s1=$(ticks "$spid"); tt1=$(date +%s.%N)
  wait "$LOADPID"; LOADPID=""
  line=$(grep '^{' "$resf" | tail -1)
  [ -n "$line" ] || line='{"calls":0,"rps":0,"errors":-1}'
  # cores: machine = all busy CPU; bench = load generator tree (+ server tree for
  # HTTP targets; for stdio targets the server is inside the load tree);
  # other = machine - bench (other work on the machine: noise)
  local cpu; cpu=$(awk -v m0="$m0" -v m1="$m1" -v l0="$l0" -v l1="$l1" -v s0="$s0" -v s1="$s1" \
      -v t0="$tt0" -v t1="$tt1" -v hz="$(getconf CLK_TCK)" -v http="$([ -n "$spid" ] && echo 1 || echo 0)" 'BEGIN{
    split(m0, a, " "); split(m1, b, " "); dt = t1 - t0; if (dt <= 0) dt = 1
    mach = (b[1] - a[1]) / hz / dt; steal = (b[2] - a[2]) / hz / dt
    srv = (s1 - s0) / hz / dt; load = (l1 - l0) / hz / dt; bench = load + (http ? srv : 0)
    printf "\"machine_cores\":%.3f,\"steal_cores\":%.3f,\"server_tree_cores\":%.3f,\"load_tree_cores\":%.3f,\"other_cores\":%.3f", mach, steal, srv, load, mach - bench }')
  echo "{\"target\":\"$t\",\"c\":$c,\"run\":$r,\"order\":$k,$cpu,\"loadavg1\":$(cut -d' ' -f1 /proc/loadavg),\"r\":$line}" >> "$RESULTS"
  log "$t c=$c run=$r: $(echo "$line" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*"p99_us":([0-9]+).*"errors":(-?[0-9]+).*/\1 req\/s, p50 \2 us, p99 \3 us, errors \4/')"
}

smoke() { # target: 0.5 s at c=1 must give calls and no errors
  local out
  load_cmd "$1" 1 0.5 0
  LCMD=(timeout -k 2 20 "${LCMD[@]}")
  logcmd "${LCMD[@]}"
  out=$("${LCMD[@]}" 2>> "$OUT/logs/load.log")
  if ! echo "$out" | grep -q '"errors":0,' || echo "$out" | grep -q '"calls":0,'; then
    log "smoke test failed for $1: $out"; return 1
  fi
}

# ------------------------------------------------------------- wait quiet
if [ "$WAIT_QUIET" -gt 0 ]; then
  log "waiting up to ${WAIT_QUIET} s for a quiet machine (< 0.25 busy cores, three 5 s windows in a row)"
  tq=$(date +%s); quiet=0; streak=0
  while [ $(($(date +%s) - tq)) -lt "$WAIT_QUIET" ]; do
    a=$(cpu_stat); sleep 5; b=$(cpu_stat)
    busy=$(echo "$a $b" | awk -v n="$(nproc)" '{d = $6 - $3; printf "%.2f", (d > 0 ? n * ($4 - $1) / d : 0)}')
    if awk -v x="$busy" 'BEGIN{exit !(x < 0.25)}'; then
      streak=$((streak + 1))
      [ $streak -ge 3 ] && { quiet=1; break; }   # 15 s in a row
    else
      streak=0
      log "machine busy: $busy cores ($(ps -eo pcpu=,comm= --sort=-pcpu | head -1 | awk '{print $2 " " $1 "%"}'))"
    fi
  done
  [ $quiet -eq 1 ] && log "quiet after $(($(date +%s) - tq)) s" || log "still busy after ${WAIT_QUIET} s: measuring anyway"
  echo "wait_quiet: ${WAIT_QUIET} s, quiet=$quiet after $(($(date +%s) - tq)) s; loadavg then: $(cat /proc/loadavg)" >> "$OUT/machine.txt"
  STAT0=$(cpu_stat)
fi

# ---------------------------------------------------------------- phase 1
log "results in $OUT"
log "phase 1: start nginx and mcpd serve; smoke tests"
TARGETS=()
if start_nginx; then
  sleep 1
  mem_json nginx idle 0 "$NPID" >> "$MEMORY"
  smoke nginx && TARGETS+=(nginx)
fi
if start_mcpd_http mcpd-http; then
  sleep 1
  mem_json mcpd-http idle-matrix 0 "$MPID" "\"port_file_ms\":$PORT_MS" >> "$MEMORY"
  smoke mcpd-http && TARGETS+=(mcpd-http)
fi
smoke mcpd-stdio && TARGETS+=(mcpd-stdio)
smoke echo-direct && TARGETS+=(echo-direct)
[ ${#TARGETS[@]} -gt 0 ] || { log "no target passed its smoke test"; exit 1; }
log "targets: ${TARGETS[*]}"

# ---------------------------------------------------------------- phase 2
n=${#TARGETS[@]}; ncs=$(echo $CONCS | wc -w)
log "phase 2: load matrix: $RUNS runs x conc [$CONCS] x $n targets x (${WARMUP}+${DURATION}) s" \
    "(about $(awk -v r="$RUNS" -v c="$ncs" -v n="$n" -v d="$DURATION" -v w="$WARMUP" 'BEGIN{printf "%d", r*c*n*(d+w+0.3)}') s)"
rot=0
for r in $(seq 1 "$RUNS"); do
  for c in $CONCS; do
    for k in $(seq 0 $((n - 1))); do   # rotated: no target always runs first
      run_one "${TARGETS[$(((k + rot) % n))]}" "$c" "$r" "$k"
    done
    rot=$((rot + 1))
  done
done
[[ " ${TARGETS[*]} " == *" mcpd-http "* ]] && mem_json mcpd-http after-matrix 0 "$MPID" "\"hwm_kb\":$(vmhwm "$MPID")" >> "$MEMORY"
[[ " ${TARGETS[*]} " == *" nginx "* ]] && mem_json nginx after-matrix 0 "$NPID" "\"hwm_kb\":$(vmhwm "$NPID")" >> "$MEMORY"
stop_started

# ---------------------------------------------------------------- phase 3
# Per run: a fresh mcpd serve; idle RSS one second after its port file
# appears (= "before"; no request has been served yet, so one-time costs of the
# first connection and session are charged to the sessions: conservative);
# then mcpload -o N -c 8 -d HOLD opens N sessions and holds them; RSS again one
# second after they are all open. (after - before) / N.
log "phase 3: idle RSS and memory per idle session (fresh mcpd each run)"
for r in $(seq 1 "$RUNS"); do
  start_mcpd_http "mcpd-mem$r" || continue
  sleep 1
  mem_json mcpd idle "$r" "$MPID" "\"port_file_ms\":$PORT_MS" >> "$MEMORY"
  if [ "$SESSIONS" -gt 0 ]; then
    mem_json mcpd sessions-before "$r" "$MPID" >> "$MEMORY"
    of=$OUT/logs/open-r$r.txt
    LCMD=(timeout -k 5 $((HOLD + 330)) "$BIN/mcpload" -o "$SESSIONS" -c 8 -d "$HOLD" -j "$MURL")
    logcmd "${LCMD[@]}"
    "${LCMD[@]}" > "$of" 2>> "$OUT/logs/load.log" &
    LOADPID=$!
    for _ in $(seq 1 3000); do grep -q READY "$of" && break; kill -0 "$LOADPID" 2>/dev/null || break; sleep 0.1; done
    sleep 1
    ready=$(grep READY "$of" | tr -d '\n')
    mem_json mcpd sessions-after "$r" "$MPID" "\"sessions\":$SESSIONS,\"ready\":\"$ready\"" >> "$MEMORY"
    wait "$LOADPID"; LOADPID=""
    log "run $r: $(tail -1 "$MEMORY" | sed -E 's/.*"main_rss_kb":([0-9]+).*"tree_rss_kb":([0-9]+).*"ready":"([^"]*)".*/mcpd RSS \1 kB, tree \2 kB with \3/')"
  fi
  stop_started "$MPID"
done

# ---------------------------------------------------------------- summary
STAT1=$(cpu_stat)
{
  echo "cpu_steal_percent: $(echo "$STAT0 $STAT1" | awk '{d = $6 - $3; printf "%.2f", (d > 0 ? 100 * ($5 - $2) / d : 0)}')"
  echo "machine_busy_cores_avg: $(echo "$STAT0 $STAT1" | awk -v n="$(nproc)" '{d = $6 - $3; printf "%.2f", (d > 0 ? n * ($4 - $1) / d : 0)}')"
  echo "loadavg_end: $(cat /proc/loadavg)"
  echo "busiest_processes_end:"
  ps -eo pid=,pcpu=,etime=,comm= --sort=-pcpu | head -5 | sed 's/^/  /'
} >> "$OUT/machine.txt"
python3 "$HERE/lib/summarize.py" "$OUT" > "$OUT/summary.md" || { log "summarize failed"; exit 1; }

# ---------------------------------------------------------------- profile
# When a target is missed (or --profile yes): perf record (DWARF call graphs,
# 499 Hz) on mcpd under c=64 load, streamable HTTP then stdio; the top
# symbols by self time, the split by binary/library, and the inclusive time
# of user-space functions go into the summary (full reports: perf-*.txt).
profile_pid() { # name pid seconds: record, then write reports and append them to the summary
  local name=$1 pid=$2 secs=$3 data=$OUT/perf-$1.data
  run timeout -k 5 $((secs + 30)) perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$data" -- sleep "$secs" \
    > "$OUT/logs/perf-$name.log" 2>&1 || { log "perf record failed (see logs/perf-$name.log)"; return 1; }
  perf report -i "$data" --no-children --sort symbol,dso --stdio -g none --percent-limit 0.5 2>/dev/null \
    | grep -v '^#' | grep -v '^$' > "$OUT/perf-$name-self.txt"
  perf report -i "$data" --no-children --sort dso --stdio -g none -n 2>/dev/null > "$OUT/perf-$name-dso.raw"
  grep -v '^#' "$OUT/perf-$name-dso.raw" | grep -v '^$' > "$OUT/perf-$name-dso.txt"
  perf report -i "$data" --children --sort symbol --stdio -g none --percent-limit 2 2>/dev/null \
    | grep -v '^#' | grep -v '^$' > "$OUT/perf-$name-children.txt"
  local samples; samples=$(awk '/^ +[0-9.]+%/ {n += $2} END {print n + 0}' "$OUT/perf-$name-dso.raw")
  { echo "### $name: self time, top symbols (kernel [k] and user [.])"; echo
    echo "perf record -F 499 --call-graph dwarf -p <mcpd> for $secs s: $samples samples, that is $(awk -v n="$samples" -v s="$secs" 'BEGIN{printf "%.2f", n / s / 499}') cores used by mcpd (perf included)"; echo
    echo '```'; head -25 "$OUT/perf-$name-self.txt" | awk '{printf "%8s  %s %-45s %s\n", $1, $2, $3, $4}'; echo '```'; echo
    echo "by binary:"; echo; echo '```'; head -8 "$OUT/perf-$name-dso.txt" | awk '{printf "%8s  %s\n", $1, $3}'; echo '```'; echo
    echo "inclusive time of user-space functions (callers include their callees; unresolved addresses inside libjansson/libuv omitted):"; echo
    echo '```'; grep '\[\.\]' "$OUT/perf-$name-children.txt" | grep -Ev ' 0x[0-9a-f]+ | _start|__libc_start' | head -25 | awk '{printf "%8s %8s  %s\n", $1, $2, $4}'; echo '```'; echo
  } >> "$OUT/summary.md"
}
if [ "$PROFILE" = yes ] || { [ "$PROFILE" = auto ] && grep -q 'MISSED' "$OUT/summary.md"; }; then
  log "profile: perf record mcpd under c=64 load"
  PD=$(awk -v d="$DURATION" 'BEGIN{printf "%d", (d < 3 ? 3 : (d > 10 ? 10 : d))}')
  { echo; echo "## Profile: mcpd under c=64 load"; echo; } >> "$OUT/summary.md"
  if start_mcpd_http mcpd-perf; then
    sleep 0.5
    load_cmd mcpd-http 64 $((PD + 1)) 1
    LCMD=(timeout -k 5 $((PD + 40)) "${LCMD[@]}")
    logcmd "${LCMD[@]}"
    "${LCMD[@]}" > "$OUT/logs/perf-http-load.json" 2>> "$OUT/logs/load.log" &
    LOADPID=$!
    sleep 1.3
    profile_pid mcpd-serve-http "$MPID" "$PD"
    wait "$LOADPID"; LOADPID=""
    stop_started "$MPID"
    echo "load while profiling (perf slows mcpd down): $(grep '^{' "$OUT/logs/perf-http-load.json" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*/\1 req\/s, p50 \2 µs/')" >> "$OUT/summary.md"
    echo >> "$OUT/summary.md"
  fi
  # stdio: stdioload spawns mcpd; profile that child
  load_cmd mcpd-stdio 64 $((PD + 1)) 1
  LCMD=(timeout -k 5 $((PD + 40)) "${LCMD[@]}")
  logcmd "${LCMD[@]}"
  "${LCMD[@]}" > "$OUT/logs/perf-stdio-load.json" 2>> "$OUT/logs/load.log" &
  LOADPID=$!
  sleep 1.3
  SPID=""
  for p in $(tree_pids "$LOADPID"); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$MCPD" ] && { SPID=$p; break; }
  done
  [ -n "$SPID" ] && profile_pid mcpd-stdio "$SPID" "$PD"
  wait "$LOADPID"; LOADPID=""
  echo "load while profiling (perf slows mcpd down): $(grep '^{' "$OUT/logs/perf-stdio-load.json" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*/\1 req\/s, p50 \2 µs/')" >> "$OUT/summary.md"
  echo >> "$OUT/summary.md"
fi

cat "$OUT/summary.md"
ln -sfn "$OUT" "$WORK/latest"
log "done: $OUT/summary.md (raw: results.jsonl, memory.jsonl; commands: commands.log)"
