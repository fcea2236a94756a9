// credentials_oauth.mjs - the credential store and OAuth against a real
// authorization server (oidc-provider, tests/e2e/oidc_server.mjs) and a
// protected remote MCP server (tests/e2e/protected_mcp.mjs, the official SDK,
// checking bearer tokens by introspection), all on 127.0.0.1.
//
//   1. mcpd credentials add (secret on stdin), list, show: no secret shown
//   2. authorize (code + PKCE) completing through mcpd's /oauth/callback;
//      a wrong state and a replayed state refused
//   3. authorize --client-credentials
//   4. authorize --device, the server answering slow_down once (+5 s honoured)
//   5. a tools/call through mcpd to the protected server with the token;
//      refresh by the timer (access tokens live 4 s)
//   6. the server answers 401 once: one refresh, the call retried, success;
//      three concurrent 401s share one refresh
//   7. the refresh tokens revoked: the next refresh fails, the credential is
//      expired, the client gets an error naming it and the fix, audited
//   8. re-authorized from the CLI while mcpd runs: the daemon reloads; refresh, delete
//   9. a static bearer rejected (401) at connect: marked rejected
//   9. no secret in mcpd's logs, the store/audit file, CLI output or `ps`
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  bin, ok, eq, match, step, finish, sdk, texts, sleep, waitFor, settle, freePort, waitPort, track, tmp, writeFile, run, dumpLog,
  loopbackShim, checkCleanExit, sanitizerReport,
} from './lib.mjs';

const { Client, StreamableHTTPClientTransport } = await sdk();

const cache = process.env.MCPD_TEST_CACHE || path.join(process.env.HOME || '/root', '.cache/mcpd-test');
let oidcDir = process.env.OIDC_PROVIDER;
if (!oidcDir) {
  try {
    oidcDir = /OIDC_PROVIDER='([^']+)'/.exec(fs.readFileSync(path.join(cache, 'env.sh'), 'utf8'))?.[1];
  } catch {}
}
if (!oidcDir) oidcDir = path.join(cache, 'oidc-provider-9.13.3/node_modules/oidc-provider');
if (!ok(fs.existsSync(path.join(oidcDir, 'lib/index.js')), `oidc-provider present at ${oidcDir} (scripts/deps.sh)`)) await finish();

const here = path.dirname(new URL(import.meta.url).pathname);
const CLIENT_SECRET = 'cs-7f3a9d2e-very-secret-client-value';
const RS_SECRET = 'rs-secret-for-introspection-only';
const STATIC_BAD = 'static-bearer-not-valid-0123456789';

const oidcPort = await freePort();
const mcpdPort = await freePort();
const rsPort = await freePort();
const oidcUrl = `http://127.0.0.1:${oidcPort}`;
const callback = `http://127.0.0.1:${mcpdPort}/oauth/callback`;

// ---- processes ---------------------------------------------------------------------

const psSnapshots = [];
function psSnapshot(when) {
  const r = run('ps', ['-eo', 'args']);
  psSnapshots.push({ when, text: r.stdout });
}

