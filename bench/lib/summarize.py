#!/usr/bin/env python3
"""summarize.py OUT: results folder of bench/run.sh -> Markdown summary on stdout.

Reads OUT/results.jsonl (one line per load run), OUT/memory.jsonl (memory
probes) and OUT/machine.txt. Medians over runs; req/s also with min-max.
Standard library only.
"""
import json
import os
import statistics
import sys

TARGETS = [
    ("nginx", "nginx, 1 worker, fixed JSON body (ceiling)", "mcpload -I"),
    ("mcpd-http", "mcpd serve, streamable HTTP -> echo_stdio", "mcpload"),
    ("mcpd-stdio", "mcpd stdio -> echo_stdio", "stdioload"),
    ("echo-direct", "echo_stdio alone over stdio (floor of mcpd-stdio)", "stdioload"),
]
QUIET = 0.3  # cores used by other processes during a window: below this the run is "quiet"
GOALS = {
    "http_rps_c64": 30000.0,
    "p50_ratio_c1": 2.0,
    "kib_per_session": 16.0,
    "idle_rss_mib": 10.0,
}


def load_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fnum(x, nd=0):
    if x is None:
        return "—"
    return f"{x:,.{nd}f}"


def fus(x):
    if x is None:
        return "—"
    if x >= 10000:
        return f"{x / 1000:,.1f} ms"
    return f"{x:,.0f} µs"


def rng(xs, nd=0):
    xs = [x for x in xs if x is not None]
    if not xs:
        return ""
    return f" [{fnum(min(xs), nd)}–{fnum(max(xs), nd)}]"


