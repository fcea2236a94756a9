# bench/lib/common.sh: shared pieces of bench/policy.sh, bench/list.sh and
# bench/remote.sh (sourced, not run). The same process control as run.sh:
# every process started runs in its own process group (setsid) and is stopped
# by that group id (TERM, KILL after 5 s), at the end, on errors and on
# Ctrl-C; every load run is bounded (the tool's own -d plus `timeout`);
# everything listens on 127.0.0.1.
#
# The caller sets HERE (bench/), ROOT, WORK, OUT, RUNS, DURATION, WARMUP and
# calls common_init; then uses start_bg / start_mcpd / measure / stop_started.

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
# commands.log gets every command as run, bot keys (mk_...) masked
logcmd() { { printf '%s  ' "$(date -u +%H:%M:%S)"; printf '%q ' "$@"; printf '\n'; } | sed -E 's/mk_[0-9a-f]+/mk_.../g' >> "$CMDLOG"; }
run() { logcmd "$@"; "$@"; }
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

tree_pids() { # pid and all its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '{k[$2]=k[$2]" "$1}
    END{q[1]=root; n=1; i=1; while(i<=n){p=q[i++]; m=split(k[p],a," "); for(j=1;j<=m;j++) q[++n]=a[j]} for(i=1;i<=n;i++) print q[i]}'
}
STARTED=()   # process-group leaders started here
LOADPID=""   # the load generator currently running (a `timeout` process)
stop_pid() { # pid: TERM its group, KILL after 5 s; then leftover descendants (by pid)
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
stop_started() { # [pid]: stop that group (or all groups started)
  local p keep=()
  for p in "${STARTED[@]}"; do
    if [ "$#" -eq 0 ] || [ "$p" = "$1" ]; then stop_pid "$p"; else keep+=("$p"); fi
  done
  STARTED=("${keep[@]}")
}
common_cleanup() {
  [ -n "$LOADPID" ] && stop_pid "$LOADPID"
  LOADPID=""
  stop_started
}

# start_bg NAME CMD...: CMD in a new session (its own process group), output
# to logs/NAME.log; sets BGPID.
start_bg() {
  local name=$1; shift
  logcmd setsid "$@"
  setsid "$@" >> "$OUT/logs/$name.log" 2>&1 < /dev/null &
  BGPID=$!
  STARTED+=("$BGPID")
  if [ "$(ps -o pgid= -p "$BGPID" 2>/dev/null | tr -d ' ')" != "$BGPID" ]; then
    sleep 0.05
    local k; k=$(ps -o pid= --ppid "$BGPID" 2>/dev/null | head -1 | tr -d ' ')
    [ -n "$k" ] && { BGPID=$k; STARTED+=("$BGPID"); }
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # a free loopback port (the kernel's pick)
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port_file() { # file pid
  for _ in $(seq 1 1000); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
# start_mcpd NAME CFG: `mcpd serve` on an ephemeral loopback port; sets MPID, MURL
start_mcpd() {
  local pf=$WORK/$1.port
  rm -f "$pf"
  start_bg "$1" "$MCPD" serve -c "$2" --listen 127.0.0.1:0 --port-file "$pf"
  MPID=$BGPID
  wait_port_file "$pf" "$MPID" || { log "mcpd ($1) did not start (see logs/$1.log)"; return 1; }
  MURL=http://127.0.0.1:$(tr -d ' \n' < "$pf")/mcp
  log "$1: mcpd serve pid $MPID at $MURL"
}

cpu_stat() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
ticks() { "$HERE/lib/memtree.sh" "$1" | awk '{print $5}'; } # CPU ticks of a process tree

# measure TARGET C RUN ORDER "SERVER_PIDS" CMD...: one bounded load run of CMD
# (an mcpload -j command whose -d/-w are DURATION/WARMUP); appends one line to
# results.jsonl with the CPU of the server trees (space-separated pids), of
# the load tool, of the whole machine, and of everything else (noise).
measure() {
  local t=$1 c=$2 r=$3 k=$4 spids=$5; shift 5
  local resf=$OUT/logs/res-$t-c$c-r$r.json line m0 m1 l0 l1 s0=0 s1=0 tt0 tt1 p
  local cmd=(timeout -k 5 "$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN{printf "%d", d + w + 30}')" "$@")
  logcmd "${cmd[@]}"
  "${cmd[@]}" > "$resf" 2>> "$OUT/logs/load.log" &
  LOADPID=$!
  sleep "$(awk -v w="$WARMUP" 'BEGIN{print w + 0.1}')"
  m0=$(cpu_stat); l0=$(ticks "$LOADPID"); for p in $spids; do s0=$((s0 + $(ticks "$p"))); done; tt0=$(date +%s.%N)
  sleep "$(awk -v d="$DURATION" 'BEGIN{x = d - 0.3; print (x > 0.1 ? x : 0.1)}')"
  m1=$(cpu_stat); l1=$(ticks "$LOADPID"); for p in $spids; do s1=$((s1 + $(ticks "$p"))); done; tt1=$(date +%s.%N)
  wait "$LOADPID"; LOADPID=""
  line=$(grep '^{' "$resf" | tail -1)
  [ -n "$line" ] || line='{"calls":0,"rps":0,"p50_us":0,"p99_us":0,"errors":-1}'
  local cpu; cpu=$(awk -v m0="$m0" -v m1="$m1" -v l0="$l0" -v l1="$l1" -v s0="$s0" -v s1="$s1" \
      -v t0="$tt0" -v t1="$tt1" -v hz="$(getconf CLK_TCK)" 'BEGIN{
    split(m0, a, " "); split(m1, b, " "); dt = t1 - t0; if (dt <= 0) dt = 1
    mach = (b[1] - a[1]) / hz / dt; steal = (b[2] - a[2]) / hz / dt
    srv = (s1 - s0) / hz / dt; load = (l1 - l0) / hz / dt
    printf "\"machine_cores\":%.3f,\"steal_cores\":%.3f,\"server_tree_cores\":%.3f,\"load_tree_cores\":%.3f,\"other_cores\":%.3f", mach, steal, srv, load, mach - srv - load }')
  echo "{\"target\":\"$t\",\"c\":$c,\"run\":$r,\"order\":$k,$cpu,\"loadavg1\":$(cut -d' ' -f1 /proc/loadavg),\"r\":$line}" >> "$RESULTS"
  LAST_LINE=$line
  log "$t c=$c run=$r: $(echo "$line" | sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*"p99_us":([0-9]+).*"errors":(-?[0-9]+).*/\1 req\/s, p50 \2 us, p99 \3 us, errors \4/')"
}

# smoke NAME CMD...: a short bounded run (CMD with small -d) must give calls and no errors
smoke() {
  local name=$1 out; shift
  logcmd timeout -k 2 20 "$@"
  out=$(timeout -k 2 20 "$@" 2>> "$OUT/logs/load.log")
  echo "$out" | grep '^{' | sed "s/^/{\"smoke\":\"$name\",\"r\":/; s/\$/}/" >> "$OUT/smoke.jsonl"
  if ! echo "$out" | grep -q '"errors":0,' || echo "$out" | grep -q '"calls":0,'; then
    log "smoke test failed for $name: $out"; return 1
  fi
}

machine_info() { # into $OUT/machine.txt
  {
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "host_nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -sr)"
    echo "gcc: $(gcc -dumpfullversion)"
    echo "mcpd: $MCPD_SRC copied to $MCPD (built $(date -u -r "$MCPD_SRC" +%FT%TZ); sha256 $(sha256sum "$MCPD" | cut -c1-16))"
    echo "git_head: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
    echo "git_dirty_files: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)"
    echo "runs: $RUNS; duration: ${DURATION}s; warmup: ${WARMUP}s"
    echo "loadavg_start: $(cat /proc/loadavg)"
    echo "busiest_processes_start:"
    ps -eo pid=,pcpu=,etime=,comm= --sort=-pcpu | head -5 | sed 's/^/  /'
  } > "$OUT/machine.txt"
}

# common_init: work dirs, the private mcpd copy and the C tools. Needs MCPD_SRC.
common_init() {
  mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || exit 1
  BIN=$WORK/bin
  mkdir -p "$OUT/logs" "$BIN" || exit 1
  OUT=$(cd "$OUT" && pwd)
  RESULTS=$OUT/results.jsonl; CMDLOG=$OUT/commands.log
  : > "$RESULTS"; : > "$CMDLOG"; : > "$OUT/smoke.jsonl"
  [ -x "$MCPD_SRC" ] || { echo "no mcpd binary at $MCPD_SRC (build it, or --mcpd PATH)" >&2; exit 1; }
  MCPD=$BIN/mcpd
  run cp "$MCPD_SRC" "$MCPD.tmp" && mv -f "$MCPD.tmp" "$MCPD" || exit 1
  local CF=(-O2 -Wall -Wextra -Werror)
  run gcc "${CF[@]}" -o "$BIN/mcpload" "$HERE/load/mcpload.c" || exit 1
  run gcc "${CF[@]}" -o "$BIN/echo_stdio" "$HERE/upstream/echo_stdio.c" || exit 1
  machine_info
}

# rotate N K ROT: index of the K-th target in rotation ROT
rot_index() { echo $((($2 + $3) % $1)); }

# profile_pid NAME PID SECS [STACK]: perf record (DWARF call graphs, 499 Hz;
# STACK bytes of stack per sample, default 16384, at most 65528: deep frames
# such as the policy's glob matcher, ~30 KiB of stack, need the maximum) on a
# running process, then reports into $OUT/perf-NAME-*.txt and a Markdown
# section appended to $OUT/profile-NAME.md: split by thread (pid:comm; the
# event loop is the thread whose id is the pid) and by binary, the top
# symbols by self time, the inclusive time of user-space functions, and the
# top symbols of each busy thread.
profile_pid() {
  local name=$1 pid=$2 secs=$3 stack=${4:-16384} data=$OUT/perf-$1.data P=$OUT/perf-$1 tid f
  run timeout -k 5 $((secs + 30)) perf record -F 499 --call-graph "dwarf,$stack" -p "$pid" -o "$data" -- sleep "$secs" \
    > "$OUT/logs/perf-$name.log" 2>&1 || { log "perf record failed (see logs/perf-$name.log)"; return 1; }
  [ -s "$data" ] || return 1
  perf report -i "$data" --no-children --sort pid --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' > "$P-threads.txt"
  perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' > "$P-dso.txt"
  perf report -i "$data" --no-children --sort symbol,dso --stdio -g none --percent-limit 0.4 2>/dev/null | grep -v '^#' | grep -v '^$' > "$P-self.txt"
  perf report -i "$data" --children --sort symbol --stdio -g none --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' > "$P-children.txt"
  rm -f "$P"-tid*.txt
  for tid in $(awk '$2 ~ /^[0-9]+:/ && $1+0 >= 3 {split($2, a, ":"); print a[1]}' "$P-threads.txt" | head -3); do
    perf report -i "$data" --no-children --tid "$tid" --sort symbol,dso --stdio -g none --percent-limit 1 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -20 > "$P-tid$tid.txt"
  done
  {
    echo "perf record -F 499 --call-graph dwarf,$stack -p <$name pid $pid> -- sleep $secs"
    echo
    echo "by thread (pid:comm; thread $pid is the event loop):"; echo; echo '```'; head -6 "$P-threads.txt"; echo '```'; echo
    echo "by binary:"; echo; echo '```'; head -9 "$P-dso.txt" | awk '{printf "%8s  %s\n", $1, $2}'; echo '```'; echo
    echo "self time, top symbols ([k] kernel, [.] user):"; echo; echo '```'; head -30 "$P-self.txt" | awk '{printf "%8s  %s %-42s %s\n", $1, $2, $3, $4}'; echo '```'; echo
    echo "inclusive time of user-space functions (callees count toward their callers):"; echo; echo '```'
    grep '\[\.\]' "$P-children.txt" | grep -Ev ' 0x[0-9a-f]+ | _start|__libc_start|clone3|start_thread' | head -40 | awk '{printf "%8s %8s  %s\n", $1, $2, $4}'; echo '```'; echo
    for f in "$P"-tid*.txt; do
      [ -e "$f" ] || continue
      tid=${f##*tid}; tid=${tid%.txt}
      echo "thread $tid, self time within it:"; echo; echo '```'; head -15 "$f" | awk '{printf "%8s  %s %-42s %s\n", $1, $2, $3, $4}'; echo '```'; echo
    done
  } > "$OUT/profile-$name.md"
}
