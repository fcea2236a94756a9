// modern_upstream.mjs - upstreams that speak the stateless revision (2026-07-28):
// mcpd-fixture-modern behind mcpd, found by `protocol: auto` (it refuses
// initialize naming 2026-07-28), spoken to directly with `protocol: 2026-07-28`,
// and not spoken to with `protocol: legacy`. Checked: server/discover instead of
// initialize, mcpd's _meta (version, the client's relayable capabilities,
// clientInfo) on every request upstream; MRTR toward a session-era client (each
// input asked as a server->client request, the retry with inputResponses and the
// upstream's requestState under a new id, several rounds, a client that lacks a
// capability or refuses), toward a modern client (input_required passed on, the
// requestState wrapped and bound to bot, server and request: another bot, another
// tool or a changed byte is -32602 and never reaches the upstream), the client's
// capabilities passed through, over HTTP and stdio, and the audit (one call row
// and one outcome per call, whatever the rounds).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, startServe, post, writeFile, track, tmp, run, sleep, checkCleanExit, waitFor, sdk, texts, settle, upstreamPid } from './lib.mjs';

const V = '2026-07-28';
const FX = process.env.MCPD_FIXTURE_MODERN;
if (!FX) {
  console.error('e2e: MCPD_FIXTURE_MODERN is not set (run through ctest)');
  process.exit(2);
}
const { Client, StreamableHTTPClientTransport, types } = await sdk();

const db = path.join(tmp, 'mu.db');
const logAuto = path.join(tmp, 'auto.log');
const logDirect = path.join(tmp, 'direct.log');
const logOld = path.join(tmp, 'old.log');
const cfgText = `store: ${db}
limits:
  input_wait: 1500ms
servers:
  auto:
    command: ${FX}
    env: { FIXTURE_MODERN_LOG: ${JSON.stringify(logAuto)} }
  direct:
    command: ${FX}
    protocol: "2026-07-28"
    env: { FIXTURE_MODERN_LOG: ${JSON.stringify(logDirect)}, FIXTURE_MODERN_NO_SUBSCRIBE: "1" }
  pc:
    command: ${FX}
    share: per-client
  old:
    command: ${FX}
    protocol: legacy
    env: { FIXTURE_MODERN_LOG: ${JSON.stringify(logOld)} }
bots:
  alice:
    bindings:
      - { resource: auto, tools: ["*"], prompts: ["*"], uris: ["**"] }
      - { resource: direct, tools: ["*"], uris: ["**"] }
      - { resource: pc, tools: ["*"] }
  bob:
    bindings:
      - { resource: auto, tools: ["*"] }
  carol:
    bindings:
      - { resource: auto, tools: [test_input_required_result_elicitation] }
`;
const cfg = writeFile('mu.yaml', cfgText);
const keys = {};
for (const b of ['alice', 'bob', 'carol']) keys[b] = run(bin.mcpd, ['bots', 'create', b, '-c', cfg]).stdout.trim();
const auth = (b) => ({ Authorization: `Bearer ${keys[b]}` });
const lines = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
const calls = (p) => lines(p).filter((m) => m.method === 'tools/call' || m.method === 'prompts/get');
const sql = (q) => run('sqlite3', [db, q]).stdout.trim();

const srv = await startServe(cfgText, { name: 'modern-upstream', essential: true });
const port = srv.port;
await waitFor(() => /upstream=auto ready/.test(srv.log()) && /upstream=direct ready/.test(srv.log()), 10000, 50);

await step('protocol: auto finds 2026-07-28, protocol: 2026-07-28 discovers at once, legacy does not', async () => {
  match(srv.log(), /upstream=auto refused initialize: speaking 2026-07-28 to it/, 'auto: the refusal of initialize is read');
  match(srv.log(), /upstream=auto ready: 11 tools, 1 prompts, 1 resources, protocol 2026-07-28/, 'auto: ready, in 2026-07-28');
  const a = lines(logAuto);
  eq(a.slice(0, 2).map((m) => m.method), ['initialize', 'server/discover'], 'auto: initialize, then server/discover');
  ok(!a.some((m) => m.method === 'notifications/initialized'), 'no notifications/initialized to a 2026-07-28 server');
  eq(lines(logDirect)[0]?.method, 'server/discover', 'protocol 2026-07-28: server/discover first, no initialize');
  ok(!lines(logDirect).some((m) => m.method === 'initialize'), 'never initialize');
  await waitFor(() => /upstream=old initialize failed/.test(srv.log()), 5000, 50);
  match(srv.log(), /upstream=old initialize failed/, 'protocol legacy: the refusal is a failure');
  const meta = a.slice(1).map((m) => m.params?._meta ?? {});
  ok(meta.length >= 3 && meta.every((x) => x['io.modelcontextprotocol/protocolVersion'] === V && x['io.modelcontextprotocol/clientInfo']?.name === 'mcpd' &&
    JSON.stringify(x['io.modelcontextprotocol/clientCapabilities']) === '{}'), 'every request of mcpd\'s own carries the version, mcpd\'s clientInfo and no capabilities', JSON.stringify(meta));
});

