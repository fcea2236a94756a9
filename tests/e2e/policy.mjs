// policy.mjs - bots, bindings and the audit log end to end (the policy issue):
// two bots with different bindings over streamable HTTP and stdio see and call
// exactly their own tools; denials name the dimension and value and never
// reach the upstream; keys are required, bound to sessions, rotated, disabled;
// every call leaves one audit row, the chain verifies, a hand-edited row is
// found, and a kill -9 under load loses no acknowledged call.
import fs from 'node:fs';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, startServe, sdk, texts, tmp, run, rawHttp, waitFor, sleep } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport } = await sdk();
const db = path.join(tmp, 'mcpd.db');
const flog = path.join(tmp, 'fixture.log');
const cfgText = `store: ${db}
servers:
  fixture:
    command: ${bin.fixture}
    env: { FIXTURE_LOG: "${flog}" }
    dimensions: { paths: [path], commands: [command] }
  demo:
    command: ${bin.demo}
roles:
  adder:
    - { resource: demo, tools: [add] }
bots:
  alice:
    roles: [adder]
    bindings:
      - resource: fixture
        tools: [echo, test_simple_text]
        paths: ["/tmp/**"]
        commands: ["ls *", "ls -l *", "git status"]
  bob:
    bindings:
      - { resource: demo, tools: ["*"] }
auth: { default_bot: bob }
`;
const cfg = path.join(tmp, 'policy.yaml');
fs.writeFileSync(cfg, cfgText);
const mcpd = (...args) => run(bin.mcpd, [...args, '-c', cfg]);
const key = {};

async function httpClient(url, k) {
  const c = new Client({ name: 'policy-e2e', version: '1' }, { capabilities: {} });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${k}` } } }));
  return c;
}
const names = async (c) => (await c.listTools()).tools.map((t) => t.name).sort();
async function callErr(c, name, args) {
  try {
    await c.callTool({ name, arguments: args });
    return null;
  } catch (e) {
    return e;
  }
}
const fixtureSaw = () => (fs.existsSync(flog) ? fs.readFileSync(flog, 'utf8') : '');
const sql = (q) => run('sqlite3', [db, q]).stdout.trim();
// edits through the view `audit` (records live in audit_block rows): see audit-tamper.sql
const tamperSql = fs.readFileSync(new URL('./audit-tamper.sql', import.meta.url), 'utf8');
const tamper = (q) => sql(tamperSql + q);

await step('bots are created with keys shown once', async () => {
  for (const b of ['alice', 'bob']) {
    const r = mcpd('bots', 'create', b);
    eq(r.code, 0, `bots create ${b} exits 0`);
    key[b] = r.stdout.trim();
    match(key[b], /^mk_[0-9a-f]{48}$/, `${b}'s key is mk_ + 48 hex`);
  }
  eq(mcpd('bots', 'create', 'alice').code, 1, 'a second bot named alice is refused');
  const list = mcpd('bots', 'list');
  ok(/alice\s+enabled/.test(list.stdout) && /bob\s+enabled/.test(list.stdout), 'bots list shows both, enabled');
  ok(!list.stdout.includes(key.alice) && !fs.readFileSync(db).includes(Buffer.from(key.alice)), 'the key appears neither in the list nor in the database file');
});

