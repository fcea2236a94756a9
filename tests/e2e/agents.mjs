// agents.mjs - connected agents end to end (issue 5, server side): a scripted
// agent written here (a raw WebSocket client on a TCP socket, so the test
// controls pings, frames and closes) dials GET /agent with its ak_ key and
// serves MCP tools in groups; clients over streamable HTTP and over stdio see
// and call exactly the agent tools their bot is bound to. Also: 401/403/426,
// the heartbeat, replacement (4000), rotate (4001), disable (4003), delete
// (4004), 1009 for an oversized message, a call timeout that cancels on the
// agent, and a policy denial (`ls; rm -rf /`) that never reaches the agent.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, startServe, sdk, texts, tmp, run, rawHttp, waitFor, sleep } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport, types } = await sdk();
const db = path.join(tmp, 'mcpd.db');
const cfgText = `store: ${db}
servers:
  laptop-demo:
    command: ${bin.demo}
agents: { ping_interval: 300ms, ping_timeout: 700ms, call_timeout: 20s, call_timeouts: { laptop-builtin: 1500ms }, max_message: 64KiB }
bots:
  alice:
    bindings:
      - { resource: laptop-builtin, tools: ["*"] }
      - { resource: laptop-fs, tools: [read], paths: ["/tmp/**"] }
      - { resource: laptop-shell, tools: [shell_exec], commands: ["ls", "ls *", "ls -l *"] }
  bob:
    bindings:
      - { resource: "laptop-demo", tools: ["*"] }
auth: { default_bot: alice }
`;
const cfg = path.join(tmp, 'agents.yaml');
fs.writeFileSync(cfg, cfgText);
const mcpd = (...args) => run(bin.mcpd, [...args, '-c', cfg]);
const sql = (q) => run('sqlite3', [db, q]).stdout.trim();

// The agent's tools: wire names <group>.<tool>, groups and dimensions in _meta.
const schema = { type: 'object', properties: {} };
const agentTools = [
  { name: 'builtin.echo', description: 'echo', inputSchema: schema, _meta: { 'io.mcpd/group': 'builtin', 'io.mcpd/tool': 'echo' } },
  { name: 'builtin.sleep', description: 'never answers', inputSchema: schema, _meta: { 'io.mcpd/group': 'builtin', 'io.mcpd/tool': 'sleep' } },
  { name: 'fs.read', description: 'read', inputSchema: schema, _meta: { 'io.mcpd/group': 'fs', 'io.mcpd/tool': 'read', 'io.mcpd/dimensions': { paths: ['path'] } } },
  { name: 'shell.shell_exec', description: 'run', inputSchema: schema, _meta: { 'io.mcpd/group': 'shell', 'io.mcpd/tool': 'shell_exec', 'io.mcpd/dimensions': { commands: ['command'] } } },
  // refused: no group; a group that would shadow the configured server laptop-demo; too long
  { name: 'nogroup', inputSchema: schema },
  { name: 'demo.add', inputSchema: schema, _meta: { 'io.mcpd/group': 'demo', 'io.mcpd/tool': 'add' } },
  { name: 'long.x', inputSchema: schema, _meta: { 'io.mcpd/group': 'g'.repeat(30), 'io.mcpd/tool': 'x' } },
  // refused: laptop-x-y lies in the namespace of the agent laptop-x
  { name: 'ns.t', inputSchema: schema, _meta: { 'io.mcpd/group': 'x-y', 'io.mcpd/tool': 't' } },
];

