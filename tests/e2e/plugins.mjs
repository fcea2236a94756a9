// plugins.mjs - plugins end to end (issue 6): declarative HTTP plugins
// against a local GitHub/httpbin-like API fixture (Node http on 127.0.0.1,
// which records every request), an exec plugin, a packed .mst archive, the
// repos dimension through the policy engine, and egress refusals (host not
// allowed, a name resolving to loopback, the metadata address, a redirect
// to a disallowed host) proven by a second fixture that must see nothing.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { bin, ok, eq, match, step, finish, startServe, sdk, texts, tmp, run, onCleanup, track } from './lib.mjs';

const { Client, StreamableHTTPClientTransport } = await sdk();
const examples = process.env.MCPD_PLUGINS_DIR;
if (!examples) throw new Error('MCPD_PLUGINS_DIR is not set (run through ctest)');

// ---- fixtures ----------------------------------------------------------------
function fixture(name, handler) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () => {
      onCleanup(() => new Promise((r) => srv.close(r)));
      srv.closeAllConnections && onCleanup(() => srv.closeAllConnections());
      resolve({ name, port: srv.address().port, seen });
    }),
  );
}
const json = (res, status, obj) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(obj));
};

let target; // the disallowed host: must never see a request
const tokens = []; // bodies of token endpoint requests
const api = await fixture('api', (req, res, body) => {
  const u = new URL(req.url, 'http://x');
  let m;
  if ((m = u.pathname.match(/^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)$/)))
    return json(res, 200, { number: Number(m[3]), title: `issue ${m[3]} of ${m[1]}/${m[2]}`, state: 'open' });
  if ((m = u.pathname.match(/^\/repos\/([^/]+)\/([^/]+)\/issues$/)))
    return json(res, 200, [{ number: 1, title: 'one', state: u.searchParams.get('state') ?? 'open' }]);
  if ((m = u.pathname.match(/^\/repos\/([^/]+)\/([^/]+)\/pulls\/(\d+)$/)))
    return json(res, 200, { number: Number(m[3]), title: `pull ${m[3]}`, user: { login: 'octo' } });
  if ((m = u.pathname.match(/^\/repos\/([^/]+)\/([^/]+)\/pulls$/))) return json(res, 200, [{ number: 2, title: 'two' }]);
  if (u.pathname === '/get') return json(res, 200, { args: Object.fromEntries(u.searchParams), headers: req.headers });
  if (u.pathname === '/post') return json(res, 200, { json: JSON.parse(body || 'null'), headers: req.headers });
  if (u.pathname === '/status/599') {
    res.writeHead(599, { 'Content-Type': 'text/plain' });
    return res.end(Buffer.from([0x66, 0xff, 0xfe, 0x67, 0xe2, 0x82])); // not UTF-8
  }
  if ((m = u.pathname.match(/^\/status\/(\d+)$/))) {
    res.writeHead(Number(m[1]), { 'Content-Type': 'text/plain' });
    return res.end(`status ${m[1]} body`);
  }
  if (u.pathname === '/big') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    return res.end('x'.repeat(5 * 1024 * 1024));
  }
  if (u.pathname === '/token') {
    tokens.push(body);
    return json(res, 200, { access_token: `at-${tokens.length}`, token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt-1' });
  }
  if (u.pathname.startsWith('/once401/')) {
    if (req.headers.authorization === 'Bearer at-1') {
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer' });
      return res.end('{"message":"Bad credentials"}');
    }
    return json(res, 200, { title: 'after refresh', auth: req.headers.authorization });
  }
  if (u.pathname === '/redirect') {
    res.writeHead(302, { Location: u.searchParams.get('to') });
    return res.end();
  }
  res.writeHead(404);
  res.end('not found');
});
target = await fixture('target', (req, res) => json(res, 200, { reached: true }));
const A = `http://127.0.0.1:${api.port}`;