await step('HTTP: each bot sees and calls exactly its bindings', async () => {
  const srv = await startServe(cfgText, { name: 'policy-http' });
  const alice = await httpClient(srv.url, key.alice);
  const bob = await httpClient(srv.url, key.bob);
  eq(await names(alice), ['demo__add', 'fixture__echo', 'fixture__test_simple_text'], 'alice sees her bindings and her role');
  eq(await names(bob), ['demo__add', 'demo__echo', 'demo__now', 'demo__reverse'], 'bob sees the demo server only');
  const r = await alice.callTool({ name: 'fixture__echo', arguments: { text: 'hi', path: '/tmp/a/../b', command: 'ls -l /tmp' } });
  eq(texts(r), ['hi'], 'an allowed call is answered');
  ok(fixtureSaw().includes('"path":"/tmp/b"'), 'the canonical path was forwarded, not the raw one');
  eq(texts(await alice.callTool({ name: 'demo__add', arguments: { a: 2, b: 3 } })), ['5'], 'a tool granted by the role works');
  const before = fixtureSaw().length;
  const e1 = await callErr(alice, 'fixture__echo', { text: 'x', path: '/etc/passwd' });
  eq(e1?.code, -32003, 'a path outside /tmp is denied with -32003');
  match(e1?.message ?? '', /paths: '\/etc\/passwd' \(argument 'path'\)/, 'the denial names the dimension, value and argument');
  const e2 = await callErr(alice, 'fixture__echo', { text: 'x', path: '/tmp/x', command: 'ls; rm -rf /' });
  eq(e2?.code, -32003, 'a shell metacharacter in the command is denied');
  match(e2?.message ?? '', /commands/, 'the denial names the commands dimension');
  const e3 = await callErr(alice, 'fixture__echo', { text: 'x', path: '/tmp/x', command: 'git log --output=/tmp/x' });
  eq(e3?.code, -32003, 'a command outside the patterns is denied');
  eq(fixtureSaw().length, before, 'no denied call reached the upstream (its log did not grow)');
  const hidden = await callErr(alice, 'demo__echo', { text: 'x' });
  const unknown = await callErr(alice, 'nope__nothing', {});
  eq(hidden?.code, -32602, 'a hidden tool gives -32602');
  eq(hidden?.message.replace('demo__echo', 'X'), unknown?.message.replace('nope__nothing', 'X'), 'a hidden tool gives the same error as an unknown one');
  eq((await callErr(bob, 'fixture__echo', { text: 'x' }))?.code, -32602, 'bob cannot call the fixture');

  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  const head = (extra) => ['POST /mcp HTTP/1.1', `Host: 127.0.0.1:${srv.port}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Content-Length: ${init.length}`, 'Connection: close', ...extra];
  const nokey = await rawHttp(srv.port, head([]), init);
  eq(nokey.status, 401, 'no key: 401');
  match(nokey.headers['www-authenticate'] ?? '', /^Bearer /, 'with a WWW-Authenticate: Bearer header');
  eq((await rawHttp(srv.port, head(['Authorization: Bearer mk_' + '0'.repeat(48)]), init)).status, 401, 'a wrong key: 401');
  const sid = alice.transport.sessionId;
  const stolen = await rawHttp(srv.port, head([`Authorization: Bearer ${key.bob}`, `Mcp-Session-Id: ${sid}`]),
                               JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }).padEnd(init.length));
  eq(stolen.status, 404, "alice's session used with bob's key is not found");

  // rotation: alice's key is revoked at once and her session closed
  const rot = mcpd('bots', 'rotate', 'alice');
  eq(rot.code, 0, 'bots rotate alice exits 0');
  const closed = await waitFor(async () => (await callErr(alice, 'fixture__echo', { text: 'x', path: '/tmp/x' })) !== null, 5000, 200);
  ok(closed, 'after rotation the old session stops working within 5 s');
  const alice2 = await httpClient(srv.url, rot.stdout.trim());
  eq(texts(await alice2.callTool({ name: 'fixture__test_simple_text', arguments: {} })).length, 1, 'the new key works');
  key.alice = rot.stdout.trim();
  eq(mcpd('bots', 'disable', 'bob').code, 0, 'bots disable bob');
  const refused = await waitFor(async () => (await rawHttp(srv.port, head([`Authorization: Bearer ${key.bob}`]), init)).status === 401, 5000, 200);
  ok(refused, 'a disabled bot is refused (401)');
  eq(mcpd('bots', 'enable', 'bob').code, 0, 'bots enable bob');
  const back = await waitFor(async () => (await rawHttp(srv.port, head([`Authorization: Bearer ${key.bob}`]), init)).status === 200, 5000, 200);
  ok(back, 'enabled again, bob is accepted');
  for (const c of [alice, bob, alice2]) await c.close().catch(() => {});
  await srv.stopAndCheck();
});