// ---- a scripted agent: a raw WebSocket client (RFC 6455, client frames masked) ----
class Agent {
  constructor(port, key, name = 'agent') {
    Object.assign(this, { port, key, name });
    this.received = []; // every JSON-RPC message received
    this.closeCode = null; // the close code mcpd sent, if any
    this.closed = false;
    this.deaf = false; // stop answering pings (and everything else)
    this.hang = new Set(['builtin.sleep']);
    this.extra = []; // tools added later (list_changed)
    this.buf = Buffer.alloc(0);
    this.status = 0;
  }
  // Resolves with the HTTP status of the upgrade (101 on success).
  // ca: dial wss (TLS, trusting that certificate) instead of ws.
  connect({ extraHead = [], ca = null } = {}) {
    return new Promise((resolve) => {
      const sock = (this.sock = ca ? tls.connect({ host: '127.0.0.1', port: this.port, ca }) : net.connect({ host: '127.0.0.1', port: this.port }));
      const wsKey = crypto.randomBytes(16).toString('base64');
      let head = Buffer.alloc(0);
      let upgraded = false;
      sock.on(ca ? 'secureConnect' : 'connect', () => {
        const lines = [`GET /agent HTTP/1.1`, `Host: 127.0.0.1:${this.port}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${wsKey}`, 'Sec-WebSocket-Version: 13'];
        if (this.key) lines.push(`Authorization: Bearer ${this.key}`);
        sock.write([...lines, ...extraHead].join('\r\n') + '\r\n\r\n');
      });
      sock.on('data', (d) => {
        if (upgraded) return this.onData(d);
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        this.status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] || 0);
        this.headers = text;
        if (this.status !== 101) {
          sock.destroy();
          return resolve(this.status);
        }
        upgraded = true;
        resolve(101);
        if (head.length > end + 4) this.onData(head.subarray(end + 4));
      });
      sock.on('close', () => {
        this.closed = true;
        if (!upgraded) resolve(this.status);
      });
      sock.on('error', () => {});
    });
  }
  frame(opcode, payload) {
    const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const mask = crypto.randomBytes(4);
    let hdr;
    if (p.length < 126) hdr = Buffer.from([0x80 | opcode, 0x80 | p.length]);
    else if (p.length < 65536) {
      hdr = Buffer.alloc(4);
      hdr[0] = 0x80 | opcode;
      hdr[1] = 0x80 | 126;
      hdr.writeUInt16BE(p.length, 2);
    } else {
      hdr = Buffer.alloc(10);
      hdr[0] = 0x80 | opcode;
      hdr[1] = 0x80 | 127;
      hdr.writeBigUInt64BE(BigInt(p.length), 2);
    }
    const masked = Buffer.alloc(p.length);
    for (let i = 0; i < p.length; i++) masked[i] = p[i] ^ mask[i & 3];
    if (!this.sock.destroyed) this.sock.write(Buffer.concat([hdr, mask, masked]));
  }
  send(msg) {
    this.frame(1, JSON.stringify(msg));
  }
  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = payload.subarray(2).toString();
        this.frame(8, payload.subarray(0, 2));
        this.sock.end();
      } else if (op === 9) {
        if (!this.deaf) this.frame(10, payload);
      } else if (op === 1) {
        if (!this.deaf) this.onMessage(JSON.parse(payload.toString()));
      }
    }
  }
  onMessage(m) {
    this.received.push(m);
    if (m.method === 'initialize')
      this.send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-06-18', capabilities: { tools: { listChanged: true } }, serverInfo: { name: this.name, version: '1' } } });
    else if (m.method === 'tools/list') {
      // two pages, to follow nextCursor
      const first = !m.params?.cursor;
      const all = agentTools.concat(this.extra);
      const page = first ? all.slice(0, 3) : all.slice(3);
      this.send({ jsonrpc: '2.0', id: m.id, result: first ? { tools: page, nextCursor: 'p2' } : { tools: page } });
    } else if (m.method === 'ping') this.send({ jsonrpc: '2.0', id: m.id, result: {} });
    else if (m.method === 'tools/call') {
      if (this.hang.has(m.params.name)) return;
      this.send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: `${this.name}:${m.params.name}:${JSON.stringify(m.params.arguments ?? {})}` }] } });
    }
  }
  calls() {
    return this.received.filter((m) => m.method === 'tools/call');
  }
  kill() {
    this.sock.destroy(); // no close frame: the TCP connection just ends
  }
  async waitClosed(ms = 5000) {
    await waitFor(() => this.closed, ms);
    return this.closed;
  }
}