// A session-era SDK client over HTTP as `bot`, answering what it declares.
async function legacyClient(bot, { caps = { sampling: {}, elicitation: { form: {} }, roots: {} }, refuse = false, slow = 0 } = {}) {
  const client = new Client({ name: `mu-${bot}`, version: '1' }, { capabilities: caps });
  const seen = [];
  if (caps.elicitation)
    client.setRequestHandler(types.ElicitRequestSchema, async (r) => {
      seen.push(r.params.message);
      if (refuse) throw new Error('the user closed the dialog');
      if (slow) await sleep(slow);
      const field = Object.keys(r.params.requestedSchema.properties)[0];
      return { action: 'accept', content: { [field]: field === 'name' ? 'Ada' : field === 'ok' ? true : 'red' } };
    });
  if (caps.sampling)
    client.setRequestHandler(types.CreateMessageRequestSchema, async () => ({ role: 'assistant', content: { type: 'text', text: 'Bonjour' }, model: 'm', stopReason: 'endTurn' }));
  if (caps.roots)
    client.setRequestHandler(types.ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///work', name: 'w' }] }));
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), { requestInit: { headers: auth(bot) } }));
  return { client, seen };
}
const call = (c, name) => settle(() => c.callTool({ name, arguments: {} }, undefined, { timeout: 15000 }));

await step('a session-era client: mcpd asks it each input and retries', async () => {
  const { client, seen } = await legacyClient('alice');
  const before = calls(logAuto).length;
  const r = await call(client, 'auto__test_input_required_result_elicitation');
  eq(texts(r.result), ['Hello, Ada!'], 'the elicitation was asked of the client and the retry answered');
  eq(seen, ['What is your name?'], 'as an elicitation/create request');
  const sent = calls(logAuto).slice(before);
  eq(sent.length, 2, 'two calls upstream: the first and the retry');
  ok(sent[1].id !== sent[0].id, 'the retry has a new id', `${sent[0].id} ${sent[1].id}`);
  eq(sent[1].params.inputResponses, { user_name: { action: 'accept', content: { name: 'Ada' } } }, 'the retry carries the answer under the upstream\'s key');
  eq(sent[0].params._meta['io.modelcontextprotocol/clientCapabilities'], { sampling: {}, elicitation: { form: {} }, roots: {} }, 'the client\'s capabilities went upstream');
  eq(texts((await call(client, 'auto__test_input_required_result_multi_round')).result), ['Ada likes red'], 'two rounds, the upstream\'s requestState carried along');
  const mr = calls(logAuto).filter((m) => m.params?.name === 'test_input_required_result_multi_round');
  eq(mr.length, 3, 'three calls upstream for two rounds');
  ok(mr[1].params.requestState && mr[2].params.requestState && mr[1].params.requestState !== mr[2].params.requestState, 'each retry with the state of its round');
  eq(texts((await call(client, 'auto__test_input_required_result_multiple_inputs')).result), ['name=Ada greeting=Bonjour roots=1'], 'three inputs of three kinds in one round');
  eq(texts((await call(client, 'auto__test_input_required_result_request_state')).result), ['state-ok: the requestState came back intact'], 'the upstream\'s requestState came back unchanged');
  eq(texts((await call(client, 'direct__test_input_required_result_sampling')).result), ['The model said: Bonjour'], 'a protocol 2026-07-28 server the same way');
  const p = await settle(() => client.getPrompt({ name: 'auto__test_input_required_result_prompt' }, { timeout: 15000 }));
  eq(p.result?.messages?.[0]?.content?.text, 'Use this context: red', 'prompts/get too');
  eq(Object.keys(r.result ?? {}).includes('resultType'), false, 'no resultType for a session-era client');
  await client.close();
});