await step('stdio: the bot is --bot (or auth.default_bot)', async () => {
  const c = new Client({ name: 'policy-stdio', version: '1' }, { capabilities: {} });
  await c.connect(new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg, '--bot', 'alice'], stderr: 'ignore', env: { ...process.env } }));
  eq(await names(c), ['demo__add', 'fixture__echo', 'fixture__test_simple_text'], 'stdio --bot alice sees alice\'s tools');
  eq((await callErr(c, 'fixture__echo', { text: 'x', path: '/root' }))?.code, -32003, 'and is denied like over HTTP');
  await c.close();
  const d = new Client({ name: 'policy-stdio', version: '1' }, { capabilities: {} });
  await d.connect(new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg], stderr: 'ignore', env: { ...process.env } }));
  eq(await names(d), ['demo__add', 'demo__echo', 'demo__now', 'demo__reverse'], 'without --bot: auth.default_bot (bob)');
  await d.close();
});

await step('CLI views: catalog --bot and policy explain', async () => {
  const cat = mcpd('catalog', '--bot', 'bob', '--json');
  eq(JSON.parse(cat.stdout).tools.map((t) => t.name).sort(), ['demo__add', 'demo__echo', 'demo__now', 'demo__reverse'], 'catalog --bot bob');
  const allow = mcpd('policy', 'explain', '--bot', 'alice', '--tool', 'fixture__echo', '--args', '{"path":"/tmp/x/./y","command":"git status"}');
  eq(allow.code, 0, 'explain: allowed exits 0');
  match(allow.stdout, /^allow: /m, 'explain says allow');
  match(allow.stdout, /binding:\s+bots\.alice\.bindings\[0\]/, 'and names the deciding binding');
  match(allow.stdout, /"path":"\/tmp\/x\/y"/, 'and shows the canonical arguments it would forward');
  const deny = mcpd('policy', 'explain', '--bot', 'alice', '--tool', 'fixture__echo', '--args', '{"path":"/etc/shadow"}');
  eq(deny.code, 1, 'explain: denied exits 1');
  match(deny.stdout, /^deny: paths: '\/etc\/shadow'/m, 'explain names the dimension and value');
});

// A stdio upstream's writes wait until the loop is about to block; an audited
// call is sent from its row's callback, which runs in the audit's own
// prepare handle. Those writes must still leave before the loop sleeps, or a
// lone client's call waits for an unrelated wake-up (hundreds of ms).
await step('a lone client\'s audited calls are sent without waiting for a wake-up', async () => {
  const srv = await startServe(cfgText, { name: 'policy-lone' });
  const alice = await httpClient(srv.url, key.alice);
  const ms = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await alice.callTool({ name: 'fixture__echo', arguments: { text: `lone-${i}`, path: '/tmp/l' } });
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  ok(ms[10] < 100, `20 sequential calls: median ${ms[10].toFixed(1)} ms (< 100), max ${ms[19].toFixed(1)} ms`);
  await alice.close();
  await srv.stopAndCheck('policy-lone');
});