const key = {};
const names = async (c) => (await c.listTools()).tools.map((t) => t.name).sort();
const agentNames = (list) => list.filter((n) => n.startsWith('laptop-') && !n.startsWith('laptop-demo__'));
const ALICE_TOOLS = ['laptop-builtin__echo', 'laptop-builtin__sleep', 'laptop-fs__read', 'laptop-shell__shell_exec'];
async function callErr(c, name, args) {
  try {
    await c.callTool({ name, arguments: args });
    return null;
  } catch (e) {
    return e;
  }
}
async function httpClient(url, k) {
  const c = new Client({ name: 'agents-e2e', version: '1' }, { capabilities: {} });
  c.changes = 0;
  c.setNotificationHandler(types.ToolListChangedNotificationSchema, () => c.changes++);
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${k}` } } }));
  return c;
}
// Waits until the client's (alice's) view of agent tools equals `want`.
async function waitTools(c, want, ms = 5000) {
  let got = [];
  await waitFor(async () => {
    got = agentNames(await names(c));
    return JSON.stringify(got) === JSON.stringify(want);
  }, ms);
  return got;
}

await step('agents create/list: the key is shown once, masked in the list', async () => {
  let r = mcpd('bots', 'create', 'alice');
  key.alice = r.stdout.trim();
  r = mcpd('bots', 'create', 'bob');
  key.bob = r.stdout.trim();
  r = mcpd('agents', 'create', 'laptop');
  eq(r.code, 0, 'agents create laptop exits 0');
  key.laptop = r.stdout.trim();
  match(key.laptop, /^ak_[0-9a-f]{48}$/, 'the key is ak_ + 48 hex');
  eq(mcpd('agents', 'create', 'laptop').code, 1, 'a second agent named laptop is refused');
  eq(mcpd('agents', 'create', 'laptop-x').code, 0, 'another agent, laptop-x');
  match(mcpd('agents', 'create', 'Laptop!').stderr, /invalid agent name/, 'an invalid name is refused');
  const list = mcpd('agents', 'list', '--json');
  const a = JSON.parse(list.stdout).find((x) => x.name === 'laptop');
  eq([a.name, a.status, a.resources, a.last_online], ['laptop', 'offline', 0, '-'], 'agents list --json: offline, no resources, never online');
  eq(a.key, `${key.laptop.slice(0, 8)}\u2026${key.laptop.slice(-4)}`, 'the masked key is the first 8 + … + last 4');
  ok(!list.stdout.includes(key.laptop) && !fs.readFileSync(db).includes(Buffer.from(key.laptop)), 'the key is neither in the list nor in the database file');
});

const srv = await startServe(cfgText, { name: 'agents', essential: true });
const port = srv.port;

await step('GET /agent refuses before the upgrade: 401, 426', async () => {
  const none = new Agent(port, null);
  eq(await none.connect(), 401, 'no key: 401');
  match(none.headers, /WWW-Authenticate: Bearer realm="mcpd-agent"/i, 'with WWW-Authenticate realm mcpd-agent');
  eq(await new Agent(port, `ak_${'0'.repeat(48)}`).connect(), 401, 'an unknown key: 401');
  eq(await new Agent(port, key.alice).connect(), 401, 'a bot key: 401');
  const plain = await rawHttp(port, ['GET /agent HTTP/1.1', `Host: 127.0.0.1:${port}`, `Authorization: Bearer ${key.laptop}`]);
  eq(plain.status, 426, 'a valid key without Upgrade: 426');
  const badver = await rawHttp(port, ['GET /agent HTTP/1.1', `Host: 127.0.0.1:${port}`, `Authorization: Bearer ${key.laptop}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==', 'Sec-WebSocket-Version: 8']);
  eq(badver.status, 400, 'a wrong WebSocket version: 400');
});

let alice, bob, agent;

