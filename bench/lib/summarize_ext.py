#!/usr/bin/env python3
"""summarize_ext.py: results folder of bench/policy.sh, list.sh or remote.sh -> Markdown.

    summarize_ext.py OUT_DIR [--ratio NAME=TARGET/BASE ...] [--min-ratio X]

Reads OUT_DIR/results.jsonl (one line per load run, written by lib/common.sh
`measure`) and OUT_DIR/targets.json ([{"name", "what"}] in display order).
Prints, per target and concurrency: median req/s [min-max], medians of the
per-run p50/p99, server CPU per call (µs of the server process trees per
answered call), median of the CPU used by other processes (noise), errors.
Then, for each --ratio, req/s and p50 ratios TARGET/BASE per concurrency:
the median of the per-run ratios (both measured in the same run, back to
back) with their range, and the ratio of the medians. With --min-ratio X,
each throughput ratio gets "met" / "MISSED" against X.
"""
import argparse
import json
import os
import statistics
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_int(x):
    return '—' if x is None else '{:,.0f}'.format(x)


def fmt_us(x):
    if x is None:
        return '—'
    return '{:,.0f} µs'.format(x) if x >= 10 else '{:.1f} µs'.format(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--ratio', action='append', default=[])
    ap.add_argument('--min-ratio', type=float)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(os.path.join(a.out, 'results.jsonl')) if l.strip()]
    try:
        targets = json.load(open(os.path.join(a.out, 'targets.json')))
    except OSError:
        targets = [{'name': n, 'what': ''} for n in dict.fromkeys(r['target'] for r in rows)]
    concs = sorted({r['c'] for r in rows})
    by = {}
    for r in rows:
        by.setdefault((r['target'], r['c']), []).append(r)

    out = []
    out.append('| target | what | c | req/s median [min–max] | p50 | p99 | server CPU/call | other cores | errors | runs |')
    out.append('|---|---|---|---|---|---|---|---|---|---|')
    for t in targets:
        for c in concs:
            rs = by.get((t['name'], c))
            if not rs:
                continue
            rps = [r['r'].get('rps', 0) for r in rs]
            cpu = [r['server_tree_cores'] * 1e6 / r['r']['rps'] for r in rs if r['r'].get('rps')]
            errs = sum(max(0, r['r'].get('errors', 0)) for r in rs) + sum(1 for r in rs if r['r'].get('errors', 0) < 0)
            out.append('| {} | {} | {} | {} [{}–{}] | {} | {} | {} | {:.2f} | {} | {} |'.format(
                t['name'], t.get('what', ''), c, fmt_int(med(rps)), fmt_int(min(rps)), fmt_int(max(rps)),
                fmt_us(med([r['r'].get('p50_us') for r in rs])), fmt_us(med([r['r'].get('p99_us') for r in rs])),
                fmt_us(med(cpu)), med([r['other_cores'] for r in rs]), errs, len(rs)))
    out.append('')
    if a.ratio:
        out.append('Ratios: median of the per-run ratios (the two targets measured back to back in the same run), '
                   '[range], and the ratio of the medians.')
        out.append('')
        hdr = '| ratio | c | req/s ratio | p50 ratio | p99 ratio |' + (' verdict (req/s ≥ {:g}) |'.format(a.min_ratio) if a.min_ratio else '')
        out.append(hdr)
        out.append('|---|---|---|---|---|' + ('---|' if a.min_ratio else ''))
        for spec in a.ratio:
            name, pair = spec.split('=', 1)
            tgt, base = pair.split('/', 1)
            for c in concs:
                T = {r['run']: r for r in by.get((tgt, c), [])}
                B = {r['run']: r for r in by.get((base, c), [])}
                runs = sorted(set(T) & set(B))
                if not runs:
                    continue
                def per_run(key):
                    v = [T[k]['r'][key] / B[k]['r'][key] for k in runs if B[k]['r'].get(key) and T[k]['r'].get(key)]
                    return v
                def cell(key):
                    v = per_run(key)
                    if not v:
                        return '—', None
                    mt = med([T[k]['r'][key] for k in runs]); mb = med([B[k]['r'][key] for k in runs])
                    rom = mt / mb if mb else float('nan')
                    return '**{:.2f}** [{:.2f}–{:.2f}] ({:.2f})'.format(med(v), min(v), max(v), rom), med(v)
                rr, rv = cell('rps')
                p50, _ = cell('p50_us')
                p99, _ = cell('p99_us')
                line = '| {} | {} | {} | {} | {} |'.format(name, c, rr, p50, p99)
                if a.min_ratio:
                    line += ' {} |'.format('—' if rv is None else ('met' if rv >= a.min_ratio else '**MISSED**'))
                out.append(line)
        out.append('')
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