await step('audit: one row per call, a verifiable chain, tampering found', async () => {
  const srv = await startServe(cfgText, { name: 'policy-audit' });
  const before = Number(sql("SELECT count(*) FROM audit WHERE kind='call' AND tool='test_simple_text'"));
  const clients = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => httpClient(srv.url, key.alice)));
  const N = 400;
  let done = 0;
  await Promise.all(clients.map(async (c) => {
    for (let i = 0; i < N / clients.length; i++) {
      await c.callTool({ name: 'fixture__test_simple_text', arguments: {} });
      done++;
    }
  }));
  eq(done, N, `${N} calls from 8 concurrent clients were answered`);
  // A call is complete when its row (written as it is forwarded) has exactly one
  // outcome, listed in a later `result` row: [[call_id, status, latency_us], ...].
  await srv.stopAndCheck(); // shutdown flushes the outcomes
  const outcomes = "(SELECT json_extract(j.value, '$[0]') AS cid, json_extract(j.value, '$[1]') AS st, r.id AS rid FROM audit r, json_each(r.args) j WHERE r.kind = 'result')";
  const calls = "FROM audit c WHERE c.kind='call' AND c.tool='test_simple_text' AND c.bot='alice'";
  const after = Number(sql(`SELECT count(*) ${calls}`));
  eq(after - before, N, `exactly ${N} call rows`);
  const okN = Number(sql(`SELECT count(*) ${calls} AND c.status = 'forwarded' AND (SELECT count(*) FROM ${outcomes} o WHERE o.cid = c.id AND o.st = 'ok' AND o.rid > c.id) = 1`));
  eq(okN - before, N, `each with exactly one later outcome 'ok': ${N} complete calls`);
  eq(sql(`SELECT count(*) - count(DISTINCT cid) FROM ${outcomes}`), '0', 'no call has two outcomes');
  eq(sql(`SELECT group_concat(DISTINCT c.location) ${calls}`), 'local', 'the stdio upstream\'s calls are at location local');
  eq(sql(`SELECT count(*) FROM ${outcomes} o WHERE NOT EXISTS (SELECT 1 FROM audit c WHERE c.id = o.cid AND c.kind = 'call')`), '0', 'every outcome names a call row');
  if (after - before !== N) console.log(sql("SELECT kind, bot, tool, status, count(*) FROM audit GROUP BY 1,2,3,4"));
  const denials = sql("SELECT count(*) FROM audit WHERE kind='deny' AND decision='deny' AND reason LIKE 'paths:%'");
  ok(Number(denials) >= 1, `denials are audited with their reason (${denials})`);
  ok(!fs.readFileSync(db).includes(Buffer.from(key.alice)), 'no key in the database');
  const lists = sql("SELECT count(*) FROM audit WHERE kind='list' AND bot='alice' AND reason LIKE '3 of % tools shown%'");
  ok(Number(lists) >= 1, `alice's filtered tools/list left summary rows ("3 of N tools shown"): ${lists}`);
  for (const c of clients) await c.close().catch(() => {});
  const v = mcpd('audit', 'verify');
  eq(v.code, 0, 'audit verify: the chain is intact');
  const q = mcpd('audit', '--bot', 'alice', '--tool', 'echo', '--json');
  ok(q.code === 0 && q.stdout.trim().split('\n').every((l) => JSON.parse(l).bot === 'alice'), 'audit --bot alice --tool echo --json lists only those rows');
  const id = sql("SELECT id FROM audit WHERE kind='call' ORDER BY id LIMIT 1 OFFSET 5");
  const status = sql(`SELECT status FROM audit WHERE id=${id}`);
  tamper(`UPDATE audit SET status='forged' WHERE id=${id}`);
  const bad = mcpd('audit', 'verify');
  eq(bad.code, 1, 'after a hand edit, audit verify fails');
  match(bad.stdout, new RegExp(`broken at row ${id}\\b`), `and names the edited row (${id})`);
  tamper(`UPDATE audit SET status='${status}' WHERE id=${id}`);
  eq(mcpd('audit', 'verify').code, 0, 'restoring the value restores the chain');
  // an outcome is in the chain too: forging one is found
  const rid = sql("SELECT id FROM audit WHERE kind='result' ORDER BY id LIMIT 1");
  const args = sql(`SELECT args FROM audit WHERE id=${rid}`);
  tamper(`UPDATE audit SET args=replace(args, '"ok"', '"error"') WHERE id=${rid}`);
  const bad2 = mcpd('audit', 'verify');
  eq(bad2.code, 1, 'after an outcome is forged, audit verify fails');
  match(bad2.stdout, new RegExp(`broken at row ${rid}\\b`), `and names the result row (${rid})`);
  tamper(`UPDATE audit SET args='${args}' WHERE id=${rid}`);
  eq(mcpd('audit', 'verify').code, 0, 'restoring the outcome restores the chain');
});