await step('a connected agent lends its tools: grouped, named, bound per bot', async () => {
  alice = await httpClient(srv.url, key.alice);
  bob = await httpClient(srv.url, key.bob);
  eq(agentNames(await names(alice)), [], 'before the agent connects alice sees no agent tool');
  agent = new Agent(port, key.laptop, 'a1');
  eq(await agent.connect(), 101, 'the agent is upgraded (101)');
  eq(await waitTools(alice, ALICE_TOOLS), ALICE_TOOLS, 'alice sees the agent tools of her bindings, as <agent>-<group>__<tool>');
  await waitFor(() => alice.changes >= 1, 3000);
  ok(alice.changes >= 1, 'alice got notifications/tools/list_changed');
  const init = agent.received.find((m) => m.method === 'initialize');
  eq(init?.params?.protocolVersion, '2025-06-18', 'mcpd initialized the agent with 2025-06-18');
  ok(agent.received.some((m) => m.method === 'notifications/initialized'), 'and sent notifications/initialized');
  eq(agent.received.filter((m) => m.method === 'tools/list').length, 2, 'and followed nextCursor (two tools/list pages)');
  eq(await names(bob), ['laptop-demo__add', 'laptop-demo__echo', 'laptop-demo__now', 'laptop-demo__reverse'], 'bob sees only the configured server laptop-demo: the agent group "demo" never shadows it');
  match(srv.log(), /tool 'nogroup': no valid io\.mcpd\/group; refused/, 'a tool without a group is refused and logged');
  match(srv.log(), /'laptop-demo' is a configured server's name; refused/, 'a group colliding with a server is refused and logged');
  match(srv.log(), /is too long; refused/, 'a too long resource name is refused and logged');
  match(srv.log(), /'laptop-x-y' lies in another agent's namespace; refused/, "a group reaching into agent laptop-x's namespace is refused");
  const cat = JSON.parse(mcpd('catalog', '--json').stdout);
  ok(cat.tools.every((t) => !t.name.startsWith('laptop-') || t.name.startsWith('laptop-demo__')), 'mcpd catalog (another process, agent offline there) has no agent tools');
});

await step('calls: forwarded by wire name, policy from agent-declared dimensions', async () => {
  const r = await alice.callTool({ name: 'laptop-builtin__echo', arguments: { text: 'hi' } });
  eq(texts(r), ['a1:builtin.echo:{"text":"hi"}'], 'a call reaches the agent under its wire name');
  const okRead = await alice.callTool({ name: 'laptop-fs__read', arguments: { path: '/tmp/a/../b' } });
  eq(texts(okRead), ['a1:fs.read:{"path":"/tmp/b"}'], 'an allowed path is canonicalised before forwarding');
  const before = agent.calls().length;
  const denied = await callErr(alice, 'laptop-fs__read', { path: '/etc/passwd' });
  eq(denied?.code, -32003, 'a path outside the binding is denied (-32003)');
  const evil = await callErr(alice, 'laptop-shell__shell_exec', { command: 'ls; rm -rf /' });
  eq(evil?.code, -32003, '`ls; rm -rf /` is denied by mcpd');
  eq(agent.calls().length, before, 'and neither denied call reached the agent');
  ok(!JSON.stringify(agent.received).includes('rm -rf'), 'the agent never received "rm -rf"');
  const ls = await alice.callTool({ name: 'laptop-shell__shell_exec', arguments: { command: 'ls -l /tmp' } });
  eq(texts(ls).length, 1, 'an allowed command reaches the agent');
  eq((await callErr(bob, 'laptop-builtin__echo', {}))?.code, -32602, 'bob (not bound) gets "unknown tool" for an agent tool');
  const list = JSON.parse(mcpd('agents', 'list', '--json').stdout)[0];
  eq([list.status, list.resources], ['online', 3], 'agents list: online, 3 resources (builtin, fs, shell)');
  ok(list.last_online !== '-', 'with a last-online time');
});

await step('the agent says its tools changed: mcpd lists again', async () => {
  alice.changes = 0;
  agent.extra.push({ name: 'builtin.new', inputSchema: schema, _meta: { 'io.mcpd/group': 'builtin', 'io.mcpd/tool': 'new' } });
  agent.send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
  const more = [...ALICE_TOOLS, 'laptop-builtin__new'].sort();
  eq(await waitTools(alice, more), more, 'the new tool appears');
  await waitFor(() => alice.changes >= 1, 3000); // the GET stream may trail the POST answers
  ok(alice.changes >= 1, 'alice got list_changed');
  agent.extra = [];
  agent.send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
  eq(await waitTools(alice, ALICE_TOOLS), ALICE_TOOLS, 'and leaves again');
});

await step('a call timeout (agents.call_timeouts of laptop-builtin) answers the client and cancels on the agent', async () => {
  const t0 = Date.now();
  const e = await callErr(alice, 'laptop-builtin__sleep', {});
  match(e?.message, /did not answer within 1500 ms/, 'the client gets the timeout error');
  ok(Date.now() - t0 >= 1400 && Date.now() - t0 < 5000, 'after about agents.call_timeout', `${Date.now() - t0} ms`);
  const call = agent.calls().find((m) => m.params.name === 'builtin.sleep');
  await waitFor(() => agent.received.some((m) => m.method === 'notifications/cancelled'), 2000);
  const cancel = agent.received.find((m) => m.method === 'notifications/cancelled');
  eq(cancel?.params?.requestId, call?.id, 'the agent received notifications/cancelled for that request');
});

await step('the agent goes away: tools leave, "agent not connected", they return on reconnect', async () => {
  alice.changes = 0;
  agent.kill();
  eq(await waitTools(alice, []), [], 'the agent tools leave the catalog');
  await waitFor(() => alice.changes >= 1, 3000); // the GET stream may trail the POST answers
  ok(alice.changes >= 1, 'alice got list_changed');
  const e = await callErr(alice, 'laptop-builtin__echo', {});
  match(e?.message, /agent not connected: 'laptop'/, 'a bound bot calling it gets "agent not connected" naming the agent');
  eq((await callErr(bob, 'laptop-builtin__echo', {}))?.code, -32602, 'an unbound bot gets "unknown tool"');
  await waitFor(() => JSON.parse(mcpd('agents', 'list', '--json').stdout)[0].status === 'offline', 3000);
  const list = JSON.parse(mcpd('agents', 'list', '--json').stdout)[0];
  eq(list.status, 'offline', 'agents list: offline');
  eq(list.resource_list.map((r) => `${r.name}:${r.status}`), ['laptop-builtin:disconnected', 'laptop-fs:disconnected', 'laptop-shell:disconnected'], 'its resources are kept, disconnected');
  const cat = JSON.parse(mcpd('catalog', '--json').stdout);
  eq(cat.servers.filter((s) => s.kind === 'agent').map((s) => `${s.name}:${s.state}`).sort(), ['laptop-builtin:disconnected', 'laptop-fs:disconnected', 'laptop-shell:disconnected'], 'mcpd catalog lists them as disconnected');
  agent = new Agent(port, key.laptop, 'a2');
  eq(await agent.connect(), 101, 'the agent reconnects');
  eq(await waitTools(alice, ALICE_TOOLS), ALICE_TOOLS, 'its tools return');
  eq(texts(await alice.callTool({ name: 'laptop-builtin__echo', arguments: {} })), ['a2:builtin.echo:{}'], 'and are called on the new connection');
});

await step('heartbeat: an agent that stops answering pings is dropped', async () => {
  const t0 = Date.now();
  agent.deaf = true;
  eq(await waitTools(alice, [], 5000), [], 'its tools leave the catalog');
  ok(Date.now() - t0 < 3000, 'within ping_interval + ping_timeout (+ slack)', `${Date.now() - t0} ms`);
  ok(await agent.waitClosed(), 'the connection is closed');
  match(srv.log(), /no pong within 700 ms/, 'mcpd logs the missed pong');
});

await step('one connection per agent: a second replaces the first (4000)', async () => {
  const a3 = new Agent(port, key.laptop, 'a3');
  eq(await a3.connect(), 101, 'first connection');
  await waitTools(alice, ALICE_TOOLS);
  const a4 = new Agent(port, key.laptop, 'a4');
  eq(await a4.connect(), 101, 'second connection with the same key');
  ok(await a3.waitClosed(), 'the first is closed');
  eq(a3.closeCode, 4000, 'with 4000');
  eq(a3.closeReason, 'replaced by a new connection', 'reason "replaced by a new connection"');
  eq(await waitTools(alice, ALICE_TOOLS), ALICE_TOOLS, 'the tools are there');
  await waitFor(async () => texts(await alice.callTool({ name: 'laptop-builtin__echo', arguments: {} }).catch(() => ({})))[0] === 'a4:builtin.echo:{}', 3000);
  eq(texts(await alice.callTool({ name: 'laptop-builtin__echo', arguments: {} })), ['a4:builtin.echo:{}'], 'calls go to the new connection');
  agent = a4;
});

await step('an oversized message closes the connection with 1009', async () => {
  agent.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(70 * 1024) } });
  ok(await agent.waitClosed(), 'the connection is closed');
  eq(agent.closeCode, 1009, 'with 1009');
  eq(await waitTools(alice, []), [], 'and the tools leave');
});

