// agent_program.mjs - the `mcpd agent` program end to end: mcpd serve with TLS
// on 127.0.0.1 (a self-signed certificate made here with the openssl CLI), a
// real `mcpd agent` dialing it over wss:// with its builtins and the official
// @modelcontextprotocol/server-filesystem bridged as a second tool group, and
// clients over streamable HTTP and over stdio (official SDK) that see the
// agent's bound tools only and call them. mcpd denies a shell_exec of
// "ls; rm -rf /" (the agent never hears of it); kill -9 of the agent makes its
// tools leave the catalog with list_changed within the heartbeat timeout, and
// a restart brings them back; a world-readable agent.yaml is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { bin, ok, eq, match, step, finish, startServe, sdk, texts, tmp, run, waitFor, sleep, track, pidAlive, sanitizerReport } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport, types } = await sdk();

// The bridged filesystem server, from the test cache (scripts/deps.sh).
function fsServer() {
  if (process.env.FS_SERVER) return process.env.FS_SERVER;
  const cache = process.env.MCPD_TEST_CACHE || path.join(os.homedir(), '.cache', 'mcpd-test');
  try {
    const m = /^FS_SERVER='([^']+)'/m.exec(fs.readFileSync(path.join(cache, 'env.sh'), 'utf8'));
    if (m) return m[1];
  } catch {}
  return path.join(cache, 'server-filesystem-2026.8.31/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
}
const FS = fsServer();
const node = process.env.MCPD_E2E_NODE || process.execPath;

const db = path.join(tmp, 'mcpd.db');
const files = path.join(tmp, 'files');
const shared = path.join(tmp, 'shared');
fs.mkdirSync(files);
fs.mkdirSync(shared);
fs.writeFileSync(path.join(files, 'hello.txt'), 'hello from the agent\n');
fs.writeFileSync(path.join(shared, 'a.txt'), 'a');
fs.mkdirSync(path.join(shared, 'sub'));

// A self-signed certificate for 127.0.0.1.
const cert = path.join(tmp, 'cert.pem');
const keyf = path.join(tmp, 'key.pem');
const ssl = run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
  '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyf, '-out', cert]);

const base = `store: ${db}
agents: { ping_interval: 1s, ping_timeout: 2s, call_timeout: 10s }
bots:
  alice:
    bindings:
      - resource: laptop-builtin
        tools: [system_info, read_file, shell_exec]
        commands: ["ls *"]
      - resource: laptop-fs
        tools: [list_directory]
        paths: ["${shared}/**"]
  bob:
    bindings:
      - { resource: nothing, tools: ["*"] }
auth: { default_bot: bob }
`;
let tlsOn = false;
const tlsCfg = `listen: { address: 127.0.0.1:0, tls: { cert: ${cert}, key: ${keyf} } }\n`;
const cfgPath = path.join(tmp, 'mcpd.yaml');
const mcpd = (...args) => run(bin.mcpd, [...args, '-c', cfgPath]);
let cfgText = base;
const key = {};
let srv = null;

await step('setup: certificate, TLS listener, agent and bot keys', async () => {
  eq(ssl.code, 0, 'openssl made a self-signed certificate for 127.0.0.1');
  fs.chmodSync(keyf, 0o600);
  ok(fs.existsSync(FS), `the filesystem server is in the test cache (${FS})`);
  fs.writeFileSync(cfgPath, tlsCfg + base);
  const chk = run(bin.mcpd, ['config', 'check', '-c', cfgPath]);
  tlsOn = ok(chk.code === 0, 'mcpd accepts listen.tls (https and wss on the listener)', chk.stderr);
  cfgText = tlsOn ? tlsCfg + base : base;
  // The SDK's fetch must accept the self-signed certificate of this test.
  if (tlsOn) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  fs.writeFileSync(cfgPath, cfgText);
  const a = mcpd('agents', 'create', 'laptop');
  eq(a.code, 0, 'mcpd agents create laptop exits 0');
  key.agent = a.stdout.trim().split('\n').pop().trim();
  match(key.agent, /^ak_[0-9a-f]{48}$/, 'the agent key is ak_ + 48 hex');
  const b = mcpd('bots', 'create', 'alice');
  eq(b.code, 0, 'mcpd bots create alice exits 0');
  key.alice = b.stdout.trim();
  srv = await startServe(cfgText, { name: 'agent-mcpd', essential: true });
});