await step('audit.chain: hmac: the chain is keyed by the master key', async () => {
  const hdb = path.join(tmp, 'hmac.db');
  const keyFile = path.join(tmp, 'hmac.key');
  const text = `store: ${hdb}
master_key_file: ${keyFile}
audit: { enabled: true, chain: hmac }
servers:
  demo:
    command: ${bin.demo}
`;
  const hcfg = path.join(tmp, 'hmac.yaml');
  fs.writeFileSync(hcfg, text);
  const srv = await startServe(text, { name: 'policy-hmac' });
  const c = new Client({ name: 'hmac', version: '1' }, { capabilities: {} });
  await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${srv.port}/mcp`)));
  for (let i = 0; i < 5; i++) await c.callTool({ name: 'echo', arguments: { text: `h${i}` } });
  await c.close();
  await srv.stopAndCheck();
  eq((fs.statSync(keyFile).mode & 0o777).toString(8), '600', 'the master key file was made, mode 0600');
  const hsql = (q) => run('sqlite3', [hdb, q]).stdout.trim();
  eq(hsql("SELECT id FROM audit_meta WHERE k = 'chain'"), '1', 'the store is marked keyed');
  const v = run(bin.mcpd, ['audit', 'verify', '-c', hcfg]);
  eq(v.code, 0, 'audit verify with the key: intact');
  const id = hsql("SELECT id FROM audit WHERE kind='call' ORDER BY id LIMIT 1 OFFSET 2");
  run('sqlite3', [hdb, tamperSql + `UPDATE audit SET tool='forged' WHERE id=${id}`]);
  const bad = run(bin.mcpd, ['audit', 'verify', '-c', hcfg]);
  eq(bad.code, 1, 'an edit is found');
  match(bad.stdout, new RegExp(`broken at row ${id}\\b`), 'and named');
  const wrong = run(bin.mcpd, ['audit', 'verify', '-c', hcfg], { env: { ...process.env, MCPD_MASTER_KEY: '11'.repeat(32) } });
  eq(wrong.code, 1, 'another master key: no verdict');
  match(wrong.stderr, /the master key is not the one this audit log is chained with/, 'and it says so');
  const plain = path.join(tmp, 'hmac-plain.yaml');
  fs.writeFileSync(plain, text.replace('chain: hmac', 'chain: sha256'));
  const noKey = run(bin.mcpd, ['audit', 'verify', '-c', plain]);
  eq(noKey.code, 1, 'without audit.chain: hmac: no verdict either');
  match(noKey.stderr, /chained with HMAC under the master key/, 'and it says what is needed');
  // the key file gone (or its path mistyped): the daemon refuses, and makes no new key
  fs.renameSync(keyFile, `${keyFile}.away`);
  const down = run(bin.mcpd, ['serve', '-c', hcfg, '--listen', '127.0.0.1:0'], { timeout: 20000 });
  ok(down.code !== 0 && down.signal === null, 'mcpd serve does not start', `${down.code} ${down.signal}`);
  match(down.stderr, /the audit log is chained with HMAC, and its key: /, 'and says why');
  ok(!fs.existsSync(keyFile), 'no new key file was made for the keyed store');
  fs.renameSync(`${keyFile}.away`, keyFile);
});

// The journal write that makes a call's row durable fails (the file size
// limit, set on the running mcpd): the call must be refused before anything
// reaches the upstream (security.md 8.2), not answered as "withheld" after
// the upstream ran it.
await step('a call whose row cannot be written never reaches the upstream', async () => {
  const srv = await startServe(cfgText, { name: 'policy-full' });
  const alice = await httpClient(srv.url, key.alice);
  eq(texts(await alice.callTool({ name: 'fixture__echo', arguments: { text: 'before-full', path: '/tmp/f' } })), ['before-full'], 'a call before the limit is answered');
  // the helper has chained it (and the outcome that follows): nothing else writes now
  ok(await waitFor(() => sql("SELECT count(*) FROM audit WHERE kind='call' AND args LIKE '%before-full%'") === '1', 5000, 50), 'its row is in the database');
  await sleep(300);
  const dir = path.dirname(db);
  const jnl = fs.readdirSync(dir).filter((n) => n.startsWith(`${path.basename(db)}-audit-`) && n.endsWith('.jnl'));
  eq(jnl.length, 1, 'mcpd writes one journal');
  const size = fs.statSync(path.join(dir, jnl[0])).size;
  eq(run('prlimit', ['--pid', String(srv.pid), `--fsize=${size}:`]).code, 0, `prlimit: mcpd's files cannot grow past ${size} bytes`);
  const seen = fixtureSaw().length;
  const e = await callErr(alice, 'fixture__echo', { text: 'after-full', path: '/tmp/f' });
  match(e?.message ?? '', /the audit log cannot be written; the request is refused/, 'the call is refused');
  ok(await waitFor(() => /\.jnl: file too large/.test(srv.log()), 2000, 20), 'it was the journal write that failed (logged)');
  const e2 = await callErr(alice, 'fixture__echo', { text: 'after-full-2', path: '/tmp/f' });
  match(e2?.message ?? '', /the audit log cannot be written; the request is refused/, 'and so is the next one (the audit refuses from then on)');
  await sleep(200);
  eq(fixtureSaw().slice(seen).includes('after-full'), false, 'the upstream received neither call');
  await alice.close();
  // still limited: a write of the shutdown fails with EFBIG, it does not kill mcpd (SIGXFSZ)
  await srv.stopAndCheck('policy-full');
  eq(sql("SELECT count(*) FROM audit WHERE args LIKE '%after-full%'"), '0', 'no row claims a refused call');
  eq(mcpd('audit', 'verify').code, 0, 'the chain verifies');
});