await step('rotate closes the connection (4001); the old key stops working', async () => {
  const a = new Agent(port, key.laptop, 'a5');
  eq(await a.connect(), 101, 'connected');
  await waitTools(alice, ALICE_TOOLS);
  const r = mcpd('agents', 'rotate', 'laptop');
  eq(r.code, 0, 'agents rotate exits 0');
  const old = key.laptop;
  key.laptop = r.stdout.trim();
  match(key.laptop, /^ak_[0-9a-f]{48}$/, 'a new key is printed');
  ok(await a.waitClosed(3000), 'the connection is closed within about a second');
  eq(a.closeCode, 4001, 'with 4001');
  eq(await new Agent(port, old).connect(), 401, 'the old key: 401');
  const b = new Agent(port, key.laptop, 'a6');
  eq(await b.connect(), 101, 'the new key works');
  agent = b;
  await waitTools(alice, ALICE_TOOLS);
});

await step('disable closes the connection (4003) and refuses it (403); enable', async () => {
  eq(mcpd('agents', 'disable', 'laptop').code, 0, 'agents disable exits 0');
  ok(await agent.waitClosed(3000), 'the connection is closed');
  eq(agent.closeCode, 4003, 'with 4003');
  eq(JSON.parse(mcpd('agents', 'list', '--json').stdout)[0].status, 'disabled', 'agents list: disabled');
  eq(await new Agent(port, key.laptop).connect(), 403, 'a disabled agent: 403');
  eq(mcpd('agents', 'enable', 'laptop').code, 0, 'agents enable exits 0');
  await sleep(1200); // the watcher notices within about a second
  agent = new Agent(port, key.laptop, 'a7');
  eq(await agent.connect(), 101, 'enabled again: connected');
  eq(await waitTools(alice, ALICE_TOOLS), ALICE_TOOLS, 'tools back');
});