// ---- the agent program ---------------------------------------------------------------

function agentYaml(port, scheme) {
  return `server_url: ${scheme}://127.0.0.1:${port}/agent
agent_key: \${TEST_AGENT_KEY}
name: laptop
tls: { ca_file: ${cert}, verify: true }
reconnect: { min: 200ms, max: 1s }
heartbeat: { interval: 500ms, timeout: 1500ms }
builtins:
  system_info: { enabled: true }
  file_ops: { enabled: true, roots: [${files}], max_bytes: 64KiB }
  shell_exec: { enabled: true, commands: ["ls *", "ls"], timeout: 5s, max_output: 16KiB }
servers:
  fs: { command: ${node}, args: [${FS}, ${shared}], dimensions: { paths: [path] } }
`;
}

function startAgent(name, port, scheme) {
  return startAgentWithKey(name, port, scheme, key.agent);
}

function startAgentWithKey(name, port, scheme, agentKey) {
  const p = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(p, agentYaml(port, scheme), { mode: 0o600 });
  fs.chmodSync(p, 0o600);
  const proc = track(spawn(bin.mcpd, ['agent', '-c', p, '--log-level', 'debug'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TEST_AGENT_KEY: agentKey },
  }));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.mcpdLog = () => out;
  proc.mcpdName = name;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, log: () => out, exited, config: p };
}