// A per-client instance starts on its session's first call, which waits in
// the queue: the call goes out once the instance is ready *and* its row is
// durable, whichever comes last.
await step('a per-client upstream: the first calls wait for the instance and their rows', async () => {
  const slog = path.join(tmp, 'solo.log');
  const slowLog = path.join(tmp, 'slow.log');
  // `slow` takes 2 s to start and gives calls 300 ms: its first call times out in the queue
  const text = cfgText
    .replace('  demo:\n', `  solo:\n    command: ${bin.fixture}\n    share: per-client\n    env: { FIXTURE_LOG: "${slog}" }\n` +
      `  slow:\n    command: /bin/sh\n    args: ["-c", "sleep 2; exec ${bin.fixture}"]\n    share: per-client\n    timeout: 300ms\n    env: { FIXTURE_LOG: "${slowLog}" }\n  demo:\n`)
    .replace('        commands: ["ls *", "ls -l *", "git status"]\n', '        commands: ["ls *", "ls -l *", "git status"]\n      - { resource: solo, tools: [echo] }\n      - { resource: slow, tools: [echo] }\n');
  ok(text.includes('resource: solo') && text.includes('share: per-client'), 'the configuration has per-client servers bound to alice');
  const srv = await startServe(text, { name: 'policy-solo' });
  const alice = await httpClient(srv.url, key.alice);
  const r = await Promise.all(['solo-1', 'solo-2', 'solo-3'].map((t) => alice.callTool({ name: 'solo__echo', arguments: { text: t } })));
  eq(r.map(texts), [['solo-1'], ['solo-2'], ['solo-3']], 'three concurrent first calls are answered');
  const got = fs.readFileSync(slog, 'utf8');
  ok(['solo-1', 'solo-2', 'solo-3'].every((t) => got.split(`"text":"${t}"`).length === 2), 'the instance received each call once');
  const slow = await callErr(alice, 'slow__echo', { text: 'slow-1' });
  match(slow?.message ?? '', /did not answer within 300 ms/, 'a call queued for an instance still starting times out');
  ok(await waitFor(() => fs.existsSync(slowLog) && fs.readFileSync(slowLog, 'utf8').includes('"method":"initialize"'), 5000, 50), 'the slow instance starts later');
  await sleep(200);
  eq(fs.readFileSync(slowLog, 'utf8').includes('slow-1'), false, 'it never receives the timed-out call');
  // a second session gets its own instance, starting again: its client cancels the call first
  const alice2 = await httpClient(srv.url, key.alice);
  const ac = new AbortController();
  setTimeout(() => ac.abort('changed my mind'), 100);
  const cancelled = await alice2.callTool({ name: 'slow__echo', arguments: { text: 'slow-2' } }, undefined, { signal: ac.signal }).then(() => null, (e) => e);
  ok(cancelled !== null, `the cancelled call rejects on the client (${cancelled})`);
  ok(await waitFor(() => /client cancelled echo/.test(srv.log()), 2000, 20), 'mcpd took the cancellation (logged), before the 300 ms deadline');
  const inits = () => fs.readFileSync(slowLog, 'utf8').split('"method":"initialize"').length - 1;
  ok(await waitFor(() => inits() === 2, 5000, 50), 'the second instance starts later');
  await sleep(200);
  const seen2 = fs.readFileSync(slowLog, 'utf8');
  ok(!seen2.includes('slow-2') && !seen2.includes('notifications/cancelled'), 'it receives neither the cancelled call nor a cancellation for it');
  await alice2.close();
  await alice.close();
  await srv.stopAndCheck('policy-solo');
  eq(sql("SELECT count(*) FROM audit WHERE kind='call' AND resource='solo' AND args LIKE '%solo-%'"), '3', 'each has its call row');
  const outcomeOf = (like) => sql(`SELECT json_extract(j.value, '$[1]') FROM audit r, json_each(r.args) j WHERE r.kind = 'result' AND json_extract(j.value, '$[0]') = (SELECT id FROM audit WHERE kind = 'call' AND args LIKE '${like}')`);
  eq(outcomeOf('%solo-1%'), 'ok', 'a call that was answered has the outcome ok');
  eq(outcomeOf('%slow-1%'), 'not_sent', 'the timed-out call has the outcome not_sent (the upstream never saw it)');
  eq(outcomeOf('%slow-2%'), 'not_sent', 'so has the cancelled one');
  eq(mcpd('audit', 'verify').code, 0, 'the chain verifies');
});

