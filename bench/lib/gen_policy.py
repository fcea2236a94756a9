#!/usr/bin/env python3
"""gen_policy.py: writes the mcpd config of the policy/audit benchmark (bench/policy.sh).

    gen_policy.py --variant none|policy|audit --upstream CMD [--store FILE]
                  [--bots 20] [--bindings 10] > cfg.yaml

One server `echo` (CMD, the C echo upstream) that declares every dimension:
paths: [path], commands: [command], images: [image], repos: [repo] (repos is
the custom one). Variants:

  none    no bots, no audit: the foundation's behaviour (the reference)
  policy  bots bot00..bot{N-1}, each with --bindings bindings (N x bindings in
          all), the store (bot keys) at --store, audit: {enabled: false}
  audit   the same policy, audit on (written to the store file)

Every binding uses tool globs and dimension patterns; across the policy all
four dimensions are in use. The bench bot is bot00. Its bindings are ordered
so that a call to `echo` walks the whole list before it is allowed:

  [0..k]  bindings for other resources (files, git-*, docker, ...) or other
          tools of `echo` (add, admin_*): no match on resource or tool
  [k+1]   matches `echo` ("ec*") but restricts paths to /home/bot00/**, so the
          call's path /srv/data/x is denied there and the engine moves on
  [last]  matches `echo` and accepts the bench arguments in every dimension:
          {"text":"hello","path":"/srv/data/x","command":"git status",
           "image":"python:3","repo":"acme/app"}

so each call is checked against all of bot00's bindings, and the dimension
checks (path canonicalisation, command tokenising, image normalisation,
custom glob) run twice. That is on the heavy side of a realistic bot.
"""
import argparse
import sys

ARGS_OK = '{"text":"hello","path":"/srv/data/x","command":"git status","image":"python:3","repo":"acme/app"}'


def q(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def flow_list(items):
    return '[' + ', '.join(q(x) for x in items) + ']'


def binding(resource, tools, **dims):
    parts = ['resource: ' + q(resource), 'tools: ' + flow_list(tools)]
    for k in ('paths', 'commands', 'images', 'repos'):
        if k in dims:
            parts.append('%s: %s' % (k, flow_list(dims[k])))
    return '{ ' + ', '.join(parts) + ' }'


def bot_bindings(i, n):
    """n bindings of bot i; for i == 0 the allowing one is last."""
    name = 'bot%02d' % i
    pool = [
        binding('files', ['read_*', 'list_*', 'stat'], paths=['/srv/%s/**' % name, '/srv/shared/*.txt']),
        binding('git-*', ['git_*'], commands=['git status', 'git log *', 'git diff **'], repos=['acme/*', '%s/*' % name]),
        binding('docker', ['run_*', 'pull'], images=['python:3*', 'docker.io/library/node:2*', 'ghcr.io/acme/*:*'],
                commands=['python -m *', 'node *']),
        binding('echo', ['add'], paths=['/srv/data/**']),
        binding('ci-*', ['build', 'test_*'], commands=['make *', 'make', 'ctest **'], paths=['/work/%s/**' % name]),
        binding('echo', ['admin_*', 'debug_[a-m]*'], commands=['ls -la *'], images=['alpine:*']),
        binding('k8s', ['apply', 'get_*'], images=['registry.example.com/%s/*:*' % name], repos=['acme/infra-*']),
        binding('search', ['query', 'suggest*'], repos=['acme/*', 'globex/app-?'], paths=['/srv/index/**']),
        binding('echo', ['ec*'], paths=['/home/%s/**' % name], commands=['git status'], images=['python:3'],
                repos=['acme/*']),
    ]
    allow = binding('echo', ['echo', 'add'],
                    paths=['/srv/data/**', '/srv/shared/*'],
                    commands=['git status', 'git log *', 'ls -la *'],
                    images=['python:3*', 'docker.io/library/node:*'],
                    repos=['acme/*', 'globex/app-*'])
    if i == 0:
        # n-2 non-matching ones, the denying echo binding, the allowing one
        if n == 1:
            return [allow]
        head = [pool[k % (len(pool) - 1)] for k in range(n - 2)]
        return head + [pool[-1], allow]
    # other bots: the same shapes, rotated, the allowing one somewhere in between
    out = []
    for k in range(n - 1):
        out.append(pool[(i + k) % len(pool)])
    out.insert(i % n, allow.replace('/srv/data/**', '/srv/%s/**' % name))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--variant', choices=['none', 'policy', 'audit'], required=True)
    ap.add_argument('--upstream', required=True, help='command of the echo upstream')
    ap.add_argument('--store', help='sqlite store file (policy, audit)')
    ap.add_argument('--bots', type=int, default=20)
    ap.add_argument('--bindings', type=int, default=10)
    a = ap.parse_args()
    if a.variant != 'none' and not a.store:
        ap.error('--store is required with bots')
    if not (1 <= a.bots <= 1000 and 1 <= a.bindings <= 1000):
        ap.error('--bots and --bindings: 1..1000')
    o = []
    o.append('# written by bench/lib/gen_policy.py --variant %s --bots %d --bindings %d'
             % (a.variant, a.bots, a.bindings))
    o.append('log_level: warn')
    o.append('servers:')
    o.append('  echo:')
    o.append('    command: ' + q(a.upstream))
    o.append('    dimensions: { paths: [path], commands: [command], images: [image], repos: [repo] }')
    o.append('limits:')
    o.append('  max_inflight: 128')
    o.append('  max_sessions: 2000')
    if a.variant != 'none':
        o.append('store: ' + q(a.store))
        o.append('audit: { enabled: %s }' % ('true' if a.variant == 'audit' else 'false'))
        o.append('bots:')
        total = 0
        for i in range(a.bots):
            bl = bot_bindings(i, a.bindings)
            total += len(bl)
            o.append('  bot%02d:' % i)
            o.append('    bindings:')
            for b in bl:
                o.append('      - ' + b)
        o.append('# %d bots, %d bindings in all; bench bot bot00, call arguments %s' % (a.bots, total, ARGS_OK))
    sys.stdout.write('\n'.join(o) + '\n')


if __name__ == '__main__':
    main()