await step('stdio: mcpd stdio --listen serves GET /agent to a stdio client', async () => {
  const portFile = path.join(tmp, 'stdio.port');
  const t = new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg, '--listen', '127.0.0.1:0', '--port-file', portFile], stderr: 'pipe', env: { ...process.env } });
  let err = '';
  t.stderr?.on('data', (d) => (err += d));
  const c = new Client({ name: 'agents-stdio', version: '1' }, { capabilities: {} });
  c.changes = 0;
  c.setNotificationHandler(types.ToolListChangedNotificationSchema, () => c.changes++);
  await c.connect(t);
  await waitFor(() => fs.existsSync(portFile) && /^\d+/.test(fs.readFileSync(portFile, 'utf8')), 5000);
  const sport = Number(fs.readFileSync(portFile, 'utf8').trim());
  ok(sport > 0, 'stdio mode wrote its listener port');
  const mcpPost = await rawHttp(sport, ['POST /mcp HTTP/1.1', `Host: 127.0.0.1:${sport}`, 'Content-Type: application/json', 'Content-Length: 2'], '{}');
  eq(mcpPost.status, 404, 'the other HTTP routes are off in stdio mode');
  const a = new Agent(sport, key.laptop, 's1');
  eq(await a.connect(), 101, 'an agent connects to the stdio mcpd');
  eq(await waitTools(c, ALICE_TOOLS), ALICE_TOOLS, 'the stdio client (default bot alice) sees the agent tools');
  await waitFor(() => c.changes >= 1, 3000);
  ok(c.changes >= 1, 'and got list_changed');
  eq(texts(await c.callTool({ name: 'laptop-builtin__echo', arguments: { via: 'stdio' } })), ['s1:builtin.echo:{"via":"stdio"}'], 'and calls them');
  a.kill();
  await c.close();
  if (!ok(!/AddressSanitizer|runtime error/.test(err), 'the stdio mcpd stderr is clean')) console.log(err.slice(-3000));
});

