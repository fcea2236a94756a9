// modern.mjs - the stateless revision (2026-07-28) toward clients, over raw
// HTTP and raw stdio lines: server/discover without a session, modern requests
// served without Mcp-Session-Id (resultType added, the modern _meta not
// forwarded upstream, -32002 mapped to -32602, no server->client requests),
// header validation (-32020), missing _meta fields (-32602), an unsupported
// version (-32022), 404 for removed and unknown methods, subscriptions/listen
// (acknowledgement, filter, subscription ids, list_changed, resource
// subscriptions, the end by close, cancel or shutdown), bot keys, and legacy
// sessions unaffected next to them.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, startServe, post, rawSession, writeFile, track, tmp, run, sleep, checkCleanExit, waitFor, upstreamPid, rawHttp } from './lib.mjs';

const V = '2026-07-28';
const ALL = [V, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const META = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'e2e-modern', version: '1' } };
const cfgText = `servers:
  fixture:
    command: ${bin.fixture}
  private:
    command: ${bin.fixture}
    share: per-client
`;

let idn = 100;
const req = (method, params = {}, meta = META) => ({ jsonrpc: '2.0', id: ++idn, method, params: meta ? { ...params, _meta: { ...meta, ...(params._meta || {}) } } : params });

// A modern POST with the headers the body implies (overridable).
function modernPost(port, body, extra = {}) {
  const p = body.params || {};
  const name = body.method === 'resources/read' ? p.uri : ['tools/call', 'prompts/get'].includes(body.method) ? p.name : undefined;
  return post(port, body, { 'MCP-Protocol-Version': V, 'Mcp-Method': body.method, ...(name !== undefined ? { 'Mcp-Name': name } : {}), ...extra });
}

// A subscriptions/listen request held open: frames() are the SSE messages so far.
function listen(port, notifications, id = ++idn) {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications, _meta: META } });
  const got = [];
  let buf = '';
  let raw = '';
  let res;
  const ended = new Promise((resolve) => {
    const r = http.request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': V, 'Mcp-Method': 'subscriptions/listen', 'Content-Length': Buffer.byteLength(body) } }, (rr) => {
      res = rr;
      rr.setEncoding('utf8');
      rr.on('data', (d) => {
        buf += d;
        raw += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = ev.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data) got.push(JSON.parse(data));
        }
      });
      rr.on('end', () => resolve('end'));
      rr.on('error', () => resolve('error'));
      rr.on('close', () => resolve('closed'));
    });
    r.on('error', () => resolve('error'));
    r.end(body);
    listen.reqs.push(r);
  });
  return { id, frames: () => got, raw: () => raw, status: () => res?.statusCode, type: () => res?.headers['content-type'], ended, close: () => res?.destroy() };
}
listen.reqs = [];