await step('a session-era client that lacks the capability, or refuses', async () => {
  const { client } = await legacyClient('alice', { caps: {} });
  const before = calls(logAuto).length;
  const r = await call(client, 'auto__test_input_required_result_elicitation');
  match(r.error?.message ?? '', /needs elicitation\/create, which this client did not declare/, 'an error naming the missing capability');
  eq(calls(logAuto).length - before, 1, 'the upstream got one call and no retry');
  const caps = await call(client, 'auto__test_input_required_result_capabilities');
  eq(texts(caps.result), ['no client capabilities declared: nothing to ask'], 'the upstream saw no capabilities, so it asked for nothing');
  await client.close();
  const refusing = await legacyClient('alice', { refuse: true });
  const e = await call(refusing.client, 'auto__test_input_required_result_elicitation');
  match(e.error?.message ?? '', /the client refused the upstream's request for input/, 'a client error ends the call');
  await refusing.client.close();
  const slow = await legacyClient('alice', { slow: 2500 });
  const t = await call(slow.client, 'auto__test_input_required_result_elicitation');
  match(t.error?.message ?? '', /the client did not answer within 1500 ms the input upstream 'auto' asked for/, 'a client that does not answer within limits.input_wait: the call ends');
  ok(t.ms >= 1400 && t.ms < 2400, 'at input_wait', t.ms);
  await sleep(1200); /* its late answer arrives and is dropped */
  ok(srv.proc.exitCode === null, 'mcpd is still up');
  await slow.client.close();
});

await step('requests for input a call no longer needs free their slots', async () => {
  // max_inflight 2: were the unanswered requests of ended calls kept, the third call could not ask
  const small = await startServe(`limits:
  input_wait: 300ms
  max_inflight: 2
servers:
  m:
    command: ${FX}
catalog: { prefix: never }
`, { name: 'mu-small' });
  const client = new Client({ name: 'mu-silent', version: '1' }, { capabilities: { elicitation: {} } });
  let asked = 0;
  client.setRequestHandler(types.ElicitRequestSchema, () => { asked++; return new Promise(() => {}); }); /* never answers */
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${small.port}/mcp`)));
  for (let i = 1; i <= 3; i++) {
    const r = await call(client, 'test_input_required_result_elicitation');
    match(r.error?.message ?? '', /did not answer within 300 ms/, `call ${i}: asked, and ended at input_wait`);
  }
  eq(asked, 3, 'the client was asked each time');
  await client.close();
  await small.stopAndCheck('mcpd (small)');
});

await step('subscriptions outlive a restart of the server, in either era', async () => {
  const r = await startServe(`servers:
  lf:
    command: ${bin.fixture}
  mf:
    command: ${FX}
`, { name: 'mu-restart' });
  await waitFor(() => /upstream=lf ready/.test(r.log()) && /upstream=mf ready/.test(r.log()), 10000, 50);
  const client = new Client({ name: 'mu-restart', version: '1' }, { capabilities: {} });
  const updated = [];
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => updated.push(n.params.uri));
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${r.port}/mcp`)));
  const uris = ['lf+test://watched-resource', 'mf+test://modern/info'];
  for (const uri of uris) await client.subscribeResource({ uri });
  for (const name of ['lf', 'mf']) {
    const pid = upstreamPid(r.log(), name);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => upstreamPid(r.log(), name) !== pid && new RegExp(`upstream=${name} ready`).test(r.log().split(`started pid ${upstreamPid(r.log(), name)}`)[1] ?? ''), 10000, 50);
  }
  await call(client, 'lf__touch_watched');
  await call(client, 'mf__test_touch_resource');
  await waitFor(() => updated.length >= 2, 5000, 50);
  eq([...updated].sort(), uris.sort(), 'both servers, restarted, were subscribed again: the updates came');
  await client.close();
  await r.stopAndCheck('mcpd (restart)');
});

await step('a per-client server that speaks 2026-07-28 (auto): its first call, queued, too', async () => {
  const { client } = await legacyClient('alice');
  eq(texts((await call(client, 'pc__test_input_required_result_elicitation')).result), ['Hello, Ada!'], 'a session-era client, on a fresh instance');
  await client.close();
});