// Secrets go to the helper servers by environment, not argv: `ps` is checked below.
function startNode(name, args) {
  const env = { ...process.env, NODE_OPTIONS: '', E2E_CLIENT_SECRET: CLIENT_SECRET, E2E_RS_SECRET: RS_SECRET };
  const proc = track(spawn(bin.node, ['--require', loopbackShim(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.mcpdLog = () => out;
  proc.mcpdName = name;
  return proc;
}

const oidc = startNode('oidc', [path.join(here, 'oidc_server.mjs'), path.join(oidcDir, 'lib/index.js'), String(oidcPort), callback, '4']);
const rs = startNode('protected-mcp', [path.join(here, 'protected_mcp.mjs'), String(rsPort), `${oidcUrl}/token/introspection`, 'mcp-rs']);
if (!ok(await waitPort(oidcPort, 20000), `oidc-provider listening on ${oidcPort}`)) {
  dumpLog(oidc);
  await finish();
}
if (!ok(await waitPort(rsPort, 20000), `protected MCP server listening on ${rsPort}`)) {
  dumpLog(rs);
  await finish();
}

const baseConfig = (servers) => `listen: 127.0.0.1:${mcpdPort}
store: creds.db
audit: { enabled: true }
log_level: debug
oauth_providers:
  idp:
    authorize_url: ${oidcUrl}/auth
    token_url: ${oidcUrl}/token
    device_authorization_url: ${oidcUrl}/device/auth
    client_id: mcpd
    scopes: [openid, offline_access, api]
    client_secret_credential: idp-secret
servers:
${servers}`;
const cfg1 = writeFile('creds1.yaml', baseConfig(`  local:
    command: ${bin.fixture}
`));
const cfg2 = writeFile('creds2.yaml', baseConfig(`  prot:
    url: http://127.0.0.1:${rsPort}/mcp
    transport: streamable-http
    credential: code-cred
    timeout: 10s
  bad:
    url: http://127.0.0.1:${rsPort}/mcp
    transport: streamable-http
    credential: static-bad
    timeout: 10s
`));
const dbPath = path.join(tmp, 'creds.db');

const cliOutputs = [];
function cli(args, input) {
  const r = run(bin.mcpd, ['credentials', ...args], { input: input ?? '' });
  cliOutputs.push(`$ mcpd credentials ${args.join(' ')}\n${r.stdout}${r.stderr}`);
  return r;
}

// A CLI command left running (authorize): lines of stdout, exit promise.
function cliAsync(args) {
  const proc = track(spawn(bin.mcpd, ['credentials', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    out: () => out,
    err: () => err,
    exited: exited.then((code) => {
      cliOutputs.push(`$ mcpd credentials ${args.join(' ')}\n${out}${err}`);
      return code;
    }),
  };
}

function startMcpd(name, cfg) {
  const proc = track(spawn(bin.mcpd, ['serve', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.mcpdLog = () => out;
  proc.mcpdName = name;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    log: () => out,
    async stop() {
      try {
        process.kill(proc.pid, 'SIGTERM');
      } catch {}
      const r = await Promise.race([exited, sleep(15000).then(() => null)]);
      if (r === null) {
        process.kill(proc.pid, 'SIGKILL');
        return { killed: true, ...(await exited) };
      }
      return r;
    },
  };
}

// ---- a small browser for oidc-provider's login, consent and device forms --------------

const jar = new Map();
function saveCookies(r) {
  for (const c of r.headers.getSetCookie?.() ?? []) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i).trim(), pair.slice(i + 1));
  }
}
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const unhtml = (s) => s.replace(/&amp;/g, '&').replace(/&#x2F;/g, '/').replace(/&#x3D;/g, '=').replace(/&quot;/g, '"');

// Follows redirects and submits forms (filling login, password, user_code)
// until a redirect to `stopPrefix` (returned) or a page without a form.
async function drive(startUrl, { userCode, stopPrefix } = {}) {
  let req = { url: startUrl, method: 'GET', body: undefined };
  for (let i = 0; i < 25; i++) {
    const headers = { cookie: cookieHeader() };
    if (req.body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const r = await fetch(req.url, { method: req.method, body: req.body, headers, redirect: 'manual' });
    saveCookies(r);
    if (r.status >= 300 && r.status < 400) {
      const loc = new URL(r.headers.get('location'), req.url).toString();
      if (stopPrefix && loc.startsWith(stopPrefix)) return { redirect: loc };
      req = { url: loc, method: 'GET', body: undefined };
      continue;
    }
    const html = await r.text();
    const formTag = /<form[^>]*method="post"[^>]*>/i.exec(html)?.[0];
    const form = formTag && /action="([^"]*)"/.exec(formTag);
    if (!form) return { status: r.status, html };
    const fields = {};
    for (const m of html.matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]+)"/.exec(m[1])?.[1];
      const value = /value="([^"]*)"/.exec(m[1])?.[1];
      if (name && /type="hidden"/.test(m[1])) fields[name] = unhtml(value ?? '');
      if (name === 'login') fields.login = 'alice';
      if (name === 'password') fields.password = 'any';
      if (name === 'user_code' && !/type="hidden"/.test(m[1])) fields.user_code = userCode;
    }
    req = { url: new URL(unhtml(form[1]), req.url).toString(), method: 'POST', body: new URLSearchParams(fields).toString() };
  }
  return { error: 'too many steps' };
}

// fetch with a few retries: undici may reuse a keep-alive socket the server just closed
async function control(url, opts) {
  for (let i = 0; ; i++) {
    try {
      return await fetch(url, opts);
    } catch (e) {
      if (i >= 3) throw e;
      await sleep(200);
    }
  }
}

const httpGet = async (url) => {
  const r = await fetch(url, { redirect: 'manual' });
  return { status: r.status, text: await r.text() };
};

// ---- the test ------------------------------------------------------------------------

await step('credentials add, list, show: secrets from stdin, never shown', async () => {
  let r = cli(['add', 'idp-secret', '--kind', 'api_key', '-c', cfg1], `${CLIENT_SECRET}\n`);
  eq(r.code, 0, `add idp-secret (api_key, from stdin): ${r.stderr.trim()}`);
  const st = fs.statSync(path.join(tmp, 'creds.db.key'));
  eq(st.mode & 0o777, 0o600, 'the master key file was created 0600 beside the store');
  for (const n of ['code-cred', 'cc', 'dev']) {
    r = cli(['add', n, '--kind', 'oauth2', '--provider', 'idp', '-c', cfg1]);
    eq(r.code, 0, `add ${n} (oauth2, provider idp)`);
  }
  r = cli(['add', 'static-bad', '--kind', 'bearer', '-c', cfg1], STATIC_BAD);
  eq(r.code, 0, 'add static-bad (bearer)');
  r = cli(['add', 'cc', '--kind', 'oauth2', '--provider', 'idp', '-c', cfg1]);
  ok(r.code !== 0 && /credential "cc" already exists/.test(r.stderr), `a second add of cc is refused: ${r.stderr.trim()}`);
  r = cli(['add', 'x', '--kind', 'oauth2', '--provider', 'nope', '-c', cfg1]);
  ok(r.code !== 0, 'an unknown provider is refused');
  r = cli(['list', '--json', '-c', cfg1]);
  const list = JSON.parse(r.stdout);
  eq(list.map((c) => `${c.name}:${c.kind}:${c.status}`), ['cc:oauth2:pending', 'code-cred:oauth2:pending', 'dev:oauth2:pending', 'idp-secret:api_key:ok', 'static-bad:bearer:ok'], 'list --json');
  r = cli(['show', 'idp-secret', '-c', cfg1]);
  match(r.stdout, /hint\s+…alue/, 'show gives a hint of the last 4 characters only');
});

let mcpd1;
await step('authorize (code + PKCE) through mcpd /oauth/callback', async () => {
  mcpd1 = startMcpd('mcpd1', cfg1);
  ok(await waitPort(mcpdPort, 15000), `mcpd serve listening on ${mcpdPort}`);
  const a = cliAsync(['authorize', 'code-cred', '-c', cfg1]);
  const url = await waitFor(() => /^(http:\/\/\S+\/auth\?\S+)$/m.exec(a.out())?.[1], 10000);
  ok(!!url, `authorize printed the authorization URL`, a.out() + a.err());
  const u = new URL(url);
  eq(u.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256');
  eq(u.searchParams.get('redirect_uri'), callback, 'redirect_uri is mcpd\'s /oauth/callback');
  const state = u.searchParams.get('state');
  ok(state && state.length >= 43, 'a random state');
  psSnapshot('authorize code');
  const res = await drive(url, { stopPrefix: callback });
  ok(!!res.redirect, 'login and consent done: the server redirects to the callback', JSON.stringify(res).slice(0, 500));
  const cb = new URL(res.redirect);
  eq(cb.searchParams.get('state'), state, 'the callback carries our state');
  // a wrong state first
  const wrong = new URL(res.redirect);
  wrong.searchParams.set('state', 'not-the-state');
  let r = await httpGet(wrong.toString());
  eq(r.status, 400, 'a wrong state is refused (400)');
  match(r.text, /unknown or already used state/, 'and says why');
  r = await httpGet(res.redirect);
  eq(r.status, 200, 'the real callback completes (200)');
  match(r.text, /credential &quot;code-cred&quot; is authorized/, 'the page says so (HTML-escaped)');
  r = await httpGet(res.redirect);
  eq(r.status, 400, 'the same callback replayed is refused (single-use state)');
  const code = await Promise.race([a.exited, sleep(10000).then(() => 'timeout')]);
  eq(code, 0, 'authorize exits 0 once the daemon stored the tokens');
  const show = JSON.parse(cli(['show', 'code-cred', '--json', '-c', cfg1]).stdout);
  eq([show.status, show.refresh_token], ['ok', true], 'code-cred is ok and has a refresh token');
  ok(!!show.expires, `code-cred has an expiry (${show.expires})`);
});

await step('authorize --client-credentials', async () => {
  const r = cli(['authorize', 'cc', '--client-credentials', '-c', cfg1]);
  eq(r.code, 0, `authorize cc --client-credentials: ${r.stderr.trim()}`);
  const show = JSON.parse(cli(['show', 'cc', '--json', '-c', cfg1]).stdout);
  eq(show.status, 'ok', 'cc is ok');
  // no refresh token: the running daemon obtains a new one with the same grant before expiry
  const renewed = await waitFor(() => /credential=cc refreshed/.test(mcpd1.log()), 10000, 200);
  ok(renewed, 'mcpd renewed the client-credentials token before it expired');
  const later = JSON.parse(cli(['show', 'cc', '--json', '-c', cfg1]).stdout);
  eq(later.status, 'ok', 'cc is still ok after its first token expired');
  eq(show.scopes, 'openid offline_access api'.includes(show.scopes) ? show.scopes : '?', `cc scopes recorded (${show.scopes})`);
});

await step('authorize --device, slow_down honoured', async () => {
  await control(`${oidcUrl}/control/slow-down-once`, { method: 'POST' });
  const a = cliAsync(['authorize', 'dev', '--device', '-c', cfg1]);
  const m = await waitFor(() => /open (\S+) and enter the code (\S+)/.exec(a.out()), 10000);
  ok(!!m, 'authorize --device printed the verification URI and user code', a.out() + a.err());
  psSnapshot('authorize device');
  // the first poll (after 5 s) gets slow_down; complete the login meanwhile
  await waitFor(async () => (await (await control(`${oidcUrl}/control/polls`)).json()).length >= 1, 12000, 200);
  const res = await drive(m[1], { userCode: m[2] });
  match(res.html ?? '', /success|Sign-in Success|completed/i, 'the device login and consent completed');
  const code = await Promise.race([a.exited, sleep(25000).then(() => 'timeout')]);
  eq(code, 0, `authorize --device exits 0: ${a.err().trim().split('\n').pop()}`);
  match(a.err(), /slow down: polling every 10 s/, 'the CLI slowed down to 10 s after slow_down');
  const polls = await (await control(`${oidcUrl}/control/polls`)).json();
  const gaps = polls.slice(1).map((t, i) => t - polls[i]);
  ok(polls.length >= 2 && gaps[0] >= 9500, `the poll after slow_down came >= 10 s later (gaps ${gaps.join(', ')} ms)`);
  const show = JSON.parse(cli(['show', 'dev', '--json', '-c', cfg1]).stdout);
  eq(show.status, 'ok', 'dev is ok');
  await sleep(1100);
  const r = cli(['refresh', 'dev', '-c', cfg1]);
  eq(r.code, 0, `refresh dev from the CLI: ${r.stderr.trim()}`);
  const after = JSON.parse(cli(['show', 'dev', '--json', '-c', cfg1]).stdout);
  ok(after.refreshed !== show.refreshed, `dev refreshed at ${after.refreshed} (was ${show.refreshed})`);
});

await step('mcpd 1 stops cleanly', async () => {
  const r = await mcpd1.stop();
  eq(r.code, 0, 'mcpd 1 exit code 0');
  checkCleanExit('mcpd1', r.code, r.signal, mcpd1.log());
});

let mcpd2, client;
const seen = async () => (await control(`http://127.0.0.1:${rsPort}/control/seen`)).json();
const call = () => settle(() => client.callTool({ name: 'prot__whoami', arguments: {} }, undefined, { timeout: 15000 }));

await step('tools/call through mcpd with the OAuth token; the timer refreshes it', async () => {
  mcpd2 = startMcpd('mcpd2', cfg2);
  ok(await waitPort(mcpdPort, 15000), 'mcpd 2 listening');
  client = new Client({ name: 'creds-e2e', version: '1.0.0' }, { capabilities: {} });
  const tools = await waitFor(async () => {
    if (!client.transport) await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${mcpdPort}/mcp`)));
    const names = (await client.listTools()).tools.map((t) => t.name);
    return names.includes('prot__whoami') ? names : undefined;
  }, 15000, 300);
  ok(!!tools, `prot__whoami in the catalog (${tools})`);
  let r = await call();
  eq(texts(r.result), ['sub=alice client=mcpd'], 'prot__whoami answers with the token of alice');
  const before = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  await sleep(7000);
  const after = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  ok(after - before >= 1, `the refresh timer ran within 7 s of a 4 s token (${after - before} refreshes)`);
  r = await call();
  eq(texts(r.result), ['sub=alice client=mcpd'], 'the call still works with the refreshed token');
  psSnapshot('serve');
});

await step('a 401 from the upstream: one refresh, the call retried', async () => {
  const n0 = (await seen()).length;
  const refreshes0 = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  await control(`http://127.0.0.1:${rsPort}/control/fail-next`, { method: 'POST' });
  const r = await call();
  eq(texts(r.result), ['sub=alice client=mcpd'], 'the call succeeds after the retry');
  const s = (await seen()).slice(n0);
  const forced = s.findIndex((x) => x.forced);
  ok(forced >= 0 && s[forced + 1]?.status === 200, 'the upstream saw a 401 then a 200', JSON.stringify(s.map((x) => x.status)));
  ok(forced >= 0 && s[forced + 1] && s[forced].token !== s[forced + 1].token, 'the retry carried a new token');
  const refreshes1 = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  ok(refreshes1 > refreshes0, 'mcpd refreshed on the 401');
});

await step('a 401 on the GET stream: one refresh, the stream reopened with the new token', async () => {
  const gets = async () => (await seen()).filter((x) => x.method === 'GET');
  ok(await waitFor(async () => (await gets()).some((x) => x.status === 200), 10000, 200), 'mcpd keeps a GET stream open');
  const n0 = (await gets()).length;
  const refreshes0 = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  await control(`http://127.0.0.1:${rsPort}/control/fail-get`, { method: 'POST' });
  const reopened = await waitFor(async () => {
    const g = (await gets()).slice(n0);
    const f = g.findIndex((x) => x.forced);
    return f >= 0 && g[f + 1]?.status === 200 ? g : undefined;
  }, 10000, 200);
  ok(!!reopened, 'the GET stream was refused once (401), then reopened (200)', JSON.stringify(((await gets()).slice(n0)).map((x) => x.status)));
  if (reopened) {
    const f = reopened.findIndex((x) => x.forced);
    ok(reopened[f].token !== reopened[f + 1].token, 'with a new token');
  }
  const refreshes1 = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  ok(refreshes1 > refreshes0, 'mcpd refreshed on the 401');
  const r = await call();
  eq(texts(r.result), ['sub=alice client=mcpd'], 'calls still work');
});

await step('concurrent 401s share one refresh', async () => {
  const n0 = (await seen()).length;
  const refreshes0 = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length;
  // the three 401s are held until all three requests arrived: none returns before all were sent
  await control(`http://127.0.0.1:${rsPort}/control/fail-next?n=3&together=1`, { method: 'POST' });
  const rs3 = await Promise.all([call(), call(), call()]);
  eq(rs3.map((r) => texts(r.result)[0] ?? r.error?.message), Array(3).fill('sub=alice client=mcpd'), 'three concurrent calls all succeed');
  const s = (await seen()).slice(n0);
  eq(s.filter((x) => x.forced).length, 3, 'the upstream answered 401 three times');
  const delta = (mcpd2.log().match(/credential=code-cred refreshed/g) ?? []).length - refreshes0;
  // one shared refresh for the three 401s (the 4 s timer may add one of its own meanwhile)
  ok(delta >= 1 && delta <= 2, `three 401s caused ${delta} refresh(es), not three`);
});

await step('revoked refresh token: expired, clear error, audited', async () => {
  const rv = await (await control(`${oidcUrl}/control/revoke-refresh`, { method: 'POST' })).json();
  ok(rv.revoked >= 1, `refresh tokens revoked at the server (${rv.revoked})`);
  const logged = await waitFor(() => /credential=code-cred refresh refused \(invalid_grant/.test(mcpd2.log()), 10000, 200);
  ok(logged, 'WARN: the refresh was refused with invalid_grant');
  const r = await call();
  const msg = r.error?.message ?? JSON.stringify(r.result);
  match(msg, /credential "code-cred" is expired/, 'the client gets an error naming the credential');
  match(msg, /mcpd credentials authorize code-cred/, 'and how to fix it');
  const show = JSON.parse(cli(['show', 'code-cred', '--json', '-c', cfg2]).stdout);
  eq(show.status, 'expired', 'the store says expired');
  match(show.last_error ?? '', /invalid_grant/, 'last_error says invalid_grant');
  const audit = run(bin.mcpd, ['audit', '--json', '-c', cfg2]);
  match(audit.stdout, /"kind":\s*"credential"[^}]*"status":\s*"expired"|"status":\s*"expired"[^}]*"kind":\s*"credential"/, 'an audit record of kind credential, status expired');
  const calls = audit.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.kind === 'call' && x.tool === 'whoami');
  ok(calls.length >= 5 && calls.every((x) => x.location === 'remote:prot'), `the remote upstream's calls are audited at location remote:prot (${calls.length})`, JSON.stringify(calls.map((x) => x.location)));
  cliOutputs.push(audit.stdout);
});

await step('the CLI re-authorizes: the running daemon reloads the store', async () => {
  const r = cli(['authorize', 'code-cred', '--client-credentials', '-c', cfg2]);
  eq(r.code, 0, `authorize code-cred --client-credentials while mcpd runs: ${r.stderr.trim()}`);
  const reloaded = await waitFor(async () => {
    const c = await call();
    return texts(c.result)[0] === 'sub=- client=mcpd' ? c : undefined;
  }, 8000, 500);
  ok(!!reloaded, 'within seconds the daemon uses the new token (a client-credentials token: no subject)');
  const show = JSON.parse(cli(['show', 'code-cred', '--json', '-c', cfg2]).stdout);
  eq(show.status, 'ok', 'code-cred is ok again');
});

await step('credentials refresh and delete from the CLI', async () => {
  // dev's refresh token was revoked with the others above
  let r = cli(['refresh', 'dev', '-c', cfg2]);
  ok(r.code !== 0 && /invalid_grant/.test(r.stderr), `refresh dev with a revoked refresh token fails: ${r.stderr.trim()}`);
  const dev = JSON.parse(cli(['show', 'dev', '--json', '-c', cfg2]).stdout);
  eq(dev.status, 'expired', 'and marks dev expired');
  r = cli(['refresh', 'cc', '-c', cfg2]);
  ok(r.code === 0 && /authorized \(client credentials\)/.test(r.stderr), `refresh of a client-credentials token (no refresh token) gets a new one: ${r.stderr.trim()}`);
  r = cli(['delete', 'cc', '-c', cfg2]);
  eq(r.code, 0, 'delete cc');
  const names = JSON.parse(cli(['list', '--json', '-c', cfg2]).stdout).map((c) => c.name);
  ok(!names.includes('cc'), `cc is gone from the list (${names.join(', ')})`);
});

await step('a static bearer refused with 401 is marked rejected', async () => {
  const logged = await waitFor(() => /credential=static-bad rejected by an upstream/.test(mcpd2.log()), 10000, 200);
  ok(logged, 'WARN: static-bad rejected by an upstream (HTTP 401)');
  const show = JSON.parse(cli(['show', 'static-bad', '--json', '-c', cfg2]).stdout);
  await waitFor(async () => JSON.parse(cli(['show', 'static-bad', '--json', '-c', cfg2]).stdout).status === 'rejected', 5000, 300);
  const again = JSON.parse(cli(['show', 'static-bad', '--json', '-c', cfg2]).stdout);
  eq(again.status, 'rejected', `static-bad is rejected in the store (was ${show.status})`);
});

await step('mcpd 2 stops cleanly', async () => {
  await client?.close().catch(() => {});
  const r = await mcpd2.stop();
  eq(r.code, 0, 'mcpd 2 exit code 0');
  checkCleanExit('mcpd2', r.code, r.signal, mcpd2.log());
  if (r.code !== 0 || sanitizerReport(mcpd2.log())) dumpLog(mcpd2.proc, 80);
});

await step('no secret anywhere: logs, store and audit file, CLI output, ps', async () => {
  const tokens = [...new Set((await seen()).map((x) => x.token).filter((t) => t && t.length > 20))];
  ok(tokens.length >= 3, `${tokens.length} access tokens seen by the upstream to look for`);
  const secrets = [CLIENT_SECRET, STATIC_BAD, ...tokens];
  const places = [
    ['mcpd 1 log', mcpd1.log()],
    ['mcpd 2 log', mcpd2.log()],
    ['CLI output', cliOutputs.join('\n')],
    ...psSnapshots.map((p) => [`ps during ${p.when}`, p.text]),
  ];
  for (const f of fs.readdirSync(tmp).filter((f) => f.startsWith('creds.db'))) places.push([f, fs.readFileSync(path.join(tmp, f)).toString('latin1')]);
  ok(psSnapshots.length >= 3, `${psSnapshots.length} ps snapshots taken`);
  ok(psSnapshots.every((p) => /mcpd/.test(p.text)), 'every ps snapshot lists the running mcpd (ps works)');
  for (const [where, text] of places) {
    const found = secrets.filter((s) => text.includes(s));
    ok(found.length === 0, `no secret in ${where}`, found.map((s) => `${s.slice(0, 4)}...`).join(', '));
  }
});

try {
  process.kill(oidc.pid, 'SIGTERM');
  process.kill(rs.pid, 'SIGTERM');
} catch {}
await finish();