// ---- config ------------------------------------------------------------------
const mst = path.join(tmp, 'httpbin.mst');
await step('mcpd plugin pack builds a .mst archive that plugin check accepts', async () => {
  const r = run(bin.mcpd, ['plugin', 'pack', path.join(examples, 'httpbin'), mst]);
  eq(r.code, 0, 'plugin pack exits 0');
  ok(fs.existsSync(mst) && fs.statSync(mst).size > 100, 'the archive exists');
  eq(run(bin.mcpd, ['plugin', 'check', mst]).code, 0, 'plugin check accepts it');
});

const db = path.join(tmp, 'mcpd.db');
const cfgText = (extra = '') => `store: ${db}
plugins:
  gh:
    source: ${path.join(examples, 'github')}
    config: { api_base: "${A}" }
    allowedOperations:
      issue.read: { alias: issue_read }
      issues.list: { alias: issues_list }
      pull.read: { alias: pull_read }
      pulls.list:
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  hb:
    source: ${mst}
    config: { base: "${A}" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
    timeout: 10s
  hello:
    source: ${path.join(examples, 'hello')}
  offlist:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://localhost:${target.port}" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  loopname:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://localhost:${target.port}" }
    egress: { allowedHosts: ["localhost"] }
  metadata:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://169.254.169.254" }
    egress: { allowedHosts: ["169.254.169.254"] }
  privip:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://127.0.0.1:${target.port}" }
    egress: { allowedHosts: ["127.0.0.1"] }
  cidrok:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://127.0.0.1:${target.port}" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivateCidrs: ["10.0.0.0/8", "127.0.0.0/8"] }
  cidrno:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "http://127.0.0.1:${target.port}" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivateCidrs: ["10.0.0.0/8", "fd00::/8"] }
${extra}`;
const bots = `bots:
  alice:
    bindings:
      - { resource: gh, tools: ["*"], repos: ["acme/*"] }
`;