await step('kill -9 under load loses no acknowledged call', async () => {
  const srv = await startServe(cfgText, { name: 'policy-kill' });
  const before = Number(sql("SELECT count(*) FROM audit WHERE kind='call' AND tool='echo'"));
  const clients = await Promise.all([0, 1, 2, 3].map(() => httpClient(srv.url, key.alice)));
  let acked = 0;
  let stop = false;
  const load = clients.map(async (c, i) => {
    for (let n = 0; !stop; n++) {
      try {
        await c.callTool({ name: 'fixture__echo', arguments: { text: `k-${i}-${n}`, path: '/tmp/k' } });
        acked++;
      } catch {
        return;
      }
    }
  });
  await waitFor(() => acked >= 200, 10000, 20);
  srv.stopping = true;
  process.kill(srv.pid, 'SIGKILL');
  stop = true;
  await Promise.allSettled(load);
  await srv.exited;
  ok(acked >= 200, `${acked} calls were acknowledged before the kill`);
  // the killed mcpd's journal holds what its helper had not chained yet: verify chains it first
  const v = mcpd('audit', 'verify');
  eq(v.code, 0, 'the database opens and its chain verifies after kill -9');
  const left = fs.readdirSync(path.dirname(db)).filter((n) => n.startsWith(`${path.basename(db)}-audit-`) && n.endsWith('.jnl'));
  eq(left.length, 0, 'no journal is left behind once verify chained it');
  eq(sql('PRAGMA integrity_check'), 'ok', 'sqlite integrity_check: ok');
  const rows = Number(sql("SELECT count(*) FROM audit WHERE kind='call' AND tool='echo'")) - before;
  ok(rows >= acked, `every acknowledged call has its row (${rows} rows >= ${acked} acknowledged)`);
  // and every call that reached the upstream: its row was durable before it was sent
  const audited = new Set(sql("SELECT args FROM audit WHERE kind='call' AND tool='echo'").split('\n').map((a) => a.match(/"(k-\d+-\d+)"/)?.[1]));
  const reached = [...fixtureSaw().matchAll(/"text":"(k-\d+-\d+)"/g)].map((m) => m[1]);
  ok(reached.length >= acked, `the upstream received ${reached.length} calls (>= ${acked} acknowledged)`);
  eq(reached.filter((t) => !audited.has(t)), [], 'every call the upstream received has its row');
  for (const c of clients) await c.close().catch(() => {});
});

await finish();