async function httpClient(url, k) {
  const c = new Client({ name: 'agent-e2e', version: '1' }, { capabilities: {} });
  const changes = [];
  c.setNotificationHandler(types.ToolListChangedNotificationSchema, () => changes.push(Date.now()));
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${k}` } } }));
  c.changes = changes;
  return c;
}
const names = async (c) => (await c.listTools()).tools.map((t) => t.name).sort();
const bound = ['laptop-builtin__read_file', 'laptop-builtin__shell_exec', 'laptop-builtin__system_info', 'laptop-fs__list_directory'];
async function callErr(c, name, args) {
  try {
    await c.callTool({ name, arguments: args });
    return null;
  } catch (e) {
    return e;
  }
}

let agent = null;
let alice = null;
const scheme = () => (tlsOn ? 'wss' : 'ws');

await step('the agent connects and registers its two groups', async () => {
  agent = startAgent('agent', srv.port, scheme());
  alice = await httpClient(srv.url.replace('http://', tlsOn ? 'https://' : 'http://'), key.alice);
  const seen = await waitFor(async () => (await names(alice)).length === bound.length, 20000, 200);
  ok(seen, 'the HTTP client sees the agent tools within 20 s', agent.log().slice(-3000));
  eq(await names(alice), bound, 'alice sees exactly her bound agent tools (not write_file, not the other fs tools)');
  match(agent.log(), /mcpd listed \d+ tools: .*builtin\.system_info/, "the agent prints the tools mcpd listed (stderr)");
  match(agent.log(), /connected to wss?:\/\/127\.0\.0\.1/, 'the agent logs its connection');
  ok(!agent.log().includes(key.agent), 'the agent never logs its key');
  ok(!srv.log().includes(key.agent), 'mcpd never logs the agent key');
});

await step('HTTP client: calls through the agent', async () => {
  const r1 = await alice.callTool({ name: 'laptop-builtin__read_file', arguments: { path: path.join(files, 'hello.txt') } });
  eq(texts(r1), ['hello from the agent\n'], 'builtin read_file returns the file');
  const r2 = await alice.callTool({ name: 'laptop-fs__list_directory', arguments: { path: shared } });
  const listing = texts(r2).join('\n');
  ok(/\[FILE\] a\.txt/.test(listing) && /\[DIR\] sub/.test(listing), 'the bridged filesystem server lists the directory', listing);
  const denied = await callErr(alice, 'laptop-fs__list_directory', { path: '/etc' });
  eq(denied?.code, -32003, 'the bridged server\'s declared paths dimension lets mcpd deny /etc');
  const r3 = await alice.callTool({ name: 'laptop-builtin__system_info', arguments: {} });
  eq(r3.structuredContent?.hostname, os.hostname(), 'system_info reports this host name');
  ok(r3.structuredContent?.cpus >= 1 && r3.structuredContent?.memory?.total_bytes > 0, 'system_info reports CPUs and memory');
  const r4 = await alice.callTool({ name: 'laptop-builtin__read_file', arguments: { path: '/etc/passwd' } });
  ok(r4.isError === true && /outside the allowed roots/.test(texts(r4).join('')), 'read_file outside the roots is refused by the agent', texts(r4));
  const r5 = await alice.callTool({ name: 'laptop-builtin__shell_exec', arguments: { command: `ls ${files}` } });
  ok(texts(r5).join('').includes('hello.txt') && !r5.isError, 'an allowed shell_exec runs', texts(r5));
});

await step('a crashed bridged server is restarted; mcpd hears list_changed both ways', async () => {
  const pid = Number(([...agent.log().matchAll(/server fs: started \(pid (\d+)\)/g)].pop() || [])[1] || 0);
  ok(pid > 0 && pidAlive(pid), 'the agent logged the bridged server\'s pid');
  const n = alice.changes.length;
  process.kill(pid, 'SIGKILL');
  ok(await waitFor(() => alice.changes.length > n, 5000, 25), 'list_changed when the bridged server dies');
  eq((await names(alice)).filter((x) => x.startsWith('laptop-fs')), [], 'its tools left the catalog');
  const back = await waitFor(async () => (await names(alice)).includes('laptop-fs__list_directory'), 15000, 200);
  ok(back, 'the agent restarted it (backoff) and its tools are back', agent.log().slice(-1500));
  match(agent.log(), /server fs: exited; restarting in \d+ ms/, 'the agent logs the restart');
  const r = await alice.callTool({ name: 'laptop-fs__list_directory', arguments: { path: shared } });
  ok(/\[FILE\] a\.txt/.test(texts(r).join('\n')), 'calls reach the new process');
});

await step('shell_exec "ls; rm -rf /" is denied by mcpd and never reaches the agent', async () => {
  const before = agent.log().length;
  const e = await callErr(alice, 'laptop-builtin__shell_exec', { command: 'ls; rm -rf /' });
  eq(e?.code, -32003, 'mcpd denies it with -32003');
  match(e?.message ?? '', /commands/, 'the denial names the commands dimension');
  await sleep(300);
  const after = agent.log().slice(before);
  ok(!/shell_exec|rm -rf/.test(after), 'the agent log shows no such call', after);
  ok(!agent.log().includes('rm -rf'), 'the agent never ran or saw "rm -rf"');
});

await step('stdio client: sees and calls the agent tools', async () => {
  const portFile = path.join(tmp, 'stdio.port');
  const c = new Client({ name: 'agent-e2e-stdio', version: '1' }, { capabilities: {} });
  const tr = new StdioClientTransport({
    command: bin.mcpd,
    args: ['stdio', '-c', cfgPath, '--bot', 'alice', '--listen', '127.0.0.1:0', '--port-file', portFile],
    stderr: 'pipe',
    env: { ...process.env },
  });
  let err = '';
  tr.stderr?.on('data', (d) => (err += d));
  await c.connect(tr);
  const port = await waitFor(() => {
    try {
      return Number(fs.readFileSync(portFile, 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  }, 10000, 50);
  ok(port > 0, 'mcpd stdio listens for agents (port file written)', err.slice(-2000));
  const second = startAgent('agent-stdio', port, scheme());
  const seen = await waitFor(async () => (await names(c)).length === bound.length, 20000, 200);
  ok(seen, 'the stdio client sees the agent tools within 20 s', second.log().slice(-2000) + err.slice(-2000));
  eq(await names(c), bound, 'the stdio client (--bot alice) sees exactly the bound tools');
  const r = await c.callTool({ name: 'laptop-builtin__system_info', arguments: {} });
  eq(r.structuredContent?.hostname, os.hostname(), 'system_info over stdio');
  const r2 = await c.callTool({ name: 'laptop-fs__list_directory', arguments: { path: shared } });
  ok(/\[FILE\] a\.txt/.test(texts(r2).join('\n')), 'the bridged list_directory over stdio');
  second.proc.kill('SIGTERM');
  const st = await Promise.race([second.exited, sleep(10000).then(() => null)]);
  ok(st && st.code === 0, 'the second agent stops cleanly on SIGTERM (exit 0)', JSON.stringify(st));
  await c.close();
});

await step('a silent agent (SIGSTOP) is dropped by the heartbeat and comes back on SIGCONT', async () => {
  const n = alice.changes.length;
  const t0 = Date.now();
  agent.proc.kill('SIGSTOP');
  const got = await waitFor(() => alice.changes.length > n, 6000, 25);
  const ms = Date.now() - t0;
  ok(got, 'list_changed within ping_interval + ping_timeout (1 s + 2 s, 6 s allowed)', `after ${ms} ms`);
  ok(ms >= 1500, 'and not before the pong deadline could pass', `${ms} ms`);
  eq(await names(alice), [], 'the silent agent\'s tools are gone');
  const m = alice.changes.length;
  agent.proc.kill('SIGCONT');
  const back = await waitFor(async () => (await names(alice)).length === bound.length, 15000, 200);
  ok(back, 'after SIGCONT the agent reconnects and its tools are back', agent.log().slice(-1500));
  ok(alice.changes.length > m, 'with list_changed');
});

await step('a silent mcpd (SIGSTOP) is noticed by the agent\'s own heartbeat', async () => {
  const before = agent.log().length;
  process.kill(srv.pid, 'SIGSTOP');
  const seen = await waitFor(() => /no pong from mcpd within 1500 ms; reconnecting/.test(agent.log().slice(before)), 6000, 50);
  process.kill(srv.pid, 'SIGCONT');
  ok(seen, 'the agent drops the connection when mcpd stops answering pings', agent.log().slice(before).slice(-1500));
  const back = await waitFor(async () => (await names(alice)).length === bound.length, 15000, 200);
  ok(back, 'after SIGCONT the agent is connected again and its tools are back', agent.log().slice(-1500));
});

await step('kill -9 of the agent: tools leave with list_changed; a restart brings them back', async () => {
  const fsPid = Number((/server fs: started \(pid (\d+)\)/.exec(agent.log()) || [])[1] || 0);
  const n = alice.changes.length;
  const t0 = Date.now();
  agent.proc.kill('SIGKILL');
  await agent.exited;
  const got = await waitFor(() => alice.changes.length > n, 4000, 25);
  ok(got, 'the HTTP client gets list_changed within the heartbeat timeout (ping 1s + 2s)', `after ${Date.now() - t0} ms`);
  eq(await names(alice), [], 'the agent tools are gone from the catalog');
  const e = await callErr(alice, 'laptop-builtin__system_info', {});
  ok(e !== null, 'a call to a tool of the disconnected agent fails', e?.message);
  if (fsPid) {
    // The orphaned bridged child sees EOF on stdin and exits on its own.
    await waitFor(() => !pidAlive(fsPid), 5000, 100);
    if (pidAlive(fsPid)) process.kill(fsPid, 'SIGKILL');
  }
  const m = alice.changes.length;
  agent = startAgent('agent-restarted', srv.port, scheme());
  const back = await waitFor(async () => (await names(alice)).length === bound.length, 20000, 200);
  ok(back, 'after a restart the tools are back within 20 s', agent.log().slice(-2000));
  ok(alice.changes.length > m, 'and the client got list_changed for it');
  eq(texts(await alice.callTool({ name: 'laptop-builtin__read_file', arguments: { path: path.join(files, 'hello.txt') } })),
    ['hello from the agent\n'], 'calls work again');
});

await step('refusals are logged plainly: unknown key (401), disabled agent (4003, then 403)', async () => {
  const bad = startAgentWithKey('agent-badkey', srv.port, scheme(), 'ak_' + '0'.repeat(48));
  const seen401 = await waitFor(() => /refused the agent key \(401\)/.test(bad.log()), 10000, 100);
  ok(seen401, 'an unknown key: the agent logs the 401 refusal', bad.log().slice(-1500));
  ok(await waitFor(() => /reconnecting in 1000 ms/.test(bad.log()), 5000, 100), 'and retries at reconnect.max');
  ok(!bad.log().includes('ak_' + '0'.repeat(48)), 'the key is not logged');
  bad.proc.kill('SIGTERM');
  await bad.exited;

  const n = alice.changes.length;
  eq(mcpd('agents', 'disable', 'laptop').code, 0, 'mcpd agents disable laptop');
  ok(await waitFor(() => /the agent was disabled on mcpd/.test(agent.log()), 10000, 100), 'the connected agent logs the 4003 close', agent.log().slice(-1500));
  ok(await waitFor(() => /disabled \(mcpd agents enable NAME\)/.test(agent.log()), 10000, 100), 'its next dial is refused with 403, logged plainly');
  ok(await waitFor(() => alice.changes.length > n, 5000, 25), 'the client got list_changed');
  eq(await names(alice), [], 'the disabled agent\'s tools are gone');
  eq(mcpd('agents', 'enable', 'laptop').code, 0, 'mcpd agents enable laptop');
  const back = await waitFor(async () => (await names(alice)).length === bound.length, 15000, 200);
  ok(back, 'once enabled, the agent (retrying at max) is back', agent.log().slice(-1500));
});

await step('the agent refuses a config others can read; stops cleanly on SIGTERM', async () => {
  const p = path.join(tmp, 'open.yaml');
  fs.writeFileSync(p, agentYaml(srv.port, scheme()));
  fs.chmodSync(p, 0o644);
  const r = run(bin.mcpd, ['agent', '-c', p], { env: { ...process.env, TEST_AGENT_KEY: key.agent } });
  eq(r.code, 1, 'mcpd agent exits 1 on a world-readable config');
  match(r.stderr, /chmod 600/, 'and says to chmod 600 it');
  fs.chmodSync(p, 0o600);
  fs.appendFileSync(p, 'bogus: 1\n');
  const u = run(bin.mcpd, ['agent', '-c', p], { env: { ...process.env, TEST_AGENT_KEY: key.agent } });
  eq(u.code, 1, 'an unknown key is an error');
  match(u.stderr, /open\.yaml:\d+:\d+: unknown key 'bogus'/, 'reported with file:line:col');

  const fsPid = Number(([...agent.log().matchAll(/server fs: started \(pid (\d+)\)/g)].pop() || [])[1] || 0);
  const n = alice.changes.length;
  agent.proc.kill('SIGTERM');
  const st = await Promise.race([agent.exited, sleep(10000).then(() => null)]);
  ok(st && st.code === 0 && st.signal === null, 'the agent exits 0 within 10 s of SIGTERM', JSON.stringify(st));
  ok(sanitizerReport(agent.log()) === null, 'no sanitizer report from the agent', sanitizerReport(agent.log()));
  ok(fsPid && !pidAlive(fsPid), 'the bridged server was stopped with it');
  ok(await waitFor(() => alice.changes.length > n, 4000, 25), 'mcpd saw the close at once (list_changed)');
  await alice.close();
  await srv.stopAndCheck();
});

await finish();