await step('a non-object _meta toward a 2026-07-28 upstream: -32602, mcpd unharmed', async () => {
  const init = await post(port, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }, auth('alice'));
  const sid = init.headers['mcp-session-id'];
  await post(port, { jsonrpc: '2.0', method: 'notifications/initialized' }, { ...auth('alice'), 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' });
  const r = await post(port, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'auto__test_input_required_result_capabilities', arguments: {}, _meta: 5 } },
    { ...auth('alice'), 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' });
  const e = r.messages.at(-1);
  eq([e?.id, e?.error?.code, e?.error?.message], [7, -32602, 'Invalid params: params and its _meta must be objects'], 'the client\'s id, and why');
  const ok2 = await post(port, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'auto__test_input_required_result_capabilities', arguments: {} } },
    { ...auth('alice'), 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' });
  eq(ok2.messages.at(-1)?.result?.content?.[0]?.text, 'no client capabilities declared: nothing to ask', 'the session goes on');
});

// ---- modern clients ----------------------------------------------------------------

let idn = 1000;
const META = (caps) => ({ 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': caps, 'io.modelcontextprotocol/clientInfo': { name: 'mu-modern', version: '1' } });
function modern(bot, method, params, caps = { elicitation: {}, sampling: {} }) {
  const body = { jsonrpc: '2.0', id: ++idn, method, params: { ...params, _meta: META(caps) } };
  const name = method === 'resources/read' ? params.uri : params.name;
  return post(port, body, { 'MCP-Protocol-Version': V, 'Mcp-Method': method, ...(name ? { 'Mcp-Name': name } : {}), ...auth(bot) });
}
const result = (r) => r.messages.at(-1)?.result ?? {};
const error = (r) => r.messages.at(-1)?.error ?? {};

await step('a modern client: input_required passed on, its requestState bound to bot and request', async () => {
  const T = 'auto__test_input_required_result_request_state';
  const first = result(await modern('alice', 'tools/call', { name: T, arguments: {} }));
  eq(first.resultType, 'input_required', 'input_required reaches the client');
  eq(Object.keys(first.inputRequests ?? {}), ['confirm'], 'with the upstream\'s own keys');
  match(first.requestState ?? '', /^u1\.[0-9a-f]{64}\.[A-Za-z0-9+/]+=*$/, 'the upstream\'s state, wrapped');
  const answer = { confirm: { action: 'accept', content: { ok: true } } };
  const before = calls(logAuto).length;
  const bob = await modern('bob', 'tools/call', { name: T, arguments: {}, inputResponses: answer, requestState: first.requestState });
  eq([bob.status, error(bob).code], [200, -32602], 'bob cannot use alice\'s state');
  const other = await modern('alice', 'tools/call', { name: 'auto__test_input_required_result_tampered_state', arguments: {}, inputResponses: answer, requestState: first.requestState });
  eq(error(other).code, -32602, 'nor can alice with another tool');
  const s = first.requestState;
  const flipped = s.slice(0, -3) + (s.at(-3) === 'A' ? 'B' : 'A') + s.slice(-2);
  const tampered = await modern('alice', 'tools/call', { name: T, arguments: {}, inputResponses: answer, requestState: flipped });
  eq(error(tampered).code, -32602, 'a changed byte: -32602');
  eq(calls(logAuto).length, before, 'none of the three reached the upstream');
  const done = result(await modern('alice', 'tools/call', { name: T, arguments: {}, inputResponses: answer, requestState: first.requestState }));
  eq([done.resultType, done.content?.[0]?.text], ['complete', 'state-ok: the requestState came back intact'], 'alice\'s retry: the upstream got its own state back');
  const up = calls(logAuto).at(-1);
  eq([up.params.requestState === first.requestState, typeof up.params.requestState, up.params.inputResponses], [false, 'string', answer], 'upstream: its unwrapped state and the answers');
  const plain = result(await modern('alice', 'tools/call', { name: 'auto__test_input_required_result_elicitation', arguments: {} }));
  match(plain.requestState ?? '', /^u0\.[0-9a-f]{64}$/, 'no upstream state: a bare binding');
  const r2 = result(await modern('alice', 'tools/call', { name: 'auto__test_input_required_result_elicitation', arguments: {}, inputResponses: { user_name: { action: 'accept', content: { name: 'Bo' } } }, requestState: plain.requestState }));
  eq(r2.content?.[0]?.text, 'Hello, Bo!', 'its retry');
  const hidden = await modern('carol', 'tools/call', { name: T, arguments: {}, inputResponses: answer, requestState: first.requestState });
  const unknown = await modern('carol', 'tools/call', { name: 'auto__nope', arguments: {} });
  eq([error(hidden).code, error(hidden).message], [error(unknown).code, error(unknown).message?.replace('auto__nope', T)], 'a hidden tool stays an unknown one, requestState or not');
});

await step('a modern client\'s capabilities reach the upstream', async () => {
  const r = result(await modern('alice', 'tools/call', { name: 'auto__test_input_required_result_capabilities', arguments: {} }, { sampling: {} }));
  eq(Object.keys(r.inputRequests ?? {}), ['greeting'], 'declared sampling only: asked only for sampling');
  const none = result(await modern('alice', 'tools/call', { name: 'auto__test_input_required_result_capabilities', arguments: {} }, {}));
  eq(none.content?.[0]?.text, 'no client capabilities declared: nothing to ask', 'none declared: nothing asked');
});

await step('stdio: a session-era client through mcpd stdio', async () => {
  const child = track(spawn(bin.mcpd, ['stdio', '-c', cfg, '--bot', 'alice'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const send = (m) => child.stdin.write(JSON.stringify(m) + '\n');
  const msgs = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { elicitation: {} }, clientInfo: { name: 'mu-stdio', version: '1' } } });
  await waitFor(() => msgs().some((m) => m.id === 1), 10000, 20);
  send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  await waitFor(() => /upstream=auto ready/.test(err), 10000, 20);
  send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'auto__test_input_required_result_elicitation', arguments: {} } });
  await waitFor(() => msgs().some((m) => m.method === 'elicitation/create'), 10000, 20);
  const ask = msgs().find((m) => m.method === 'elicitation/create');
  send({ jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { name: 'Stdio' } } });
  await waitFor(() => msgs().some((m) => m.id === 2), 10000, 20);
  eq(msgs().find((m) => m.id === 2)?.result?.content?.[0]?.text, 'Hello, Stdio!', 'asked on stdout, answered on stdin, retried');
  child.stdin.end();
  const r = await Promise.race([exited, sleep(15000).then(() => ({ code: null, signal: 'timeout' }))]);
  checkCleanExit('mcpd stdio', r.code, r.signal, err);
});

