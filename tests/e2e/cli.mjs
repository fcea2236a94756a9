// cli.mjs - the mcpd command line: config check, catalog, --version, --help,
// and usage errors (exit status, exactly one line on stderr).
import path from 'node:path';
import { bin, ok, eq, match, step, finish, tmp, writeFile, run, sanitizerReport, upstreamPid, pidAlive, waitFor } from './lib.mjs';

const good = writeFile('good.yaml', `# fixture and demo, prefixed
servers:
  fixture:
    command: ${bin.fixture}
  demo:
    command: ${bin.demo}
`);

// The tool names an stdio server lists itself (initialize + tools/list piped in).
function upstreamTools(cmd) {
  const input = [
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'cli-test', version: '1' } } },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 2, method: 'tools/list' },
  ].map((m) => JSON.stringify(m)).join('\n') + '\n';
  const r = run(cmd, [], { input });
  for (const l of lines(r.stdout)) {
    try {
      const m = JSON.parse(l);
      if (m.id === 2) return m.result.tools.map((t) => t.name);
    } catch {}
  }
  throw new Error(`${cmd} did not answer tools/list: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
}

function lines(s) {
  return s.split('\n').filter((l) => l.length > 0);
}

function noSanitizer(what, r) {
  const rep = sanitizerReport(r.stderr + r.stdout);
  ok(rep === null, `${what}: no sanitizer report`, rep);
}

// A usage or config error: given exit status, nothing on stdout, one line on stderr.
function oneLineError(what, r, { code, re }) {
  if (code === undefined) ok(r.code !== 0 && r.code !== null, `${what}: non-zero exit status (${r.code})`);
  else eq(r.code, code, `${what}: exit status`);
  eq(r.stdout, '', `${what}: nothing on stdout`);
  const ls = lines(r.stderr);
  eq(ls.length, 1, `${what}: exactly one line on stderr`);
  if (re) match(ls[0], re, `${what}: message`);
  noSanitizer(what, r);
}

await step('config check: good config', async () => {
  const r = run(bin.mcpd, ['config', 'check', '-c', good]);
  eq(r.code, 0, 'exit status');
  eq(r.stdout, `${good}: ok (2 servers)\n`, 'stdout');
  eq(r.stderr, '', 'stderr');
  const r2 = run(bin.mcpd, ['config', 'check', '--config', good]);
  eq(r2.code, 0, 'exit status with --config');
});

await step('config check: bad configs -> exit 1, one line "file:line:col: ..."', async () => {
  const cases = [
    ['bad-name.yaml', 'servers:\n  Bad_Name:\n    command: /bin/true\n', 2, 3, /Bad_Name/],
    ['bad-duration.yaml', 'servers:\n  ok:\n    command: /bin/true\n    timeout: 5 parsecs\n', 4, 14, /timeout.*5 parsecs/],
    ['bad-key.yaml', 'listen: 127.0.0.1:8080\nbogus_key: 1\n', 2, 1, /bogus_key/],
    ['bad-size.yaml', 'limits:\n  max_message: 4MB\n', 2, 16, /max_message/],
    ['bad-yaml.yaml', 'servers:\n  a: [\n', null, null, /YAML/i],
  ];
  for (const [name, text, line, col, re] of cases) {
    const f = writeFile(name, text);
    const r = run(bin.mcpd, ['config', 'check', '-c', f]);
    const esc = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const where = line ? `${line}:${col}` : '\\d+:\\d+';
    oneLineError(name, r, { code: 1, re: new RegExp(`^mcpd: ${esc}:${where}: .*`) });
    match(lines(r.stderr)[0], re, `${name}: names the problem`);
  }
  // the policy is compiled too, as serve compiles it
  const pol = writeFile('bad-glob.yaml', 'store: x.db\nservers:\n  demo:\n    command: /bin/true\nbots:\n  alice:\n    bindings:\n      - { resource: demo, tools: [echo], paths: ["["] }\n');
  const rp = run(bin.mcpd, ['config', 'check', '-c', pol]);
  oneLineError('bad-glob.yaml', rp, { code: 1, re: /bad-glob\.yaml: bots\.alice\.bindings\[0\]\.paths\[0\]: unterminated '\['/ });
  const missing = path.join(tmp, 'does-not-exist.yaml');
  const r = run(bin.mcpd, ['config', 'check', '-c', missing]);
  oneLineError('missing file', r, { code: 1, re: /does-not-exist\.yaml/ });
});

await step('catalog -c cfg: merged tool list with origins', async () => {
  const fxTools = upstreamTools(bin.fixture);
  const demoTools = upstreamTools(bin.demo);
  console.log(`     upstreams list ${fxTools.length} (fixture) and ${demoTools.length} (demo) tools themselves`);
  const want = [...fxTools.map((t) => [`fixture__${t}`, 'fixture', t]), ...demoTools.map((t) => [`demo__${t}`, 'demo', t])];
  const r = run(bin.mcpd, ['catalog', '-c', good]);
  eq(r.code, 0, 'exit status');
  noSanitizer('catalog', r);
  const rows = lines(r.stdout).map((l) => l.trim().split(/\s+/));
  const server = (n) => rows.find((c) => c[0] === n && c[1] === 'stdio');
  eq(server('fixture')?.slice(0, 4), ['fixture', 'stdio', 'ready', String(fxTools.length)], 'server row fixture (name kind state tools)');
  eq(server('demo')?.slice(0, 4), ['demo', 'stdio', 'ready', String(demoTools.length)], 'server row demo');
  const tool = (n) => rows.find((c) => c[0] === n);
  eq(tool('fixture__test_simple_text'), ['fixture__test_simple_text', 'fixture', 'test_simple_text'], 'tool row fixture__test_simple_text (name from upstream-name)');
  eq(tool('demo__add'), ['demo__add', 'demo', 'add'], 'tool row demo__add');
  eq(tool('demo__reverse'), ['demo__reverse', 'demo', 'reverse'], 'tool row demo__reverse');
  eq(rows.filter((c) => c.length === 3 && /^(fixture|demo)__/.test(c[0])).sort(), want.sort(),
    `every upstream tool listed once, as "<server>__<tool>  <server>  <tool>" (${want.length} rows)`);
  // the upstream children were stopped
  for (const n of ['fixture', 'demo']) {
    const pid = upstreamPid(r.stderr, n);
    ok(pid > 0 && (await waitFor(() => !pidAlive(pid), 3000, 50)), `catalog: ${n} child (pid ${pid}) is gone`);
  }

  const j = run(bin.mcpd, ['catalog', '-c', good, '--json']);
  eq(j.code, 0, '--json exit status');
  let doc = null;
  try {
    doc = JSON.parse(j.stdout);
  } catch (e) {
    ok(false, '--json output parses', j.stdout.slice(0, 300));
  }
  if (doc) {
    eq(doc.servers.map((s) => [s.name, s.state, s.tools]), [['fixture', 'ready', fxTools.length], ['demo', 'ready', demoTools.length]], '--json servers');
    const t = doc.tools.find((x) => x.name === 'demo__echo');
    eq(t && { resource: t.resource, tool: t.tool }, { resource: 'demo', tool: 'echo' }, '--json demo__echo origin');
    eq(doc.tools.map((t) => [t.name, t.resource, t.tool]).sort(), want.sort(), '--json tools (name, resource, upstream name)');
    eq(doc.collisions, [], '--json collisions');
  }
});

await step('--version, --help', async () => {
  for (const flag of ['--version', '-V']) {
    const r = run(bin.mcpd, [flag]);
    eq(r.code, 0, `${flag}: exit status`);
    match(r.stdout, /^mcpd \d+\.\d+\.\d+\S*\n$/, `${flag}: stdout`);
    eq(r.stderr, '', `${flag}: stderr`);
  }
  for (const flag of ['--help', '-h']) {
    const r = run(bin.mcpd, [flag]);
    eq(r.code, 0, `${flag}: exit status`);
    match(r.stdout, /^usage: mcpd/, `${flag}: starts with usage`);
    for (const w of ['serve', 'stdio', 'config check', 'catalog', '--listen', '--port-file']) ok(r.stdout.includes(w), `${flag}: mentions ${w}`);
    eq(r.stderr, '', `${flag}: stderr`);
  }
});

await step('usage errors -> non-zero exit + one line', async () => {
  oneLineError('unknown command', run(bin.mcpd, ['frobnicate']), { re: /frobnicate/ });
  oneLineError('no command', run(bin.mcpd, []), {});
  oneLineError('unknown option', run(bin.mcpd, ['serve', '-c', good, '--bogus']), { re: /--bogus/ });
  oneLineError('option without value', run(bin.mcpd, ['serve', '-c']), { re: /-c/ });
  oneLineError('no config', run(bin.mcpd, ['catalog']), { re: /config/ });
  oneLineError('config without check', run(bin.mcpd, ['config', '-c', good]), {});
  oneLineError('bad --listen', run(bin.mcpd, ['serve', '-c', good, '--listen', 'nonsense']), { re: /--listen/ });
  oneLineError('serve without listen address', run(bin.mcpd, ['serve', '-c', good]), { re: /listen/ });
  oneLineError('bad --log-level', run(bin.mcpd, ['catalog', '-c', good, '--log-level', 'loud']), { re: /loud/ });
});

await finish();