await step('wss: GET /agent on a TLS listener', async () => {
  const cert = path.join(tmp, 'cert.pem');
  const tkey = path.join(tmp, 'key.pem');
  const r = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', tkey, '-out', cert, '-days', '2', '-subj', '/CN=mcpd e2e', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  eq(r.code, 0, 'openssl made a certificate');
  fs.chmodSync(tkey, 0o600);
  const tcfg = cfgText.replace(/^servers:/m, `listen:\n  address: 127.0.0.1:0\n  tls: { cert: ${cert}, key: ${tkey} }\nservers:`);
  const tsrv = await startServe(tcfg, { name: 'agents-tls' });
  const ca = fs.readFileSync(cert);
  eq(await new Agent(tsrv.port, 'ak_nope').connect({ ca }), 401, 'a bad key over wss: 401');
  const a = new Agent(tsrv.port, key.laptop, 't1');
  eq(await a.connect({ ca }), 101, 'the agent is upgraded over TLS');
  await waitFor(() => a.received.some((m) => m.method === 'tools/list'), 5000);
  ok(a.received.some((m) => m.method === 'initialize') && a.received.some((m) => m.method === 'tools/list'), 'mcpd initializes and lists it over wss');
  match(tsrv.log(), /agent=laptop connected/, 'the TLS mcpd logs the connection');
  a.kill();
  await tsrv.stopAndCheck('agents-tls mcpd');
});

await step('delete closes the connection (4004); resources stay, bindings untouched', async () => {
  eq(mcpd('agents', 'delete', 'laptop').code, 0, 'agents delete exits 0');
  ok(await agent.waitClosed(3000), 'the connection is closed');
  eq(agent.closeCode, 4004, 'with 4004');
  eq(await new Agent(port, key.laptop).connect(), 401, 'its key: 401');
  eq(await waitTools(alice, []), [], 'its tools are gone');
  match((await callErr(alice, 'laptop-builtin__echo', {}))?.message, /agent not connected/, 'a bound bot: "agent not connected"');
  eq(JSON.parse(mcpd('agents', 'list', '--json').stdout).map((x) => x.name), ['laptop-x'], 'agents list no longer has laptop');
  eq(sql("SELECT count(*) FROM agent_resources WHERE agent = 'laptop'"), '3', 'its resources are still in the store');
});

await step('audit: agent calls are recorded with location agent:laptop', async () => {
  await sleep(500);
  const rows = sql("SELECT resource || ' ' || tool || ' ' || status FROM audit WHERE location = 'agent:laptop' AND kind = 'call' ORDER BY id");
  ok(rows.includes('laptop-builtin echo ok'), 'a call row names resource laptop-builtin, tool echo', rows);
  ok(rows.includes('laptop-builtin sleep timeout'), 'the timed-out call is audited as timeout', rows);
  const denials = sql("SELECT count(*) FROM audit WHERE resource = 'laptop-shell' AND decision = 'deny'");
  eq(denials, '1', 'the denied shell_exec is audited');
  eq(sql("SELECT count(*) FROM audit WHERE kind = 'auth' AND transport = 'agent'") !== '0', true, 'refused agent keys are audited');
});

await step('shutdown closes a connected agent with 1001 and exits cleanly', async () => {
  const r = mcpd('agents', 'create', 'nas');
  eq(r.code, 0, 'a new agent, created while mcpd runs');
  const nas = new Agent(port, r.stdout.trim(), 'nas');
  await sleep(1200); // the watcher polls every 500 ms
  eq(await nas.connect(), 101, 'it connects once the watcher has seen it');
  await waitFor(() => nas.received.some((m) => m.method === 'tools/list'), 5000);
  await alice.close();
  await bob.close();
  await srv.stopAndCheck('agents mcpd');
  ok(nas.closed, 'the agent connection is closed');
  eq(nas.closeCode, 1001, 'with 1001');
});

await finish();