await step('list changes come on the upstream\'s subscriptions/listen stream', async () => {
  const l = lines(logAuto).find((m) => m.method === 'subscriptions/listen');
  eq(l?.params?.notifications, { toolsListChanged: true }, 'mcpd listens for what the server\'s capabilities offer');
  const { client } = await legacyClient('alice', { caps: {} });
  const changed = [];
  client.setNotificationHandler(types.ToolListChangedNotificationSchema, () => changed.push(Date.now()));
  const names = async () => (await client.listTools()).tools.map((t) => t.name);
  ok(!(await names()).includes('auto__test_extra_modern_tool'), 'not listed yet');
  eq(texts((await call(client, 'auto__test_toggle_tool')).result), ['extra tool on'], 'the upstream changes its list');
  await waitFor(async () => (await names()).includes('auto__test_extra_modern_tool'), 5000, 50);
  ok((await names()).includes('auto__test_extra_modern_tool'), 'mcpd relisted it and the client sees the new tool');
  await waitFor(() => changed.length > 0, 3000, 50);
  ok(changed.length > 0, 'and was told: notifications/tools/list_changed');
  await call(client, 'auto__test_toggle_tool');
  await client.close();
});

await step('resources: read through; subscriptions on the listen stream', async () => {
  const { client } = await legacyClient('alice', { caps: {} });
  const updated = [];
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => updated.push(n.params.uri));
  const { resources } = await client.listResources();
  const uri = resources.find((r) => r.name === 'info' && r.uri.startsWith('auto+'))?.uri;
  ok(uri !== undefined, 'the 2026-07-28 server\'s resource is listed', JSON.stringify(resources));
  const read = await settle(() => client.readResource({ uri }, { timeout: 10000 }));
  eq(read.result?.contents?.[0]?.text, 'a 2026-07-28 server', 'resources/read');
  const listens = () => lines(logAuto).filter((m) => m.method === 'subscriptions/listen');
  const n0 = listens().length;
  const sub = await settle(() => client.subscribeResource({ uri }, { timeout: 10000 }));
  ok(sub.error === undefined, 'resources/subscribe answered', sub.error?.message);
  await waitFor(() => listens().length > n0, 5000, 20);
  eq(listens().at(-1)?.params?.notifications, { toolsListChanged: true, resourceSubscriptions: ['test://modern/info'] }, 'the listen stream was opened again with the URI');
  ok(lines(logAuto).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === listens()[n0 - 1]?.id), 'and the old one cancelled');
  eq(texts((await call(client, 'auto__test_touch_resource')).result), ['updated: sent'], 'the server sends an update');
  await waitFor(() => updated.length > 0, 5000, 20);
  eq(updated, [uri], 'the subscriber got notifications/resources/updated, with the URI it knows');
  const unsub = await settle(() => client.unsubscribeResource({ uri }, { timeout: 10000 }));
  ok(unsub.error === undefined, 'resources/unsubscribe answered');
  await waitFor(() => listens().at(-1)?.params?.notifications?.resourceSubscriptions === undefined, 5000, 20);
  eq(listens().at(-1)?.params?.notifications, { toolsListChanged: true }, 'the last subscriber gone: a listen without it');
  eq(texts((await call(client, 'auto__test_touch_resource')).result), ['updated: nobody listens'], 'so no update is sent');
  const directUri = resources.find((r) => r.uri.startsWith('direct+'))?.uri;
  const before = lines(logDirect).length;
  const r = await settle(() => client.subscribeResource({ uri: directUri }, { timeout: 10000 }));
  match(r.error?.message ?? '', /upstream 'direct' offers no resource subscriptions/, 'a server without the capability: an error that says so');
  eq(lines(logDirect).length, before, 'and nothing sent to it');
  await client.close();
});

