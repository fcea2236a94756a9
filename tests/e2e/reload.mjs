// reload.mjs - SIGHUP reads the configuration again: bots, roles and bindings
// are applied to the running daemon (a bot's new tools appear, with
// list_changed; a removed bot's session closes), and nothing is applied when
// the file does not load, when its policy does not build, when bots would
// appear or vanish altogether, or when a section that takes a restart
// changed (servers here).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, startServe, sdk, tmp, run, writeFile, waitFor, settle, post, track, sleep, checkCleanExit } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, types } = await sdk();
const db = path.join(tmp, 'reload.db');
const cfgA = `store: ${db}
servers:
  demo:
    command: ${bin.demo}
bots:
  alice:
    bindings:
      - { resource: demo, tools: [echo] }
  bob:
    bindings:
      - { resource: demo, tools: ["*"] }
`;
const cfgB = cfgA.replace('tools: [echo]', 'tools: [echo, add]').replace(/  bob:\n.*\n.*\n/, '');
const cfgFile = writeFile('reload-srv.yaml', cfgA);
const keys = {};
for (const b of ['alice', 'bob']) keys[b] = run(bin.mcpd, ['bots', 'create', b, '-c', cfgFile]).stdout.trim();

const srv = await startServe(cfgA, { name: 'reload-srv', essential: true });
const reloads = () => (srv.log().match(/reload: /g) ?? []).length;
async function hup(text) {
  const n = reloads();
  writeFile('reload-srv.yaml', text);
  process.kill(srv.pid, 'SIGHUP');
  await waitFor(() => reloads() > n, 5000, 20);
  return srv.log().split('\n').filter((l) => /reload: /.test(l)).at(-1) ?? '';
}
async function client(bot) {
  const c = new Client({ name: `reload-${bot}`, version: '1' }, { capabilities: {} });
  const changed = [];
  c.setNotificationHandler(types.ToolListChangedNotificationSchema, () => changed.push(Date.now()));
  await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${srv.port}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${keys[bot]}` } } }));
  return { c, changed };
}
const names = async (c) => (await c.listTools()).tools.map((t) => t.name).sort();

const alice = await client('alice');
const bob = await client('bob');

await step('bots and bindings change on SIGHUP', async () => {
  eq(await names(alice.c), ['echo'], 'alice sees echo');
  ok((await names(bob.c)).includes('add'), 'bob sees add');
  const line = await hup(cfgB);
  match(line, /reload: applied \(bots\)/, 'the reload is applied', line);
  eq(await names(alice.c), ['add', 'echo'], 'alice now sees add too');
  const r = await alice.c.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  ok(JSON.stringify(r).includes('5'), 'and can call it', JSON.stringify(r));
  await waitFor(() => alice.changed.length > 0, 3000, 20);
  ok(alice.changed.length > 0, 'alice was told: tools/list_changed');
  match(srv.log(), /bot=bob: no longer configured; closing/, 'bob\'s session was closed');
  const b = await settle(() => bob.c.listTools(undefined, { timeout: 5000 }));
  ok(b.error !== undefined, 'bob can no longer use it', b.error?.message);
  const fresh = await post(srv.port, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, { Authorization: `Bearer ${keys.bob}` });
  eq(fresh.status, 401, 'nor open a new session: the key of a bot the configuration lost opens nothing');
});

await step('nothing is applied when the file is broken, or a server changed', async () => {
  let line = await hup(cfgB.replace('bots:', 'bots: [oops'));
  match(line, /reload: .*: the running configuration stays/, 'a file that does not load: the running one stays', line);
  eq(await names(alice.c), ['add', 'echo'], 'alice\'s view is unchanged');
  line = await hup(cfgB.replace('tools: [echo, add]', 'tools: [echo]').replace('servers:', `servers:\n  demo2:\n    command: ${bin.demo}`));
  match(line, /reload: servers changed, which takes a restart: nothing was reloaded/, 'a server added: nothing reloaded, and it says why', line);
  eq(await names(alice.c), ['add', 'echo'], 'not even the binding that came with it');
  line = await hup(cfgB.replace('tools: [echo, add]', 'tools: [echo]').replace('resource: demo,', 'resource: demo, paths: ["["],'));
  match(line, /reload: bots\.alice\.bindings\[0\]\.paths\[0\]: unterminated '\[': nothing was reloaded/, 'a policy that does not build: nothing reloaded', line);
  eq(await names(alice.c), ['add', 'echo'], 'alice\'s view is unchanged');
  line = await hup(cfgB.replace(/bots:[\s\S]*$/, ''));
  match(line, /authentication on or off, which takes a restart/, 'no bots at all: a restart, not a reload', line);
  line = await hup(cfgB);
  match(line, /has not changed/, 'the running file again: no change');
});

await step('stdio: the client\'s bot cannot be reloaded away; its bindings can change', async () => {
  const sfile = writeFile('reload-stdio.yaml', cfgA);
  const child = track(spawn(bin.mcpd, ['stdio', '-c', sfile, '--bot', 'alice'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const msgs = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const send = (m) => child.stdin.write(JSON.stringify(m) + '\n');
  const ask = async (id, method, params = {}) => {
    send({ jsonrpc: '2.0', id, method, params });
    await waitFor(() => msgs().some((m) => m.id === id), 5000, 20);
    return msgs().find((m) => m.id === id);
  };
  await ask(1, 'initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 's', version: '1' } });
  send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  const hupStdio = async (text) => {
    const n = (err.match(/reload: /g) ?? []).length;
    writeFile('reload-stdio.yaml', text);
    child.kill('SIGHUP');
    await waitFor(() => (err.match(/reload: /g) ?? []).length > n, 5000, 20);
    return err.split('\n').filter((l) => /reload: /.test(l)).at(-1) ?? '';
  };
  let line = await hupStdio(cfgA.replace(/  alice:\n.*\n.*\n/, ''));
  match(line, /the stdio client's bot 'alice' would be gone, which takes a restart: nothing was reloaded/, 'removing the stdio client\'s bot: refused', line);
  eq((await ask(2, 'tools/list')).result?.tools?.map((t) => t.name), ['echo'], 'and the client is still served');
  line = await hupStdio(cfgB);
  match(line, /reload: applied/, 'its bindings: applied', line);
  eq((await ask(3, 'tools/list')).result?.tools?.map((t) => t.name).sort(), ['add', 'echo'], 'the stdio client sees add now');
  child.stdin.end();
  const r = await Promise.race([exited, sleep(15000).then(() => ({ code: null, signal: 'timeout' }))]);
  checkCleanExit('mcpd stdio', r.code, r.signal, err);
});

await step('mcpd stops cleanly', async () => {
  await alice.c.close();
  await bob.c.close().catch(() => {});
  await srv.stopAndCheck('mcpd');
});

await finish();