// `mcpd stdio` on cfgText: out() and err() so far, and stop() (stdin closed, clean exit checked).
function startStdio(name) {
  const cfg = writeFile(`${name}.yaml`, cfgText);
  const child = track(spawn(bin.mcpd, ['stdio', '-c', cfg, '--log-level', 'debug'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const stop = async (what) => {
    child.stdin.end();
    const r = await Promise.race([exited, sleep(15000).then(() => ({ code: null, signal: 'timeout' }))]);
    checkCleanExit(what, r.code, r.signal, err);
  };
  return { send: (m) => child.stdin.write(JSON.stringify(m) + '\n'), out: () => out, stop };
}

const srv = await startServe(cfgText, { name: 'modern', essential: true });
const port = srv.port;

await step('HTTP: server/discover without a session', async () => {
  const r = await post(port, { jsonrpc: '2.0', id: 1, method: 'server/discover' });
  eq(r.status, 200, 'status 200');
  ok(r.headers['mcp-session-id'] === undefined, 'no Mcp-Session-Id header');
  const res = r.json?.result ?? {};
  eq(res.supportedVersions, ALL, 'supportedVersions');
  eq(res.capabilities?.tools, { listChanged: true }, 'capabilities as initialize gives them');
  eq(res._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'mcpd', 'serverInfo in _meta');
  ok(Number.isInteger(res.ttlMs) && res.ttlMs >= 0, 'ttlMs', res.ttlMs);
  eq(res.cacheScope, 'private', 'cacheScope private');
  eq(res.resultType, 'complete', 'resultType complete');
  const m = await modernPost(port, req('server/discover'));
  eq([m.status, m.json?.result?.resultType], [200, 'complete'], 'with the modern _meta and headers too');
});

await step('HTTP: modern tools/call and tools/list without a session', async () => {
  const call = await modernPost(port, req('tools/call', { name: 'fixture__echo', arguments: { text: 'hi' }, _meta: { trace: 'kept' } }));
  eq(call.status, 200, 'tools/call: 200');
  ok(call.headers['mcp-session-id'] === undefined, 'no Mcp-Session-Id header');
  const res = call.messages.at(-1)?.result ?? {};
  eq(res.resultType, 'complete', 'resultType complete');
  eq(res.content?.[0]?.text, 'hi', 'the tool answered');
  eq(res.structuredContent?.meta, { trace: 'kept' }, 'upstream saw other _meta keys, not the modern ones');
  const list = await modernPost(port, req('tools/list'));
  const lr = list.json?.result ?? {};
  ok(lr.tools?.some((t) => t.name === 'fixture__echo'), 'tools/list lists the catalog');
  eq([lr.resultType, lr.cacheScope, typeof lr.ttlMs], ['complete', 'private', 'number'], 'tools/list: resultType, cacheScope, ttlMs');
  const prog = await modernPost(port, req('tools/call', { name: 'fixture__test_tool_with_progress', arguments: {}, _meta: { progressToken: 'p1' } }));
  const msgs = prog.messages;
  ok(msgs.some((x) => x.method === 'notifications/progress' && x.params?.progressToken === 'p1'), 'progress on the request stream', prog.body.slice(0, 300));
  eq(msgs.at(-1)?.result?.resultType, 'complete', 'then the result');
  ok(!/\nid: /.test(prog.body), 'no SSE event ids (not resumable)');
});

await step('HTTP: methods modern clients lack, error mapping, no server->client requests', async () => {
  for (const m of ['ping', 'logging/setLevel']) {
    const r = await modernPost(port, req(m, m === 'ping' ? {} : { level: 'info' }));
    eq(r.json?.error?.code, -32601, `${m}: -32601`);
  }
  const nf = await modernPost(port, req('resources/read', { uri: 'fixture+test://nope' }));
  eq(nf.json?.error?.code, -32602, 'resource not found: -32602 (not -32002)');
  const samp = await modernPost(port, req('tools/call', { name: 'private__test_sampling', arguments: { prompt: 'x' } }, { ...META, 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } }));
  const last = samp.messages.at(-1) ?? {};
  ok(!samp.messages.some((x) => x.method === 'sampling/createMessage'), 'no sampling request reaches the modern client', samp.body.slice(0, 300));
  eq([last.id, last.result?.resultType], [idn, 'input_required'], 'the call gets a final answer: input_required (MRTR)');
});

await step('HTTP: MRTR, an upstream asks a modern client for input (input_required, retry)', async () => {
  const caps = (c) => ({ ...META, 'io.modelcontextprotocol/clientCapabilities': c });
  const call = { name: 'private__test_elicitation', arguments: { message: 'Who are you?' } };
  const r1 = await modernPost(port, req('tools/call', call, caps({ elicitation: {} })));
  const res1 = r1.json?.result ?? {};
  eq([r1.status, res1.resultType], [200, 'input_required'], 'the call is answered input_required');
  const keys = Object.keys(res1.inputRequests ?? {});
  eq(keys.length, 1, 'one input request');
  const ask = res1.inputRequests?.[keys[0]];
  eq([ask?.method, ask?.params?.message], ['elicitation/create', 'Who are you?'], 'the upstream\'s elicitation/create, params unchanged');
  ok(typeof res1.requestState === 'string' && res1.requestState.length > 64, 'an opaque requestState');
  ok(!r1.body.includes('"method":"elicitation/create","id"'), 'no server->client request on the wire');
  const retry = (state, answers, c = { elicitation: {} }) => modernPost(port, req('tools/call', { ...call, inputResponses: answers, requestState: state }, caps(c)));
  const tampered = res1.requestState.slice(0, -1) + (res1.requestState.endsWith('0') ? '1' : '0');
  const t = await retry(tampered, { [keys[0]]: { action: 'accept', content: {} } });
  eq([t.json?.error?.code], [-32602], 'a tampered requestState: -32602');
  const missing = await retry(res1.requestState, {});
  const res2 = missing.json?.result ?? {};
  eq([res2.resultType, Object.keys(res2.inputRequests ?? {})], ['input_required', keys], 'a retry without the answer is asked again');
  ok(res2.requestState !== res1.requestState, 'with a new requestState');
  const stale = await retry(res1.requestState, { [keys[0]]: { action: 'accept', content: {} } });
  eq(stale.json?.error?.code, -32602, 'the previous round\'s requestState is no longer good');
  const done = await retry(res2.requestState, { [keys[0]]: { action: 'accept', content: { username: 'ada', email: 'ada@example.org' } } });
  const fin = done.json?.result ?? {};
  eq([done.json?.id, fin.resultType], [idn, 'complete'], 'the retry gets the call\'s final result, with the retry\'s id');
  eq(fin.content?.[0]?.text, 'User response: action=accept, content={"username":"ada","email":"ada@example.org"}', 'the upstream received the client\'s answer');
  const again = await retry(res2.requestState, { [keys[0]]: { action: 'accept', content: {} } });
  eq(again.json?.error?.code, -32602, 'a used requestState: -32602');

  const s1 = await modernPost(port, req('tools/call', { name: 'private__test_sampling', arguments: { prompt: 'What is 6*7?' } }, caps({ sampling: {} })));
  const sr = s1.json?.result ?? {};
  const sk = Object.keys(sr.inputRequests ?? {})[0];
  eq(sr.inputRequests?.[sk]?.method, 'sampling/createMessage', 'sampling becomes input_required too');
  const s2 = await modernPost(port, req('tools/call', { name: 'private__test_sampling', arguments: { prompt: 'What is 6*7?' }, inputResponses: { [sk]: { role: 'assistant', content: { type: 'text', text: '42' }, model: 'm' } }, requestState: sr.requestState }, caps({ sampling: {} })));
  eq(s2.json?.result?.content?.[0]?.text, 'LLM response: 42', 'and the retry completes it');

  const no = await modernPost(port, req('tools/call', call, caps({})));
  eq(no.json?.result?.content?.[0]?.text, 'the client did not declare the elicitation capability', 'a client that did not declare elicitation: the instance was not told of it');
  await sleep(100);
  match(srv.log(), /waits for input \(round 1, 1 requests\)/, 'logged: the call waits for input');
});

await step('HTTP: Mcp-Param-* headers mirror x-mcp-header arguments (SEP-2243)', async () => {
  const call = (args, extra) => modernPost(port, req('tools/call', { name: 'fixture__test_header_param', arguments: args }), extra);
  const list = await modernPost(port, req('tools/list'));
  const schema = list.json?.result?.tools?.find((t) => t.name === 'fixture__test_header_param')?.inputSchema;
  eq(schema?.properties?.region?.['x-mcp-header'], 'Region', 'the annotation reaches the client unchanged');
  const good = await call({ region: 'eu-west', count: 3 }, { 'Mcp-Param-Region': 'eu-west', 'Mcp-Param-Count': '3' });
  eq([good.status, good.json?.result?.content?.[0]?.text], [200, 'arguments: {"count":3,"region":"eu-west"}'], 'matching headers: served');
  const b64 = await call({ region: 'Hello' }, { 'Mcp-Param-Region': `=?base64?${Buffer.from('Hello').toString('base64')}?=` });
  eq(b64.status, 200, 'a Base64 header is decoded first');
  const literal = await call({ region: '=?base64?SGVsbG8=' }, { 'Mcp-Param-Region': '=?base64?SGVsbG8=' });
  eq(literal.status, 200, 'without the ?= suffix the value is literal');
  const cases = [
    ['missing', { region: 'x' }, {}],
    ['different', { region: 'x' }, { 'Mcp-Param-Region': 'y' }],
    ['bad Base64 padding', { region: 'Hello' }, { 'Mcp-Param-Region': '=?base64?SGVsbG8?=' }],
    ['bad Base64 characters', { region: 'Hello' }, { 'Mcp-Param-Region': '=?base64?SGVs!!!bG8=?=' }],
    ['an integer that differs', { region: 'x', count: 3 }, { 'Mcp-Param-Region': 'x', 'Mcp-Param-Count': '4' }],
  ];
  for (const [what, args, extra] of cases) {
    const b = req('tools/call', { name: 'fixture__test_header_param', arguments: args });
    const r = await modernPost(port, b, extra);
    eq([r.status, r.json?.error?.code, r.json?.id], [400, -32020, b.id], `${what}: 400 + -32020`);
  }
  const absent = await call({ region: 'x' }, { 'Mcp-Param-Region': 'x' });
  eq(absent.status, 200, 'an annotated argument the call leaves out needs no header');
});

await step('HTTP: header validation (-32020)', async () => {
  const body = () => req('tools/call', { name: 'fixture__echo', arguments: { text: 'x' } });
  const cases = [
    ['MCP-Protocol-Version missing', { 'MCP-Protocol-Version': null }],
    ['MCP-Protocol-Version different', { 'MCP-Protocol-Version': '2025-11-25' }],
    ['Mcp-Method missing', { 'Mcp-Method': null }],
    ['Mcp-Method different', { 'Mcp-Method': 'tools/list' }],
    ['Mcp-Name missing', { 'Mcp-Name': null }],
    ['Mcp-Name different', { 'Mcp-Name': 'fixture__other' }],
    ['Mcp-Name bad base64 form', { 'Mcp-Name': '=?base64?@@@?=' }],
  ];
  for (const [what, extra] of cases) {
    const b = body();
    const r = await modernPost(port, b, extra);
    eq([r.status, r.json?.error?.code, r.json?.id], [400, -32020, b.id], `${what} (the error names the request's id)`);
  }
  const b64 = Buffer.from('fixture__echo').toString('base64');
  const good = await modernPost(port, body(), { 'Mcp-Name': `=?base64?${b64}?=` });
  eq([good.status, good.json?.result?.resultType], [200, 'complete'], 'Mcp-Name as =?base64?...?= is decoded');
  const read = await modernPost(port, req('resources/read', { uri: 'fixture+test://static-text' }), { 'Mcp-Name': 'fixture+test://other' });
  eq([read.status, read.json?.error?.code], [400, -32020], 'resources/read: Mcp-Name must be the uri');
  const ok2 = await modernPost(port, req('resources/read', { uri: 'fixture+test://static-text' }));
  eq([ok2.status, ok2.json?.result?.resultType, ok2.json?.result?.cacheScope], [200, 'complete', 'private'], 'resources/read with the uri as Mcp-Name');
});

await step('HTTP: _meta fields and versions', async () => {
  const noCaps = { 'io.modelcontextprotocol/protocolVersion': V };
  const r1 = await modernPost(port, req('tools/list', {}, noCaps));
  eq([r1.status, r1.json?.error?.code], [400, -32602], 'clientCapabilities missing: 400 + -32602');
  const r2 = await modernPost(port, req('tools/list', {}, { 'io.modelcontextprotocol/clientCapabilities': {} }));
  eq([r2.status, r2.json?.error?.code], [400, -32602], 'protocolVersion missing: 400 + -32602');
  const r3 = await modernPost(port, req('tools/list', {}, { ...META, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' }), { 'MCP-Protocol-Version': '2099-01-01' });
  eq([r3.status, r3.json?.error?.code], [400, -32022], 'unsupported version: 400 + -32022');
  eq(r3.json?.error?.data, { supported: ALL, requested: '2099-01-01' }, 'data.supported and data.requested');
});

await step('HTTP: 2026-07-28 statuses: 404 for removed and unknown methods, _meta missing, header mismatch', async () => {
  for (const m of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'unknown/method']) {
    const r = await modernPost(port, req(m, {}));
    eq([r.status, r.json?.error?.code, r.json?.id], [404, -32601, idn], `${m}: 404 + -32601, with the request's id`);
  }
  const legacyInit = await post(port, { jsonrpc: '2.0', id: 3, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
  ok(legacyInit.status === 200 && legacyInit.headers['mcp-session-id'], 'a session-era initialize still opens a session');
  const noMeta = await modernPost(port, { jsonrpc: '2.0', id: 5, method: 'server/discover', params: {} });
  eq([noMeta.status, noMeta.json?.error?.code, noMeta.json?.id], [400, -32602, 5], 'the header says 2026-07-28 and _meta is missing: 400 + -32602');
  const noMetaList = await modernPost(port, { jsonrpc: '2.0', id: 6, method: 'tools/list' });
  eq([noMetaList.status, noMetaList.json?.error?.code], [400, -32602], 'the same for tools/list without params');
  const mismatch = await modernPost(port, req('server/discover', {}, { ...META, 'io.modelcontextprotocol/protocolVersion': 'v999.0.0' }));
  eq([mismatch.status, mismatch.json?.error?.code], [400, -32020], 'header 2026-07-28, _meta v999.0.0: 400 + -32020 (a mismatch, not a version error)');
  const tool = await modernPost(port, req('tools/call', { name: 'fixture__nope', arguments: {} }));
  eq(tool.status, 200, 'other errors (an unknown tool, -32602) stay in a 200');
});

await step('HTTP: GET and DELETE are 405 for a modern client (POST only)', async () => {
  for (const method of ['GET', 'DELETE']) {
    const r = await rawHttp(port, [`${method} /mcp HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Accept: text/event-stream', `MCP-Protocol-Version: ${V}`, 'Connection: close']);
    eq([r.status, r.headers.allow], [405, 'POST'], `${method} with MCP-Protocol-Version ${V}: 405, Allow: POST`);
  }
  const legacy = await rawHttp(port, [`GET /mcp HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Accept: text/event-stream', 'MCP-Protocol-Version: 2025-11-25', 'Connection: close']);
  eq(legacy.status, 400, 'a session-era GET without a session is still 400');
});

await step('HTTP: subscriptions/listen (ack, filter, subscription id, list_changed)', async () => {
  const tools = listen(port, { toolsListChanged: true, promptsListChanged: false, somethingElse: true });
  const prompts = listen(port, { promptsListChanged: true });
  await waitFor(() => tools.frames().length >= 1 && prompts.frames().length >= 1, 5000, 20);
  eq(tools.type(), 'text/event-stream', 'the listen stream is SSE');
  const ack = tools.frames()[0];
  eq(ack?.method, 'notifications/subscriptions/acknowledged', 'the first message is the acknowledgement');
  eq(ack?.params?.notifications, { toolsListChanged: true }, 'it accepts what was asked for and mcpd honours (not false, not unknown keys)');
  eq(ack?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], tools.id, 'tagged with the listen request id');
  eq(prompts.frames()[0]?.params?.notifications, { promptsListChanged: true }, 'the second stream: prompts only');
  const t = await modernPost(port, req('tools/call', { name: 'fixture__test_trigger_tool_change', arguments: {} }));
  eq(t.json?.result?.content?.[0]?.text, 'extra_tool added', 'the tool list changed upstream');
  await waitFor(() => tools.frames().length >= 2, 5000, 20);
  const tc = tools.frames()[1];
  eq(tc?.method, 'notifications/tools/list_changed', 'tools/list_changed on the tools stream');
  eq(tc?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], tools.id, 'tagged');
  await modernPost(port, req('tools/call', { name: 'fixture__test_trigger_prompt_change', arguments: {} }));
  await waitFor(() => prompts.frames().length >= 2, 5000, 20);
  eq(prompts.frames()[1]?.method, 'notifications/prompts/list_changed', 'prompts/list_changed on the prompts stream');
  eq(prompts.frames()[1]?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], prompts.id, 'tagged with its own id');
  await sleep(200);
  eq(tools.frames().map((f) => f.method), ['notifications/subscriptions/acknowledged', 'notifications/tools/list_changed'], 'the tools stream got no prompts notification');
  eq(prompts.frames().length, 2, 'the prompts stream got no tools notification');
  const list = await modernPost(port, req('tools/list'));
  ok(list.json?.result?.tools?.some((x) => x.name === 'fixture__extra_tool'), 'a re-list shows the change');
  await modernPost(port, req('tools/call', { name: 'fixture__test_trigger_tool_change', arguments: {} }));
  await modernPost(port, req('tools/call', { name: 'fixture__test_trigger_prompt_change', arguments: {} }));
  tools.close();
  prompts.close();
  await Promise.all([tools.ended, prompts.ended]);
  await waitFor(() => (srv.log().match(/listening \(kinds/g) || []).length >= 2, 2000, 20);
  const bad = await modernPost(port, req('subscriptions/listen', { notifications: 'all' }));
  eq([bad.status, bad.json?.error?.code], [200, -32602], 'notifications must be an object: -32602');
});

await step('HTTP: subscriptions/listen resourceSubscriptions (upstream subscribe, resources/updated, unsubscribe)', async () => {
  const uri = 'fixture+test://watched-resource';
  const touch = async () => (await modernPost(port, req('tools/call', { name: 'fixture__touch_watched', arguments: {} }))).json?.result?.content?.[0]?.text;
  eq(await touch(), 'not subscribed', 'nobody subscribed yet');
  const l = listen(port, { resourceSubscriptions: [uri, 'nobody+x://y', 42] });
  await waitFor(() => l.frames().length >= 1, 5000, 20);
  eq(l.frames()[0]?.params?.notifications, { resourceSubscriptions: [uri] }, 'the ack lists only the URIs mcpd can route (no server "nobody", not a string)');
  await waitFor(async () => (await touch()) === 'updated', 5000, 100);
  await waitFor(() => l.frames().length >= 2, 5000, 20);
  const u = l.frames().find((f) => f.method === 'notifications/resources/updated');
  eq(u?.params?.uri, uri, 'resources/updated with the exposed URI');
  eq(u?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], l.id, 'tagged');
  l.close();
  await l.ended;
  await waitFor(async () => (await touch()) === 'not subscribed', 5000, 100);
  eq(await touch(), 'not subscribed', 'closing the stream unsubscribed upstream');
});

await step('HTTP: a quiet listen stream gets SSE keep-alive comments (every 15 s)', async () => {
  const l = listen(port, { toolsListChanged: true });
  await waitFor(() => l.frames().length >= 1, 5000, 20);
  const before = l.raw().length;
  await waitFor(() => l.raw().slice(before).includes(':\n\n'), 17000, 200);
  ok(l.raw().slice(before).includes(':\n\n'), 'a ":" comment came within 17 s', JSON.stringify(l.raw().slice(before)));
  eq(l.frames().length, 1, 'and no message');
  l.close();
  await l.ended;
});

await step('HTTP: a listen stream ends with an empty complete result when mcpd stops', async () => {
  const s2 = await startServe(cfgText, { name: 'modern-stop' });
  const l = listen(s2.port, { toolsListChanged: true });
  await waitFor(() => l.frames().length >= 1, 5000, 20);
  const stopped = s2.stopAndCheck('mcpd (listen at stop)');
  eq(await Promise.race([l.ended, sleep(10000).then(() => 'timeout')]), 'end', 'the stream ends');
  await stopped;
  const last = l.frames().at(-1);
  eq([last?.id, last?.result?.resultType], [l.id, 'complete'], 'the last message is the listen request\'s result');
  eq(last?.result?._meta?.['io.modelcontextprotocol/subscriptionId'], l.id, 'naming the subscription');
});

await step('HTTP: legacy sessions are unaffected next to modern requests', async () => {
  const { sid } = await rawSession(port, '2025-11-25');
  const h = { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
  const call = await post(port, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'fixture__echo', arguments: { text: 'legacy' } } }, h);
  eq(call.messages.at(-1)?.result?.content?.[0]?.text, 'legacy', 'legacy tools/call answers');
  ok(call.messages.at(-1)?.result?.resultType === undefined, 'without resultType');
  eq((await post(port, { jsonrpc: '2.0', id: 8, method: 'ping' }, h)).json?.result, {}, 'ping still works in a session');
  const d = await post(port, { jsonrpc: '2.0', id: 9, method: 'server/discover' }, h);
  eq(d.json?.result?.supportedVersions, ALL, 'server/discover inside a legacy session');
  const nf = await post(port, { jsonrpc: '2.0', id: 10, method: 'resources/read', params: { uri: 'fixture+test://nope' } }, h);
  eq(nf.json?.error?.code, -32002, 'legacy resource not found stays -32002');
  const noSid = await post(port, { jsonrpc: '2.0', id: 11, method: 'tools/list' }, { 'MCP-Protocol-Version': '2025-11-25' });
  eq(noSid.status, 400, 'a legacy request without a session is still 400');
});

await step('HTTP: transient sessions do not pile up', async () => {
  for (let i = 0; i < 20; i++) await modernPost(port, req('tools/list'));
  await sleep(200);
  const opened = (srv.log().match(/stateless tools\/list/g) || []).length;
  ok(opened >= 20, 'each request got a transient session', opened);
  const closed = (srv.log().match(/session=[0-9a-f]{32} closed/g) || []).length;
  ok(closed >= opened, 'and every one was closed', `${closed} closed, ${opened} opened`);
});

await step('stdio: server/discover and modern requests as raw lines', async () => {
  const io = startStdio('stdio');
  const lines = [
    { jsonrpc: '2.0', id: 1, method: 'server/discover' },
    req('tools/call', { name: 'fixture__echo', arguments: { text: 'over stdio' } }),
    req('ping'),
    req('tools/list', {}, { ...META, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' }),
    req('tools/list', {}, { 'io.modelcontextprotocol/protocolVersion': V }),
    req('tools/list'),
  ];
  const ids = lines.map((l) => l.id);
  for (const l of lines) io.send(l);
  const byId = () => new Map(io.out().split('\n').filter(Boolean).map((l) => JSON.parse(l)).map((m) => [m.id, m]));
  for (const t0 = Date.now(); byId().size < ids.length && Date.now() - t0 < 10000; ) await sleep(50);
  const got = byId();
  eq(got.get(1)?.result?.supportedVersions, ALL, 'server/discover before any initialize');
  eq(got.get(ids[1])?.result?.content?.[0]?.text, 'over stdio', 'modern tools/call answered');
  eq(got.get(ids[1])?.result?.resultType, 'complete', 'with resultType');
  eq(got.get(ids[2])?.error?.code, -32601, 'modern ping: -32601');
  eq(got.get(ids[3])?.error?.code, -32022, 'unsupported version: -32022');
  eq(got.get(ids[3])?.error?.data?.requested, '2099-01-01', 'data.requested');
  eq(got.get(ids[4])?.error?.code, -32602, 'missing clientCapabilities: -32602');
  ok(got.get(ids[5])?.result?.tools?.length > 0, 'modern tools/list answered');
  // then the legacy session on the same stream, unaffected
  io.send({ jsonrpc: '2.0', id: 50, method: 'tools/list' });
  io.send({ jsonrpc: '2.0', id: 51, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
  for (const t0 = Date.now(); !byId().has(51) && Date.now() - t0 < 10000; ) await sleep(50);
  eq(byId().get(50)?.error?.code, -32600, 'a legacy request before initialize is still refused');
  eq(byId().get(51)?.result?.protocolVersion, '2025-11-25', 'initialize still works');
  await io.stop('mcpd stdio');
});

await step('stdio: subscriptions/listen, ended by notifications/cancelled', async () => {
  const io = startStdio('stdio-listen');
  const msgs = () => io.out().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const lid = 'listen-1';
  io.send({ jsonrpc: '2.0', id: lid, method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: META } });
  await waitFor(() => msgs().length >= 1, 10000, 20);
  eq(msgs()[0]?.method, 'notifications/subscriptions/acknowledged', 'acknowledged first');
  eq(msgs()[0]?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], lid, 'tagged with the listen id');
  const trig = req('tools/call', { name: 'fixture__test_trigger_tool_change', arguments: {} });
  io.send(trig);
  await waitFor(() => msgs().some((m) => m.method === 'notifications/tools/list_changed'), 10000, 20);
  const lc = msgs().find((m) => m.method === 'notifications/tools/list_changed');
  eq(lc?.params?._meta?.['io.modelcontextprotocol/subscriptionId'], lid, 'tools/list_changed tagged');
  io.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: lid } });
  await sleep(200);
  const before = msgs().length;
  const trig2 = req('tools/call', { name: 'fixture__test_trigger_tool_change', arguments: {} });
  io.send(trig2);
  await waitFor(() => msgs().some((m) => m.id === trig2.id), 10000, 20);
  await sleep(200);
  const later = msgs().slice(before);
  ok(!later.some((m) => m.method === 'notifications/tools/list_changed'), 'no list_changed after the client cancelled', JSON.stringify(later).slice(0, 300));
  ok(!msgs().some((m) => m.id === lid), 'and no answer to the cancelled listen');
  await io.stop('mcpd stdio (listen)');
});

await step('HTTP with bots: modern requests need the bearer key', async () => {
  const db = path.join(tmp, 'bots.db');
  const botCfg = `store: ${db}
servers:
  demo:
    command: ${bin.demo}
bots:
  alice:
    bindings:
      - { resource: demo, tools: [echo] }
`;
  const cfg = writeFile('bots.yaml', botCfg);
  const c = run(bin.mcpd, ['bots', 'create', 'alice', '-c', cfg]);
  const key = c.stdout.trim();
  match(key, /^mk_[0-9a-f]{48}$/, 'a bot key');
  const b = await startServe(botCfg, { name: 'modern-bots' });
  const body = () => req('tools/call', { name: 'echo', arguments: { text: 'k' } });
  eq((await modernPost(b.port, body())).status, 401, 'without a key: 401');
  eq((await post(b.port, { jsonrpc: '2.0', id: 1, method: 'server/discover' })).status, 401, 'server/discover without a key: 401');
  const good = await modernPost(b.port, body(), { Authorization: `Bearer ${key}` });
  eq([good.status, good.json?.result?.content?.[0]?.text], [200, 'k'], 'with the key: answered');
  const list = await modernPost(b.port, req('tools/list'), { Authorization: `Bearer ${key}` });
  eq(list.json?.result?.tools?.map((t) => t.name), ['echo'], 'the bot sees only its bindings');
  const hidden = await modernPost(b.port, req('tools/call', { name: 'add', arguments: { a: 1, b: 2 } }), { Authorization: `Bearer ${key}` });
  eq(hidden.json?.error?.code, -32602, 'an unbound tool does not exist for it');
  await b.stopAndCheck('mcpd (bots)');
});

await step('HTTP with bots: a requestState is good for its own bot only, and only for limits.input_wait', async () => {
  const db = path.join(tmp, 'mrtr.db');
  const text = `store: ${db}
limits:
  input_wait: 1200ms
servers:
  private:
    command: ${bin.fixture}
    share: per-client
    timeout: 300ms
bots:
  alice:
    bindings:
      - { resource: private, tools: ["*"] }
  bob:
    bindings:
      - { resource: private, tools: ["*"] }
  carol:
    bindings:
      - { resource: private, tools: [test_elicitation] }
`;
  const cfg = writeFile('mrtr.yaml', text);
  const keys = {};
  for (const b of ['alice', 'bob', 'carol']) keys[b] = run(bin.mcpd, ['bots', 'create', b, '-c', cfg]).stdout.trim();
  const m = await startServe(text, { name: 'modern-mrtr' });
  const auth = (b) => ({ Authorization: `Bearer ${keys[b]}` });
  const caps = { ...META, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
  const call = { name: 'test_elicitation', arguments: { message: 'm' } };
  const ask = async () => (await modernPost(m.port, req('tools/call', call, caps), auth('alice'))).json?.result ?? {};
  const hidden = await modernPost(m.port, req('tools/call', { name: 'test_header_param', arguments: { region: 'x' } }), auth('carol'));
  const unknown = await modernPost(m.port, req('tools/call', { name: 'no_such_tool', arguments: { region: 'x' } }), auth('carol'));
  eq([hidden.status, hidden.json?.error?.code, hidden.json?.error?.message], [unknown.status, unknown.json?.error?.code, unknown.json?.error?.message.replace('no_such_tool', 'test_header_param')],
    'a hidden tool with x-mcp-header arguments: the unknown tool\'s error, not a header error');
  const r = await ask();
  const key = Object.keys(r.inputRequests ?? {})[0];
  eq(r.resultType, 'input_required', 'alice is asked for input');
  const answer = { [key]: { action: 'accept', content: { username: 'a', email: 'a@x' } } };
  const asBob = await modernPost(m.port, req('tools/call', { ...call, inputResponses: answer, requestState: r.requestState }, caps), auth('bob'));
  eq(asBob.json?.error?.code, -32602, 'bob cannot resume alice\'s call');
  const other = await modernPost(m.port, req('tools/call', { name: 'test_sampling', arguments: { prompt: 'x' }, inputResponses: answer, requestState: r.requestState }, caps), auth('alice'));
  eq(other.json?.error?.code, -32602, 'a retry naming another tool: -32602');
  await sleep(600); /* longer than the server's call timeout (300 ms), shorter than input_wait */
  const asAlice = await modernPost(m.port, req('tools/call', { ...call, inputResponses: answer, requestState: r.requestState }, caps), auth('alice'));
  eq(asAlice.json?.result?.resultType, 'complete', 'alice can, after the server\'s call timeout: a parked call waits input_wait');
  const r2 = await ask();
  await sleep(1700);
  const late = await modernPost(m.port, req('tools/call', { ...call, inputResponses: { [Object.keys(r2.inputRequests)[0]]: { action: 'decline' } }, requestState: r2.requestState }, caps), auth('alice'));
  eq(late.json?.error?.code, -32602, 'after input_wait (1200 ms) the call has ended: -32602');
  match(m.log(), /no retry came for its input_required answer within 1200 ms; the call ends/, 'logged');
  // the upstream fails while the call is parked: the retry gets that answer
  const r3 = await ask();
  const pid = upstreamPid(m.log(), 'private');
  ok(pid > 0, 'the parked call\'s instance', pid);
  process.kill(pid, 'SIGKILL');
  await waitFor(() => /upstream=private .*(exited|killed|signal)/.test(m.log()), 5000, 50);
  await sleep(100);
  const after = await modernPost(m.port, req('tools/call', { ...call, inputResponses: { [Object.keys(r3.inputRequests)[0]]: { action: 'decline' } }, requestState: r3.requestState }, caps), auth('alice'));
  eq([after.json?.id, after.json?.error?.code], [idn, -32000], 'the retry gets the call\'s failure (not a refused requestState), with its id');
  match(after.json?.error?.message ?? '', /private/, 'naming the upstream');
  await m.stopAndCheck('mcpd (mrtr)');
});

await step('mcpd stops cleanly', async () => {
  await srv.stopAndCheck('mcpd');
});

await finish();