// ---- over HTTP: a front mcpd with url upstreams that speak 2026-07-28 ----------------
// back: mcpd serving the 2026-07-28 fixture and the session-era one (mcpd serves
// 2026-07-28 to its clients, so it is such a server); refuser: a proxy to back that
// refuses initialize as a 2026-07-28-only server does (400, -32022); front: mcpd with
// `url: back` (protocol 2026-07-28) and `url: refuser` (protocol auto).

const backFixtureLog = path.join(tmp, 'back-fixture.log');
const back = await startServe(`servers:
  m:
    command: ${FX}
  fixture:
    command: ${bin.fixture}
    env: { FIXTURE_LOG: ${JSON.stringify(backFixtureLog)} }
catalog: { prefix: never }
`, { name: 'mu-back' });
const backSaw = [];
const listenRes = []; /* the refuser's listen streams, to end or drop them */
const refuser = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    let msg = {};
    try {
      msg = JSON.parse(body.toString());
    } catch {}
    backSaw.push({ method: msg.method, headers: req.headers });
    if (msg.method === 'initialize') {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32022, message: 'Unsupported protocol version', data: { supported: [V], requested: msg.params?.protocolVersion } } }));
      return;
    }
    const fwd = http.request({ host: '127.0.0.1', port: back.port, path: req.url, method: req.method, headers: { ...req.headers, host: `127.0.0.1:${back.port}` } }, (r2) => {
      res.writeHead(r2.statusCode, r2.headers);
      r2.pipe(res);
      if (msg.method === 'subscriptions/listen')
        listenRes.push({ res, fwd });
    });
    fwd.on('error', () => res.destroy());
    res.on('close', () => fwd.destroy());
    fwd.end(body);
  });
});
await new Promise((r) => refuser.listen(0, '127.0.0.1', r));
const refuserPort = refuser.address().port;
const front = await startServe(`servers:
  viaurl:
    url: http://127.0.0.1:${back.port}/mcp
    protocol: "2026-07-28"
  pcurl:
    url: http://127.0.0.1:${refuserPort}/mcp
    protocol: "2026-07-28"
    share: per-client
  refusing:
    url: http://127.0.0.1:${refuserPort}/mcp
`, { name: 'mu-front' });
await waitFor(() => /upstream=viaurl ready/.test(front.log()) && /upstream=refusing ready/.test(front.log()), 10000, 50);