def main():
    out = sys.argv[1]
    res = load_jsonl(os.path.join(out, "results.jsonl"))
    mem = load_jsonl(os.path.join(out, "memory.jsonl"))
    machine = {}
    mpath = os.path.join(out, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath) as f:
            for line in f:
                if ":" in line and not line.startswith(" "):
                    k, v = line.split(":", 1)
                    machine[k.strip()] = v.strip()

    concs = sorted({r["c"] for r in res})
    runs = sorted({r["run"] for r in res})

    sel = {"quiet": False}  # True: only runs measured while the rest of the machine was quiet

    def is_quiet(r):
        return r.get("other_cores", 9) < QUIET

    def rows(t, c):
        return [r for r in res if r["target"] == t and r["c"] == c
                and (not sel["quiet"] or is_quiet(r))]

    def metric(t, c, key):
        return [r["r"].get(key) for r in rows(t, c) if r["r"].get("calls", 0) > 0]

    def cpu_per_call(r):
        rr = r["r"]
        if rr.get("cpu_us_per_call") is not None and rr.get("cpu_us_per_call", -1) >= 0:
            return rr["cpu_us_per_call"]
        if r.get("server_tree_cores", 0) > 0 and rr.get("rps", 0) > 0:
            return r["server_tree_cores"] * 1e6 / rr["rps"]
        return None

    def per_run(t, c, key):
        return {r["run"]: r["r"].get(key) for r in rows(t, c) if r["r"].get("calls", 0) > 0}

    p = print
    p(f"# mcpd bench: {machine.get('date_utc', '?')}")
    p()
    p(f"Machine: {machine.get('host_nproc', '?')} × {machine.get('cpu', '?')}, "
      f"{machine.get('mem', '?')}, {machine.get('kernel', '?')}, {machine.get('os', '?')}; "
      f"gcc {machine.get('gcc', '?')}, nginx {machine.get('nginx', '?')}; "
      f"mcpd at {machine.get('git_head', '?')} ({machine.get('git_dirty_files', '?').split(' ')[0]} files "
      f"modified in the work tree).")
    p(f"Matrix: {machine.get('runs', '?')} ({len(TARGETS)} targets, order rotated per run and "
      f"concurrency). Load generator and servers share the same cores. CPU steal {machine.get('cpu_steal_percent', '?')} %, machine busy "
      f"{machine.get('machine_busy_cores_avg', '?')} cores on average over the whole run; "
      f"loadavg at start {machine.get('loadavg_start', '?').split(' ')[0]}, at end "
      f"{machine.get('loadavg_end', '?').split(' ')[0]}.")
    p()

    # ---- throughput / latency
    p("## Throughput and latency")
    p()
    p("req/s: median of the runs [min–max]; p50/p99: medians of the per-run percentiles "
      "(exact, all samples); server CPU: µs of CPU per call of the server's process tree "
      "(upstream included), median; errors: sum over all runs.")
    p()

    def perf_table(with_n=False):
        head = "| target | what | load tool |"
        sep = "|---|---|---|"
        for c in concs:
            head += f" c={c} req/s | c={c} p50 | c={c} p99 | c={c} CPU/call |"
            sep += "---|---|---|---|"
        head += " errors |"
        sep += "---|"
        p(head)
        p(sep)
        for t, what, tool in TARGETS:
            if not any(r["target"] == t for r in res):
                p(f"| {t} | {what} | {tool} |" + " — | — | — | — |" * len(concs) + " not run |")
                continue
            line = f"| {t} | {what} | {tool} |"
            errs = 0
            for c in concs:
                rps = metric(t, c, "rps")
                cpu = [cpu_per_call(r) for r in rows(t, c)]
                nn = f" (n={len(rps)})" if with_n else ""
                line += (f" {fnum(med(rps))}{rng(rps)}{nn} | {fus(med(metric(t, c, 'p50_us')))} |"
                         f" {fus(med(metric(t, c, 'p99_us')))} | {fus(med(cpu))} |")
                errs += sum(max(0, r["r"].get("errors", 0)) for r in rows(t, c))
                errs += sum(1 for r in rows(t, c) if r["r"].get("errors", 0) < 0)
            line += f" {errs} |"
            p(line)
        p()

    perf_table()
    nq = sum(1 for r in res if is_quiet(r))
    p(f"Only the runs measured while the rest of the machine was quiet (other processes < {QUIET} "
      f"cores during the window; {nq} of {len(res)} load runs; n = runs per cell):")
    p()
    sel["quiet"] = True
    perf_table(with_n=True)
    sel["quiet"] = False

    # ---- ratios
    def ratio_row(label, a, b, key, c, invert=False):
        ra, rb = per_run(a, c, key), per_run(b, c, key)
        ma, mb = med(list(ra.values())), med(list(rb.values()))
        if not ma or not mb:
            return f"| {label} | — | — | — |", None
        per = [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]
        v = ma / mb
        return f"| {label} | {v:.2f} | {fnum(med(per), 2)} | {rng(per, 2).strip()} |", v

    p("## Ratios")
    p()
    p("Ratio of the medians over the runs; median and min–max of the per-run ratios (both "
      "targets of a pair measured in the same run, a minute apart at most).")
    p()
    p("| ratio | of the medians | median per run | per run min–max |")
    p("|---|---|---|---|")
    ratios = {}
    c1 = 1 if 1 in concs else (concs[0] if concs else 1)
    chi = max(concs) if concs else 64
    for label, a, b, key, c in [
        (f"p50 at c={c1}: mcpd-http / nginx", "mcpd-http", "nginx", "p50_us", c1),
        (f"req/s at c={c1}: mcpd-http / nginx", "mcpd-http", "nginx", "rps", c1),
        (f"req/s at c={chi}: mcpd-http / nginx", "mcpd-http", "nginx", "rps", chi),
        (f"p50 at c={chi}: mcpd-http / nginx", "mcpd-http", "nginx", "p50_us", chi),
        (f"p50 at c={c1}: mcpd-stdio / echo-direct", "mcpd-stdio", "echo-direct", "p50_us", c1),
        (f"req/s at c={c1}: mcpd-stdio / echo-direct", "mcpd-stdio", "echo-direct", "rps", c1),
        (f"req/s at c={chi}: mcpd-stdio / echo-direct", "mcpd-stdio", "echo-direct", "rps", chi),
        (f"req/s at c={chi}: mcpd-stdio / mcpd-http", "mcpd-stdio", "mcpd-http", "rps", chi),
    ]:
        row, v = ratio_row(label, a, b, key, c)
        ratios[(a, b, key, c)] = v
        p(row)
    p()

    # ---- memory
    def mems(target, phase):
        return [m for m in mem if m["target"] == target and m["phase"] == phase]

    p("## Memory")
    p()
    p("mcpd RSS = VmRSS of the mcpd process (/proc/PID/status); tree RSS = sum of VmRSS over "
      "mcpd and its children (the echo_stdio upstream); tree USS = mcpd's RSS + its children's "
      "private memory (the baseline's definition, independent of shared pages). KiB = 1024 B.")
    p()
    p("| what | mcpd RSS | tree RSS | tree USS | n |")
    p("|---|---|---|---|---|")
    idle = mems("mcpd", "idle")
    if idle:
        p(f"| mcpd serve idle, 1 s after start (fresh, median of runs) | "
          f"{fnum(med([m['main_rss_kb'] for m in idle]) / 1024, 2)} MiB{rng([m['main_rss_kb'] / 1024 for m in idle], 2)} | "
          f"{fnum(med([m['tree_rss_kb'] for m in idle]) / 1024, 2)} MiB | "
          f"{fnum(med([m['tree_uss_kb'] for m in idle]) / 1024, 2)} MiB | {len(idle)} |")
    before = {m["run"]: m for m in mems("mcpd", "sessions-before")}
    after = {m["run"]: m for m in mems("mcpd", "sessions-after")}
    per_sess, per_sess_tree, per_sess_uss, nsess = [], [], [], None
    for r, a in after.items():
        b = before.get(r)
        if not b:
            continue
        n = a.get("sessions") or 1
        nsess = n
        per_sess.append((a["main_rss_kb"] - b["main_rss_kb"]) / n)
        per_sess_tree.append((a["tree_rss_kb"] - b["tree_rss_kb"]) / n)
        per_sess_uss.append((a["tree_uss_kb"] - b["tree_uss_kb"]) / n)
    if per_sess:
        p(f"| per idle session ({nsess} sessions held, (after − before) / {nsess}) | "
          f"{fnum(med(per_sess), 1)} KiB{rng(per_sess, 1)} | {fnum(med(per_sess_tree), 1)} KiB | "
          f"{fnum(med(per_sess_uss), 1)} KiB | {len(per_sess)} |")
        p(f"| mcpd serve with the {nsess} sessions held | "
          f"{fnum(med([a['main_rss_kb'] for a in after.values()]) / 1024, 2)} MiB | "
          f"{fnum(med([a['tree_rss_kb'] for a in after.values()]) / 1024, 2)} MiB | "
          f"{fnum(med([a['tree_uss_kb'] for a in after.values()]) / 1024, 2)} MiB | {len(after)} |")
    am = mems("mcpd-http", "after-matrix")
    if am:
        p(f"| mcpd serve peak (VmHWM) over the whole load matrix | {fnum(am[0]['hwm_kb'] / 1024, 2)} MiB | — | — | 1 |")
    hw = [r["r"].get("child_hwm_kb") for r in rows("mcpd-stdio", chi) if r["r"].get("child_hwm_kb", -1) > 0]
    if hw:
        p(f"| mcpd stdio peak (VmHWM) at c={chi} | {fnum(med(hw) / 1024, 2)} MiB{rng([h / 1024 for h in hw], 2)} | — | — | {len(hw)} |")
    ni = mems("nginx", "idle")
    if ni:
        p(f"| nginx idle (master + 1 worker; for reference) | {fnum(ni[0]['main_rss_kb'] / 1024, 2)} MiB (master) | "
          f"{fnum(ni[0]['tree_rss_kb'] / 1024, 2)} MiB | {fnum(ni[0]['tree_uss_kb'] / 1024, 2)} MiB | 1 |")
    opens = [m.get("ready", "") for m in after.values()]
    if opens:
        p()
        p("Session opening (mcpload -o): " + "; ".join(o for o in opens if o))
    p()

    # ---- goals
    p("## Targets of the issue")
    p()
    p(f"Verdicts on the medians of all runs, and (CPU-bound figures only) on the runs measured "
      f"while the rest of the machine was quiet (other processes < {QUIET} cores; n = runs).")
    p()
    p("| target | limit | all runs | verdict | quiet runs | verdict |")
    p("|---|---|---|---|---|---|")

    def verdict(ok):
        if ok is None:
            return "not measured"
        return "met" if ok else "**MISSED**"

    def goal_rps():
        xs = metric("mcpd-http", 64, "rps") if 64 in concs else []
        v = med(xs)
        return (f"{fnum(v)} (n={len(xs)})" if v is not None else "— (n=0)",
                verdict(None if v is None else v >= GOALS["http_rps_c64"]))

    def goal_p50():
        # "in the same run": mcpd p50 / nginx p50 of each run, then the median
        a, b = per_run("mcpd-http", c1, "p50_us"), per_run("nginx", c1, "p50_us")
        per = [a[k] / b[k] for k in a if k in b and a[k] and b[k]]
        if not per:
            return "— (n=0)", verdict(None)
        v = med(per)
        return (f"{v:.2f}× (per-run ratios {min(per):.2f}–{max(per):.2f}; p50 {fus(med(list(a.values())))} "
                f"vs {fus(med(list(b.values())))}; n={len(per)})",
                verdict(v <= GOALS["p50_ratio_c1"]))

    cells = {}
    for q in (False, True):
        sel["quiet"] = q
        cells[q] = (goal_rps(), goal_p50())
    sel["quiet"] = False
    p(f"| calls/s at c=64, streamable HTTP (mcpd-http) | ≥ {fnum(GOALS['http_rps_c64'])} | "
      f"{cells[False][0][0]} | {cells[False][0][1]} | {cells[True][0][0]} | {cells[True][0][1]} |")
    p(f"| p50 at c=1, mcpd-http / nginx in the same run (median of the per-run ratios) | ≤ {GOALS['p50_ratio_c1']:.0f}× | "
      f"{cells[False][1][0]} | {cells[False][1][1]} | {cells[True][1][0]} | {cells[True][1][1]} |")
    v = med(per_sess) if per_sess else None
    p(f"| memory per idle session (mcpd RSS) | ≤ {GOALS['kib_per_session']:.0f} KiB | "
      f"{'—' if v is None else f'{v:.1f} KiB'} | {verdict(None if v is None else v <= GOALS['kib_per_session'])} | "
      f"(not CPU-bound) | |")
    v = med([m["main_rss_kb"] for m in idle]) / 1024 if idle else None
    vt = med([m["tree_rss_kb"] for m in idle]) / 1024 if idle else None
    p(f"| RSS at idle (mcpd's own; with the upstream in brackets) | ≤ {GOALS['idle_rss_mib']:.0f} MiB | "
      f"{'—' if v is None else f'{v:.2f} MiB ({vt:.2f} MiB)'} | "
      f"{verdict(None if v is None else v <= GOALS['idle_rss_mib'])} | (not CPU-bound) | |")
    p()

    # ---- noise
    p("## Noise")
    p()
    p("CPU of other processes on the machine during each measured window (machine busy − "
      "load generator − server; cores, out of "
      f"{machine.get('host_nproc', '?')}): median / max per target. Above ~{QUIET} the neighbour "
      "competes with the benchmark for the cores. A rough estimate (tick-based, two samples per "
      "window): good to about ±0.1 for HTTP targets, ±0.3 for stdio targets; negative values "
      "are shown as 0.")
    p()
    p("| target | " + " | ".join(f"c={c} other cores" for c in concs) + " | " +
      " | ".join(f"c={c} req/s spread" for c in concs) + " |")
    p("|---|" + "---|" * (2 * len(concs)))
    for t, _, _ in TARGETS:
        if not any(r["target"] == t for r in res):
            continue
        cells = []
        for c in concs:
            o = [max(0.0, r.get("other_cores", 0)) for r in rows(t, c)]  # ±0.1: sampling error
            cells.append(f"{fnum(med(o), 2)} / {fnum(max(o) if o else None, 2)}")
        for c in concs:
            rps = [x for x in metric(t, c, "rps") if x]
            m = med(rps)
            cells.append(f"{100 * (max(rps) - min(rps)) / m:.0f} %" if rps and m else "—")
        p(f"| {t} | " + " | ".join(cells) + " |")
    p()
    p("Raw numbers: `results.jsonl` (one line per load run, the tool's JSON under `r`), "
      "`memory.jsonl`; exact commands: `commands.log`; machine: `machine.txt`.")


if __name__ == "__main__":
    main()