function runAsync(cmd, args, timeoutMs = 20000) {
  return new Promise((resolve) => {
    const p = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function client(url, key) {
  const c = new Client({ name: 'plugins-e2e', version: '1' }, { capabilities: {} });
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return c;
}
const call = (c, name, args) => c.callTool({ name, arguments: args });
async function callErr(c, name, args) {
  try {
    await c.callTool({ name, arguments: args });
    return null;
  } catch (e) {
    return e;
  }
}

const srv = await startServe(cfgText());
const c = await client(srv.url);

await step('the SDK client lists plugin tools (aliases, exec, .mst)', async () => {
  const names = (await c.listTools()).tools.map((t) => t.name);
  for (const n of ['gh__issue_read', 'gh__issues_list', 'gh__pull_read', 'hb__get', 'hb__post', 'hb__status', 'hello__greet'])
    ok(names.includes(n), `${n} is listed`);
  ok(names.some((n) => /^gh__pulls_list_[0-9a-f]{8}$/.test(n)), 'an operation name with a dot is shortened with a hash suffix', names);
  const t = (await c.listTools()).tools.find((x) => x.name === 'gh__issue_read');
  eq(t.inputSchema.required, ['repo', 'number'], 'the input schema comes from the manifest');
});

await step('declarative calls: URL template, query, body, headers, structuredContent', async () => {
  const r = await call(c, 'gh__issue_read', { repo: 'acme/widgets', number: 7 });
  eq(r.isError, undefined, 'issue read succeeds');
  eq(r.structuredContent?.title, 'issue 7 of acme/widgets', 'JSON response is returned as structuredContent');
  ok(texts(r)[0].includes('"title"'), 'and as text');
  eq(api.seen.at(-1).url, '/repos/acme/widgets/issues/7', 'the fixture saw the expanded path');
  eq(api.seen.at(-1).headers.accept, 'application/vnd.github+json', 'manifest headers are sent');
  const p = await call(c, 'gh__pull_read', { repo: 'acme/widgets', number: 3 });
  eq(texts(p), ['pull 3'], 'response.text picks a JSON pointer');
  const l = await call(c, 'gh__issues_list', { repo: 'acme/widgets', state: 'closed' });
  eq(api.seen.at(-1).url, '/repos/acme/widgets/issues?state=closed', 'query arguments are appended');
  eq(l.structuredContent?.result?.[0]?.state, 'closed', 'a JSON array is wrapped as structuredContent.result');
  const g = await call(c, 'hb__get', { q: 'a b&c/d', n: 3 });
  eq(api.seen.at(-1).url, '/get?q=a%20b%26c%2Fd&n=3', 'query values are percent-encoded');
  eq(g.structuredContent?.args, { q: 'a b&c/d', n: '3' }, 'the .mst plugin works');
  const enc = await call(c, 'gh__issue_read', { repo: 'acme/we ird%', number: 1 });
  eq(enc.isError, undefined, 'a repo with odd characters is sent');
  eq(api.seen.at(-1).url, '/repos/acme/we%20ird%25/issues/1', 'path segments are percent-encoded');
  const n0 = api.seen.length;
  const trav = await call(c, 'gh__issue_read', { repo: 'acme/../admin', number: 1 });
  eq(trav.isError, true, "a '..' segment is refused");
  match(texts(trav)[0], /'\.\.' path segment/, 'with a clear message');
  eq(api.seen.length, n0, 'and never sent');
  const post = await call(c, 'hb__post', { message: 'hi', count: 2 });
  eq(api.seen.at(-1).body, '{"message":"hi","count":2}', 'the JSON body maps the arguments');
  eq(api.seen.at(-1).headers['x-message'], 'hi', 'header templates take arguments');
  eq(api.seen.at(-1).headers['content-type'], 'application/json', 'with Content-Type: application/json');
  eq(post.structuredContent?.json, { message: 'hi', count: 2 }, 'the echo comes back');
  const bad = await call(c, 'hb__post', { count: 2 });
  eq(bad.isError, true, 'a missing required argument is a tool error');
});

await step('API errors and transport failures are tool results with isError', async () => {
  const r = await call(c, 'hb__status', { code: 503 });
  eq(r.isError, true, 'HTTP 503 gives isError: true');
  match(texts(r)[0], /^HTTP 503 from the API: status 503 body/, 'with the status and a body excerpt');
  const nf = await call(c, 'hb__status', { code: 404 });
  match(texts(nf)[0], /HTTP 404/, '404 too');
  const bad = await call(c, 'hb__status', { code: 599 });
  eq(texts(bad), ['HTTP 599 from the API: f??g??'], 'an error body that is not UTF-8 is answered, bad bytes replaced');
});

await step('egress: refusals happen before any connection to the target', async () => {
  const t0 = target.seen.length;
  const a = await call(c, 'offlist__get', {});
  eq(a.isError, true, 'a host not in allowedHosts is refused');
  match(texts(a)[0], /egress refused: host 'localhost' is not in egress.allowedHosts/, 'naming the host');
  const b = await call(c, 'loopname__get', {});
  eq(b.isError, true, 'a name that resolves to loopback is refused with allowPrivate off');
  match(texts(b)[0], /egress refused: (127\.0\.0\.1|::1) is loopback/, 'naming the address and its class');
  const m = await call(c, 'metadata__get', {});
  eq(m.isError, true, '169.254.169.254 is refused');
  match(texts(m)[0], /egress refused: 169\.254\.169\.254 is metadata/, 'as the metadata address');
  const t1 = target.seen.length;
  const co = await call(c, 'cidrok__get', {});
  eq(co.isError, undefined, 'allowPrivateCidrs 127.0.0.0/8 lets a loopback address through');
  eq(target.seen.length, t1 + 1, 'and the target saw it');
  const cn = await call(c, 'cidrno__get', {});
  match(texts(cn)[0], /egress refused: 127\.0\.0\.1 is loopback/, 'ranges that do not hold the address: refused');
  eq(target.seen.length, t1 + 1, 'without a connection');
  const p = await call(c, 'privip__get', {});
  match(texts(p)[0], /egress refused: 127\.0\.0\.1 is loopback/, 'a loopback IP literal is refused');
  const before = api.seen.length;
  const rd = await c.callTool({ name: 'hb__get', arguments: {} }); // warm: allowed works
  eq(rd.isError, undefined, 'the allowed fixture still answers');
  eq(api.seen.length, before + 1, 'and saw that one request');
  eq(target.seen.length, t0 + 1, 'the target fixture recorded only the request allowPrivateCidrs let through');
});

await step('egress: a redirect to a disallowed host is refused at the hop', async () => {
  const srv2 = await startServe(
    `plugins:
  redir:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "${A}/redirect?to=http://localhost:${target.port}/x&" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  redirok:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "${A}/redirect?to=${encodeURIComponent(A + '/get?via=redirect')}&" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
`,
    { name: 'redirect' },
  );
  const c2 = await client(srv2.url);
  const t0 = target.seen.length;
  const n0 = api.seen.length;
  const r = await call(c2, 'redir__get', {});
  eq(r.isError, true, 'the redirect to localhost is refused');
  match(texts(r)[0], /egress refused: host 'localhost'/, 'at the second hop');
  eq(api.seen.length, n0 + 1, 'the allowed fixture saw the first hop');
  eq(target.seen.length, t0, 'the target fixture recorded nothing');
  const ok2 = await call(c2, 'redirok__get', {});
  eq(ok2.structuredContent?.args?.via, 'redirect', 'an allowed redirect is followed');
  await c2.close();
  await srv2.stopAndCheck('redirect mcpd');
});

await step('the exec plugin works', async () => {
  eq(texts(await call(c, 'hello__greet', { name: 'mcpd' })), ['hello, mcpd'], 'hello__greet answers');
});

await step('a response over the cap is refused with a clear error', async () => {
  const srv3 = await startServe(
    `plugins:
  big:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "${A}/big?" }
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
`,
    { name: 'big' },
  );
  const c3 = await client(srv3.url);
  // /big?/get: the fixture's path is /big
  const r = await call(c3, 'get', {}); // one resource: names are not prefixed
  eq(r.isError, true, 'a 5 MiB response is an error');
  match(texts(r)[0], /larger than \d+ bytes/, 'naming the cap');
  await c3.close();
  await srv3.stopAndCheck('big mcpd');
});

await c.close();
await srv.stopAndCheck('main mcpd');

await step('policy: a repos glob acme/* allows acme/x and denies evil/x', async () => {
  const cfg = path.join(tmp, 'policy.yaml');
  fs.writeFileSync(cfg, cfgText(bots));
  const r = run(bin.mcpd, ['bots', 'create', 'alice', '-c', cfg]);
  eq(r.code, 0, 'bots create alice');
  const s = await startServe(cfgText(bots), { name: 'policy' });
  const a = await client(s.url, r.stdout.trim());
  const good = await call(a, 'gh__issue_read', { repo: 'acme/x', number: 1 });
  eq(good.structuredContent?.title, 'issue 1 of acme/x', 'acme/x is allowed');
  const n0 = api.seen.length;
  const e = await callErr(a, 'gh__issue_read', { repo: 'evil/x', number: 1 });
  eq(e?.code, -32003, 'evil/x is denied');
  match(e?.message ?? '', /repos/, 'the denial names the repos dimension');
  // plugin dimensions use plain globs ('*' crosses '/'), so acme/* matches this;
  // the {+repo} expansion refuses the '..' segments before any request is made
  const e2 = await call(a, 'gh__issues_list', { repo: 'acme/x/../../evil/x' });
  eq(e2.isError, true, 'a traversal inside an allowed glob is refused by the adapter');
  match(texts(e2)[0] ?? '', /'\.\.' path segment/, 'as a bad path segment');
  eq(api.seen.length, n0, 'the fixture never saw the denied requests');
  await a.close();
  await s.stopAndCheck('policy mcpd');
  const audit = run(bin.mcpd, ['audit', '-c', cfg, '--json']);
  const rows = audit.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  ok(rows.some((r) => r.location === 'plugin:gh' && r.decision === 'allow'), 'the audit records allowed plugin calls at location plugin:gh', audit.stdout.slice(0, 400));
  ok(rows.some((r) => r.decision === 'deny' && r.resource === 'gh'), 'and the denial', audit.stdout.slice(0, 400));
});

await step('auth: bearer and api_key sent as configured; oauth2 refreshed once on 401', async () => {
  const cdb = path.join(tmp, 'creds.db');
  let text = `store: ${cdb}
oauth_providers:
  fx:
    token_url: ${A}/token
    client_id: mcpd
    grant: client_credentials
plugins:
  ghb:
    source: ${path.join(examples, 'github')}
    config: { api_base: "${A}" }
    credential: tok
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  hbk:
    source: ${path.join(examples, 'httpbin')}
    config: { base: "${A}" }
    credential: key
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  gho:
    source: ${path.join(examples, 'github')}
    config: { api_base: "${A}/once401" }
    credential: oa
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  ghwrong:
    source: ${path.join(examples, 'github')}
    config: { api_base: "${A}" }
    credential: key
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
`;
  const qdir = path.join(tmp, 'querykey');
  fs.mkdirSync(qdir, { recursive: true });
  fs.writeFileSync(path.join(qdir, 'manifest.yaml'), `name: querykey
version: 1.0.0
config: { type: object, properties: { base: { type: string } }, required: [base] }
auth: [{ type: api_key, in: query, name: api_key }]
operations:
  get:
    input: { type: object, properties: { q: { type: string } } }
    method: GET
    url: "{config.base}/get"
    query: [q]
`);
  text += `  ghr:
    source: ${path.join(examples, 'github')}
    config: { api_base: "${A}/redirect?to=http://127.0.0.1:${target.port}/x&" }
    credential: tok
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
  hbq:
    source: ${qdir}
    config: { base: "${A}" }
    credential: key
    egress: { allowedHosts: ["127.0.0.1"], allowPrivate: true }
`;
  const cfg = path.join(tmp, 'auth.yaml');
  fs.writeFileSync(cfg, text);
  const cred = (args, input) => run(bin.mcpd, ['credentials', ...args, '-c', cfg], { input: input ?? '' });
  eq(cred(['add', 'tok', '--kind', 'bearer'], 'tok-secret-1\n').code, 0, 'credentials add tok (bearer)');
  eq(cred(['add', 'key', '--kind', 'api_key'], 'key-secret-2\n').code, 0, 'credentials add key (api_key)');
  eq(cred(['add', 'oa', '--kind', 'oauth2', '--provider', 'fx']).code, 0, 'credentials add oa (oauth2)');
  // async: the token endpoint is served by this very process
  const au = await runAsync(bin.mcpd, ['credentials', 'authorize', 'oa', '--client-credentials', '-c', cfg]);
  eq(au.code, 0, `credentials authorize oa --client-credentials ${au.stderr.trim()}`);
  eq(tokens.length, 1, 'the token endpoint issued at-1');
  const s = await startServe(text, { name: 'auth' });
  const a = await client(s.url);
  const names = (await a.listTools()).tools.map((t) => t.name);
  const ghbRead = names.find((n) => n.startsWith('ghb__issue_read'));
  const r1 = await call(a, ghbRead, { repo: 'acme/x', number: 1 });
  eq(r1.isError, undefined, 'the bearer plugin call succeeds');
  eq(api.seen.at(-1).headers.authorization, 'Bearer tok-secret-1', 'Authorization: Bearer <the stored secret>');
  const r2 = await call(a, 'hbk__get', { q: 'x' });
  eq(r2.isError, undefined, 'the api_key plugin call succeeds');
  eq(api.seen.at(-1).headers['x-api-key'], 'key-secret-2', "the api key goes in the manifest's header");
  eq(api.seen.at(-1).headers.authorization, undefined, 'and no Authorization header');
  const t0 = target.seen.length;
  const rr = await call(a, names.find((n) => n.startsWith('ghr__issues_list')), { repo: 'acme/x' });
  eq(rr.structuredContent?.reached, true, 'a redirect to another origin (same host, other port) is followed');
  eq(api.seen.at(-1).headers.authorization, 'Bearer tok-secret-1', 'the first hop carried the credential');
  eq(target.seen.length, t0 + 1, 'the other origin got the second hop');
  eq(target.seen.at(-1)?.headers.authorization, undefined, 'without the credential');
  const rq = await call(a, 'hbq__get', { q: 'a b' });
  eq(rq.isError, undefined, 'the query api_key plugin call succeeds');
  eq(api.seen.at(-1).url, '/get?q=a%20b&api_key=key-secret-2', 'the api key goes in the query parameter the manifest names');
  const n0 = api.seen.length;
  const r3 = await call(a, names.find((n) => n.startsWith('gho__issue_read')), { repo: 'acme/x', number: 5 });
  eq(r3.structuredContent?.title, 'after refresh', 'a 401 refreshes the oauth2 token and retries once');
  eq(api.seen.slice(n0).filter((x) => x.url.startsWith('/once401/')).map((x) => x.headers.authorization), ['Bearer at-1', 'Bearer at-2'], 'the API saw at-1 (401) then at-2');
  eq(tokens.length, 2, 'the token endpoint was asked once more');
  const r4 = await call(a, names.find((n) => n.startsWith('ghwrong__issue_read')), { repo: 'acme/x', number: 1 });
  eq(r4.isError, true, 'an api_key credential on a bearer-only plugin is refused');
  match(texts(r4)[0], /does not accept/, 'with a clear message');
  ok(!s.log().includes('tok-secret-1') && !s.log().includes('key-secret-2') && !s.log().includes('at-2'), 'no secret in the mcpd log');
  await a.close();
  await s.stopAndCheck('auth mcpd');
});

await step('config errors: collisions, unknown operations, missing egress', async () => {
  const bad = (text, re, what) => {
    const f = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(f, text);
    const r = run(bin.mcpd, ['config', 'check', '-c', f]);
    eq(r.code, 1, `${what}: config check fails`);
    match(r.stderr, re, `${what}: message`);
  };
  const src = path.join(examples, 'httpbin');
  bad(`servers:\n  hb: { command: /bin/cat }\nplugins:\n  hb: { source: ${src}, config: { base: "${A}" }, egress: { allowedHosts: [x] } }\n`,
      /a server has that name already/, 'a plugin named like a server');
  bad(`plugins:\n  hb: { source: ${src}, config: { base: "${A}" }, egress: { allowedHosts: [x] }, allowedOperations: { nope: } }\n`,
      /has no operation 'nope'/, 'an unknown operation');
  bad(`plugins:\n  hb: { source: ${src}, config: { base: "${A}" } }\n`, /allowedHosts.*required/, 'no allowedHosts');
  bad(`plugins:\n  hb: { source: ${src}, config: { base: "${A}" }, egress: { allowedHosts: [x], allowPrivateCidrs: ["10.0.0.1/8"] } }\n`,
      /'10\.0\.0\.1\/8' is not an address range/, 'an address range with host bits');
  bad(`plugins:\n  hb: { source: ${src}, config: { base: 3 }, egress: { allowedHosts: [x] } }\n`, /base' must be of type string/, 'a config value of the wrong type');
  bad(`plugins:\n  hb: { source: ${src}, egress: { allowedHosts: [x] } }\n`, /missing required key 'base'/, 'a missing config key');
  const broken = path.join(tmp, 'broken');
  fs.mkdirSync(broken);
  fs.writeFileSync(path.join(broken, 'manifest.yaml'), 'name: broken\nversion: 1\noperations:\n  x:\n    method: GET\n    url: "https://h/{nope}"\n');
  bad(`plugins:\n  b: { source: ${broken}, egress: { allowedHosts: [h] } }\n`, /manifest\.yaml:\d+:\d+: .*'\{nope\}' names no property/, 'a manifest error has file:line:col');
});

await finish();