async function frontClient(caps = { sampling: {}, elicitation: { form: {} }, roots: {} }) {
  const client = new Client({ name: 'mu-front', version: '1' }, { capabilities: caps });
  if (caps.elicitation)
    client.setRequestHandler(types.ElicitRequestSchema, async (r) => {
      const field = Object.keys(r.params.requestedSchema.properties)[0];
      return { action: 'accept', content: { [field]: field === 'name' ? 'Ada' : field === 'ok' ? true : 'red' } };
    });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${front.port}/mcp`)));
  return client;
}

await step('HTTP: url upstreams in 2026-07-28, by configuration and by a refused initialize', async () => {
  match(front.log(), /upstream=viaurl ready: \d+ tools.*protocol 2026-07-28/, 'protocol 2026-07-28: ready');
  match(front.log(), /upstream=refusing refused initialize: speaking 2026-07-28 to it/, 'auto: the 400 with -32022 is read');
  match(front.log(), /upstream=refusing ready: \d+ tools.*protocol 2026-07-28/, 'and the server is spoken to in 2026-07-28');
  const d = backSaw.find((x) => x.method === 'server/discover');
  eq([d?.headers['mcp-protocol-version'], d?.headers['mcp-method'], d?.headers['mcp-session-id']], [V, 'server/discover', undefined], 'discover: version and method headers, no session');
  ok(!backSaw.some((x) => x.method === 'notifications/initialized'), 'no notifications/initialized');
  ok(backSaw.length > 2 && !backSaw.some((x) => x.method === undefined), 'no GET stream, no DELETE: every request to it a POST with a body', JSON.stringify(backSaw.map((x) => x.method)));
  const later = backSaw.filter((x) => x.method !== 'initialize' && x.method !== 'server/discover');
  ok(later.length > 0 && later.every((x) => x.headers['mcp-session-id'] === undefined && x.headers['mcp-protocol-version'] === V), 'no session on later requests either, each with the version', later.length);
});

await step('HTTP: MRTR across two mcpds, headers mirrored', async () => {
  const client = await frontClient();
  eq(texts((await call(client, 'viaurl__test_input_required_result_elicitation')).result), ['Hello, Ada!'], 'session-era client <- front <- back (2026-07-28) <- fixture');
  eq(texts((await call(client, 'refusing__test_input_required_result_multi_round')).result), ['Ada likes red'], 'two rounds, each state wrapped by back and carried by front');
  const before = backSaw.length;
  const h = await settle(() => client.callTool({ name: 'refusing__test_header_param', arguments: { region: 'Zürich', count: 3, note: 'n' } }, undefined, { timeout: 10000 }));
  eq(texts(h.result), ['arguments: {"count":3,"note":"n","region":"Zürich"}'], 'x-mcp-header arguments: back (which checks them) took the call');
  const sent = backSaw.slice(before).find((x) => x.method === 'tools/call');
  eq([sent?.headers['mcp-name'], sent?.headers['mcp-param-region'], sent?.headers['mcp-param-count']], ['test_header_param', '=?base64?WsO8cmljaA==?=', '3'], 'Mcp-Name, Mcp-Param-Region in Base64 (not ASCII), Mcp-Param-Count');
  const r = await settle(() => client.getPrompt({ name: 'viaurl__test_input_required_result_prompt' }, { timeout: 10000 }));
  eq(r.result?.messages?.[0]?.content?.text, 'Use this context: red', 'prompts/get');
  const pc = await settle(() => client.callTool({ name: 'pcurl__test_header_param', arguments: { region: 'eu', count: 1 } }, undefined, { timeout: 10000 }));
  eq(texts(pc.result), ['arguments: {"count":1,"region":"eu"}'], 'a per-client url server mirrors the headers too (its shared instance\'s tool list)');
  await client.close();
});

await step('HTTP: a modern client through two mcpds; a cancelled call closes its stream', async () => {
  const T = 'viaurl__test_input_required_result_request_state';
  const mpost = (params) => {
    const body = { jsonrpc: '2.0', id: ++idn, method: 'tools/call', params: { ...params, _meta: META({ elicitation: {} }) } };
    return post(front.port, body, { 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': params.name });
  };
  const first = result(await mpost({ name: T, arguments: {} }));
  eq(first.resultType, 'input_required', 'input_required through both');
  match(first.requestState ?? '', /^u1\./, 'back\'s state, wrapped again by front');
  const done = result(await mpost({ name: T, arguments: {}, inputResponses: { confirm: { action: 'accept', content: { ok: true } } }, requestState: first.requestState }));
  eq(done.content?.[0]?.text, 'state-ok: the requestState came back intact', 'each mcpd unwrapped its own layer');
  const client = await frontClient({});
  const ac = new AbortController();
  const pending = settle(() => client.callTool({ name: 'refusing__sleep', arguments: { ms: 20000 } }, undefined, { signal: ac.signal, timeout: 30000 }));
  const sleepCall = () => lines(backFixtureLog).find((m) => m.method === 'tools/call' && m.params?.name === 'sleep');
  await waitFor(() => sleepCall() !== undefined, 5000, 50);
  ac.abort('the user gave up');
  const r = await pending;
  ok(r.error !== undefined, 'the client\'s call ended');
  await waitFor(() => lines(backFixtureLog).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === sleepCall()?.id), 5000, 50);
  ok(lines(backFixtureLog).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === sleepCall()?.id),
    'front closed its stream to back (2026-07-28 has no notifications/cancelled over HTTP), and back cancelled the call');
  ok(!backSaw.some((x) => x.method === 'notifications/cancelled'), 'no notification POSTed to the 2026-07-28 server');
  await client.close();
});

await step('HTTP: list changes on the listen stream of a url upstream', async () => {
  const client = await frontClient({});
  const names = async () => (await client.listTools()).tools.map((t) => t.name);
  ok(backSaw.some((x) => x.method === 'subscriptions/listen'), 'front opened subscriptions/listen');
  ok(!(await names()).includes('refusing__test_extra_modern_tool'), 'not listed yet');
  await call(client, 'refusing__test_toggle_tool');
  await waitFor(async () => (await names()).includes('refusing__test_extra_modern_tool'), 5000, 50);
  ok((await names()).includes('refusing__test_extra_modern_tool'), 'fixture -> back -> listen stream -> front: relisted');
  await call(client, 'refusing__test_toggle_tool');
  // the listen stream ends (cleanly, then abruptly): reopened, the server not restarted
  const listens = () => backSaw.filter((x) => x.method === 'subscriptions/listen').length;
  for (const how of ['end', 'destroy']) {
    const n = listens();
    const l = listenRes.at(-1);
    if (how === 'end') l.res.end();
    else l.res.socket.destroy();
    l.fwd.destroy();
    await waitFor(() => listens() > n, 8000, 50);
    ok(listens() > n, `after the listen stream was ${how === 'end' ? 'ended' : 'dropped'}: a new one`);
  }
  ok(!/upstream=refusing (down|refused subscriptions)/.test(front.log()), 'the server was neither restarted nor given up on', front.log().split('\n').filter((l) => /refusing/.test(l)).slice(-5).join(' | '));
  await call(client, 'refusing__test_toggle_tool');
  await waitFor(async () => (await names()).includes('refusing__test_extra_modern_tool'), 5000, 50);
  ok((await names()).includes('refusing__test_extra_modern_tool'), 'and list changes still come');
  await call(client, 'refusing__test_toggle_tool');
  const updated = [];
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => updated.push(n.params.uri));
  const uri = 'refusing+test://modern/info';
  ok((await client.listResources()).resources.some((r) => r.uri === uri), 'back\'s resource, through front');
  const sub = await settle(() => client.subscribeResource({ uri }, { timeout: 10000 }));
  ok(sub.error === undefined, 'resources/subscribe through two mcpds', sub.error?.message);
  await waitFor(async () => texts((await call(client, 'refusing__test_touch_resource')).result)[0] === 'updated: sent', 5000, 100);
  await waitFor(() => updated.length > 0, 5000, 20);
  eq(updated[0], uri, 'fixture -> back (its listen) -> front (its listen to back) -> the client');
  await client.close();
});

await step('HTTP: front and back stop cleanly', async () => {
  await front.stopAndCheck('mcpd front');
  await back.stopAndCheck('mcpd back');
  refuser.close();
});

await step('audit: one call row and one outcome per call, whatever its rounds', async () => {
  await srv.stopAndCheck('mcpd');
  const outcomes = "(SELECT json_extract(j.value, '$[0]') AS cid, json_extract(j.value, '$[1]') AS st FROM audit r, json_each(r.args) j WHERE r.kind = 'result')";
  const rows = sql("SELECT count(*) FROM audit WHERE kind='call' AND bot='alice' AND tool='test_input_required_result_multi_round'");
  eq(rows, '1', 'the two-round call of the session-era client: one call row');
  eq(sql(`SELECT group_concat(o.st) FROM audit c JOIN ${outcomes} o ON o.cid = c.id WHERE c.kind='call' AND c.bot='alice' AND c.tool='test_input_required_result_multi_round'`), 'ok', 'with one outcome, ok');
  eq(run(bin.mcpd, ['audit', 'verify', '-c', cfg]).code, 0, 'the chain verifies');
});

await finish();
