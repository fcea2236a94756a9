// features.mjs - the MCP features mcpd proxies besides tools, with the official
// SDK client over stdio (`mcpd stdio`), legacy HTTP+SSE (GET /sse + POST
// /message) and streamable HTTP (`mcpd serve`): the same checks three times.
//
// Upstreams: server-everything (stdio, share: per-client: each client gets its
// own instance, which sees the client's capabilities and whose sampling,
// elicitation and roots requests mcpd relays to that client), mcpd-fixture
// (shared; FIXTURE_LOG records what reached it), and `relay`, a second
// mcpd-fixture with share: per-client, the control for the relay path
// (its test_sampling/test_elicitation exist whatever the client declares).
//
// Checked: server->client sampling, elicitation, roots; progress;
// cancellation reaching the upstream with the upstream's id; logging with
// logging/setLevel; resources (list, text, blob, templates, read through a
// template); subscriptions (resources/updated, unsubscribe); prompts (list,
// get with arguments, URIs in prompt results namespaced); completion (prompt
// argument, with context, template variable).
import fs from 'node:fs';
import path from 'node:path';
import {
  bin, ok, eq, match, step, finish, tmp, writeFile, startServe, sdk, texts, track, checkCleanExit,
  sleep, waitFor, recordWire, settle,
} from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport, SSEClientTransport, types } = await sdk();

if (!bin.everything || !fs.existsSync(bin.everything)) {
  ok(false, `server-everything present at ${bin.everything}`);
  await finish();
}
const docsDir = path.join(path.dirname(bin.everything), 'docs');

const config = (fixtureLog) => `# three upstreams: every name is prefixed "<server>__", every URI "<server>+"
servers:
  everything:
    command: ${bin.node}
    args: [${JSON.stringify(bin.everything)}, stdio]
    share: per-client
  fixture:
    command: ${bin.fixture}
    env: { FIXTURE_NAME: e2e-fixture, FIXTURE_LOG: ${JSON.stringify(fixtureLog)} }
  relay:
    command: ${bin.fixture}
    share: per-client
`;

const SAMPLING_REPLY = (label) => ({ role: 'assistant', content: { type: 'text', text: `canned reply for ${label}` },
  model: 'e2e-model', stopReason: 'endTurn' });
const ROOTS = (label) => [{ uri: `file:///tmp/mcpd-e2e-${label}`, name: `root-${label}` }];
// mcpd-fixture's test://static-binary (tests/conformance/fixture_server.c fx_png_b64)
const FIXTURE_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mNQaHgAAAJEAYFPPxUdAAAAAElFTkSuQmCC';
const ELICIT_CONTENT = (label) => ({ name: `Ada ${label}`, check: true, integer: 7 });

// A client that declares sampling, elicitation (form) and roots and answers them.
function newClient(label) {
  const client = new Client({ name: `mcpd-e2e-features-${label}`, version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const seen = { sampling: [], elicitation: [], roots: 0, logs: [], updated: [] };
  client.setRequestHandler(types.CreateMessageRequestSchema, async (req) => {
    seen.sampling.push(req.params);
    return SAMPLING_REPLY(label);
  });
  client.setRequestHandler(types.ElicitRequestSchema, async (req) => {
    seen.elicitation.push(req.params);
    if (req.params?.requestedSchema?.properties?.username) // mcpd-fixture's form
      return { action: 'accept', content: { username: `user-${label}`, email: `${label}@example.com` } };
    return { action: 'accept', content: ELICIT_CONTENT(label) };
  });
  client.setRequestHandler(types.ListRootsRequestSchema, async () => {
    seen.roots++;
    return { roots: ROOTS(label) };
  });
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => seen.logs.push(n.params));
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => seen.updated.push(n.params));
  return { client, seen };
}

// A JSON-RPC request through the client; { result } or { error }.
const request = (client, method, params, opts = {}) =>
  settle(() => client.request({ method, params }, types.ResultSchema, { timeout: 15000, ...opts }));

function fixtureLines(logPath) {
  try {
    return fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { unparsed: l };
      }
    });
  } catch {
    return [];
  }
}

async function exercise(label, client, seen, wire, fixtureLog) {
  const L = (s) => `${label}: ${s}`;

  // ---- discovery -----------------------------------------------------------------
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  console.log(`     ${label}: ${names.length} tools; everything__*: ${names.filter((n) => n.startsWith('everything__')).join(', ')}`);
  // server-everything 2026.8.31 registers these for every client, and the three
  // trigger/get tools for clients that declare sampling/elicitation/roots (as this one does)
  for (const n of ['echo', 'get-sum', 'trigger-long-running-operation', 'toggle-simulated-logging',
    'toggle-subscriber-updates', 'trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list']) {
    ok(names.includes(`everything__${n}`), L(`tools/list has everything__${n}`));
  }
  for (const n of ['fixture__sleep', 'fixture__test_tool_with_logging', 'relay__test_sampling', 'relay__test_elicitation'])
    ok(names.includes(n), L(`tools/list has ${n}`));

  // ---- sampling --------------------------------------------------------------------
  sampling: {
    const before = seen.sampling.length;
    const r = await settle(() => client.callTool({ name: 'everything__trigger-sampling-request',
      arguments: { prompt: `haiku for ${label}`, maxTokens: 33 } }, undefined, { timeout: 15000 }));
    if (!ok(!r.error, L('everything__trigger-sampling-request answered'), r.error?.message)) break sampling;
    eq(seen.sampling.length - before, 1, L('sampling/createMessage handler invocations'));
    const p = seen.sampling[before];
    eq(p && { text: p.messages?.[0]?.content?.text, maxTokens: p.maxTokens, systemPrompt: p.systemPrompt },
      { text: `Resource trigger-sampling-request context: haiku for ${label}`, maxTokens: 33, systemPrompt: 'You are a helpful test server.' },
      L('sampling request as server-everything sent it'));
    const t = texts(r.result)[0] ?? '';
    let parsed = null;
    try {
      parsed = JSON.parse(t.replace(/^LLM sampling result: \n/, ''));
    } catch {}
    ok(t.startsWith('LLM sampling result: \n'), L('tool result starts "LLM sampling result:"'), t);
    eq(parsed, SAMPLING_REPLY(label), L('tool result carries the client\'s canned sampling reply'));
  }
  {
    // control: the same relay with a per-client mcpd-fixture
    const before = seen.sampling.length;
    const r = await settle(() => client.callTool({ name: 'relay__test_sampling', arguments: { prompt: `ctl ${label}` } },
      undefined, { timeout: 15000 }));
    eq(texts(r.result), [`LLM response: canned reply for ${label}`], L('control relay__test_sampling result'));
    eq(seen.sampling.length - before, 1, L('control: sampling handler invocations'));
    eq(seen.sampling[before]?.messages?.[0]?.content?.text, `ctl ${label}`, L('control: sampling prompt'));
  }

  // ---- elicitation -------------------------------------------------------------------
  elicitation: {
    const before = seen.elicitation.length;
    const r = await settle(() => client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} },
      undefined, { timeout: 15000 }));
    if (!ok(!r.error, L('everything__trigger-elicitation-request answered'), r.error?.message)) break elicitation;
    eq(seen.elicitation.length - before, 1, L('elicitation/create handler invocations'));
    const p = seen.elicitation[before];
    eq(p && { message: p.message, required: p.requestedSchema?.required },
      { message: 'Please provide inputs for the following fields:', required: ['name'] }, L('elicitation request as sent'));
    const c = ELICIT_CONTENT(label);
    eq(texts(r.result).slice(0, 2), ['✅ User provided the requested information!',
      `User inputs:\n- Name: ${c.name}\n- Agreed to terms: true\n- Favorite Integer: 7`], L('tool result shows the client\'s answer'));
  }
  {
    const before = seen.elicitation.length;
    const r = await settle(() => client.callTool({ name: 'relay__test_elicitation', arguments: { message: `hi ${label}` } },
      undefined, { timeout: 15000 }));
    eq(texts(r.result), [`User response: action=accept, content={"username":"user-${label}","email":"${label}@example.com"}`],
      L('control relay__test_elicitation result'));
    eq(seen.elicitation.length - before, 1, L('control: elicitation handler invocations'));
  }

  // ---- roots --------------------------------------------------------------------------
  roots: {
    const r = await settle(() => client.callTool({ name: 'everything__get-roots-list', arguments: {} }, undefined, { timeout: 15000 }));
    if (!ok(!r.error, L('everything__get-roots-list answered'), r.error?.message)) break roots;
    const [root] = ROOTS(label);
    const t = texts(r.result)[0] ?? '';
    ok(t.startsWith(`Current MCP Roots (1 total):\n\n1. ${root.name}\n   URI: ${root.uri}\n\n`),
      L(`get-roots-list returns the client's root ${root.uri}`), t);
    ok(seen.roots >= 1, L(`roots/list handler invoked (${seen.roots} times)`));
  }

  // ---- progress -----------------------------------------------------------------------
  {
    const progress = [];
    const r = await settle(() => client.callTool({ name: 'everything__trigger-long-running-operation',
      arguments: { duration: 0.6, steps: 3 } }, undefined, { onprogress: (p) => progress.push(p), timeout: 15000 }));
    eq(texts(r.result), ['Long running operation completed. Duration: 0.6 seconds, Steps: 3.'], L('long-running operation result'));
    const req = wire.out.findLast((m) => m.method === 'tools/call' && m.params?.name === 'everything__trigger-long-running-operation');
    const token = req?.params?._meta?.progressToken;
    ok(token !== undefined, L(`request carried _meta.progressToken ${JSON.stringify(token)}`));
    const respIdx = wire.in.findIndex((m) => req && m.id === req.id && (m.result || m.error));
    const got = wire.in.filter((m, i) => m.method === 'notifications/progress' && m.params?.progressToken === token && i < respIdx)
      .map((m) => ({ progress: m.params.progress, total: m.params.total }));
    eq(got, [{ progress: 1, total: 3 }, { progress: 2, total: 3 }, { progress: 3, total: 3 }],
      L('notifications/progress with the client\'s token, before the response'));
    ok(progress.length >= 2, L(`onprogress handler called (${progress.length} times)`));
  }

  // ---- cancellation --------------------------------------------------------------------
  {
    const ac = new AbortController();
    const t0 = Date.now();
    const pending = settle(() => client.callTool({ name: 'fixture__sleep', arguments: { ms: 4000 } }, undefined,
      { signal: ac.signal, timeout: 15000 }));
    // wait until the call reached the fixture, then abort
    const sent = await waitFor(() => fixtureLines(fixtureLog).findLast((m) => m.method === 'tools/call' && m.params?.name === 'sleep'), 5000, 20);
    ac.abort('e2e abort');
    const r = await pending;
    ok(r.error && Date.now() - t0 < 3000, L(`aborted call rejected at once (${r.ms} ms)`), r.error?.message ?? JSON.stringify(r.result));
    const req = wire.out.findLast((m) => m.method === 'tools/call' && m.params?.name === 'fixture__sleep');
    const note = wire.out.findLast((m) => m.method === 'notifications/cancelled');
    ok(req && note && note.params?.requestId === req.id, L(`client sent notifications/cancelled for its id ${req?.id}`));
    ok(sent && Number.isInteger(sent.id), L(`fixture saw tools/call sleep with upstream id ${sent?.id}`));
    const cancelled = await waitFor(() => fixtureLines(fixtureLog).find((m) => m.method === 'notifications/cancelled' &&
      sent && m.params?.requestId === sent.id), 3000, 50);
    ok(!!cancelled, L(`mcpd forwarded notifications/cancelled with requestId ${sent?.id} (the fixture's id) to the fixture`),
      JSON.stringify(fixtureLines(fixtureLog).filter((m) => m.method === 'notifications/cancelled')));
    const e = await settle(() => client.callTool({ name: 'fixture__echo', arguments: { text: 'after cancel' } }));
    eq(texts(e.result), ['after cancel'], L('a call after the cancellation works'));
  }

  // ---- logging -------------------------------------------------------------------------
  {
    let r = await request(client, 'logging/setLevel', { level: 'debug' });
    eq(r.result, {}, L('logging/setLevel debug answered {}'));
    let before = seen.logs.length;
    r = await settle(() => client.callTool({ name: 'everything__toggle-simulated-logging', arguments: {} }));
    match(texts(r.result)[0], /^Started simulated, random-leveled logging/, L('toggle-simulated-logging on'));
    await waitFor(() => seen.logs.length > before, 3000, 50);
    const got = seen.logs.slice(before);
    ok(got.length >= 1 && got.every((m) => /(-level message|level-message)/.test(String(m.data))),
      L(`notifications/message from server-everything received (${got.length}): ${JSON.stringify(got[0]?.data)}`), JSON.stringify(got));
    r = await settle(() => client.callTool({ name: 'everything__toggle-simulated-logging', arguments: {} }));
    match(texts(r.result)[0], /^Stopped simulated logging/, L('toggle-simulated-logging off'));

    // level filter: mcpd-fixture sends three info messages
    r = await request(client, 'logging/setLevel', { level: 'warning' });
    before = seen.logs.length;
    await settle(() => client.callTool({ name: 'fixture__test_tool_with_logging', arguments: {} }));
    await sleep(300);
    eq(seen.logs.length - before, 0, L('level warning: info messages of fixture__test_tool_with_logging filtered'));
    r = await request(client, 'logging/setLevel', { level: 'info' });
    before = seen.logs.length;
    await settle(() => client.callTool({ name: 'fixture__test_tool_with_logging', arguments: {} }));
    await waitFor(() => seen.logs.length - before >= 3, 2000, 50);
    eq(seen.logs.slice(before).map((m) => m.level), ['info', 'info', 'info'], L('level info: the three info messages arrive'));
  }

  // ---- resources -----------------------------------------------------------------------
  {
    const docs = fs.readdirSync(docsDir).filter((n) => fs.statSync(path.join(docsDir, n)).isFile()).sort();
    const r = await request(client, 'resources/list', {});
    const uris = (r.result?.resources ?? []).map((x) => x.uri);
    eq(uris.filter((u) => u.startsWith('everything+')).sort(),
      docs.map((n) => `everything+demo://resource/static/document/${encodeURIComponent(n)}`).sort(),
      L('resources/list: server-everything\'s static documents, namespaced'));
    eq(uris.filter((u) => u.startsWith('fixture+')).sort(), ['fixture+test://static-binary', 'fixture+test://static-text', 'fixture+test://watched-resource'],
      L('resources/list: the fixture\'s resources, namespaced'));
    const uri = 'everything+demo://resource/static/document/instructions.md';
    const text = await request(client, 'resources/read', { uri });
    eq(text.result?.contents, [{ uri, mimeType: 'text/markdown', text: fs.readFileSync(path.join(docsDir, 'instructions.md'), 'utf8') }],
      L('resources/read text: instructions.md, byte-exact, URI in exposed form'));
    const blob = await request(client, 'resources/read', { uri: 'fixture+test://static-binary' });
    const b = blob.result?.contents?.[0];
    eq(b, { uri: 'fixture+test://static-binary', mimeType: 'image/png', blob: FIXTURE_PNG }, L('resources/read blob (the fixture\'s PNG, exact)'));
    const tl = await request(client, 'resources/templates/list', {});
    const tpls = (tl.result?.resourceTemplates ?? []).map((t) => t.uriTemplate).sort();
    eq(tpls, ['everything+demo://resource/dynamic/blob/{resourceId}', 'everything+demo://resource/dynamic/text/{resourceId}',
      'fixture+test://template/{id}/data', 'relay+test://template/{id}/data'], L('resources/templates/list (namespaced)'));
    const viaT = await request(client, 'resources/read', { uri: 'everything+demo://resource/dynamic/text/7' });
    const c = viaT.result?.contents?.[0];
    eq(c?.uri, 'everything+demo://resource/dynamic/text/7', L('read via template: URI'));
    match(c?.text, /^Resource 7: This is a plaintext resource created at /, L('read via template: text'));
    const viaB = await request(client, 'resources/read', { uri: 'everything+demo://resource/dynamic/blob/3' });
    const cb = viaB.result?.contents?.[0];
    match(cb?.blob ? Buffer.from(cb.blob, 'base64').toString() : undefined, /^Resource 3: This is a base64 blob created at /,
      L('read via blob template: base64 payload'));
    const miss = await request(client, 'resources/read', { uri: 'nobody+x://y' });
    eq(miss.error?.code, -32002, L('resources/read of an unknown server\'s URI: error code'));
  }

  // ---- subscriptions -------------------------------------------------------------------
  {
    const uri = 'everything+demo://resource/static/document/features.md';
    let r = await request(client, 'resources/subscribe', { uri });
    eq(r.result, {}, L('resources/subscribe answered {}'));
    const before = seen.updated.length;
    r = await settle(() => client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
    match(texts(r.result)[0], /^Started simulated resource updated notifications/, L('toggle-subscriber-updates on'));
    await waitFor(() => seen.updated.length > before, 7000, 50);
    const got = seen.updated.slice(before);
    ok(got.length >= 1, L(`notifications/resources/updated received within 7 s (${got.length})`));
    eq([...new Set(got.map((u) => u.uri))], [uri], L('updated notifications name the subscribed URI, exposed form'));
    r = await settle(() => client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
    match(texts(r.result)[0], /^Stopped simulated resource updates/, L('toggle-subscriber-updates off'));
    r = await request(client, 'resources/unsubscribe', { uri });
    eq(r.result, {}, L('resources/unsubscribe answered {}'));
    // after unsubscribing, turning updates on (which sends one round at once) delivers nothing
    const after = seen.updated.length;
    await settle(() => client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
    await sleep(700);
    await settle(() => client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
    eq(seen.updated.length - after, 0, L('no resources/updated after unsubscribe'));
  }

  // ---- prompts ---------------------------------------------------------------------------
  {
    const r = await request(client, 'prompts/list', {});
    const pn = (r.result?.prompts ?? []).map((p) => p.name);
    eq(pn.filter((n) => n.startsWith('everything__')).sort(),
      ['everything__args-prompt', 'everything__completable-prompt', 'everything__resource-prompt', 'everything__simple-prompt'],
      L('prompts/list: server-everything\'s prompts, prefixed'));
    ok(pn.includes('fixture__test_prompt_with_arguments'), L('prompts/list has fixture__test_prompt_with_arguments'));
    const args = (r.result?.prompts ?? []).find((p) => p.name === 'everything__args-prompt')?.arguments;
    eq(args?.map((a) => [a.name, !!a.required]), [['city', true], ['state', false]], L('args-prompt arguments'));
    const g = await request(client, 'prompts/get', { name: 'everything__args-prompt', arguments: { city: 'Paris', state: 'Texas' } });
    eq(g.result?.messages, [{ role: 'user', content: { type: 'text', text: "What's weather in Paris, Texas?" } }],
      L('prompts/get with arguments'));
    const rp = await request(client, 'prompts/get', { name: 'everything__resource-prompt', arguments: { resourceType: 'Text', resourceId: '2' } });
    eq(rp.result?.messages?.[1]?.content?.resource?.uri, 'everything+demo://resource/dynamic/text/2',
      L('prompts/get: embedded resource URI in exposed form'));
    const bad = await request(client, 'prompts/get', { name: 'everything__nope', arguments: {} });
    eq(bad.error?.code, -32602, L('prompts/get of an unknown prompt: -32602'));
  }

  // ---- completion ------------------------------------------------------------------------
  {
    let r = await request(client, 'completion/complete', { ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
      argument: { name: 'department', value: 'S' } });
    eq(r.result?.completion?.values, ['Sales', 'Support'], L('completion/complete on a prompt argument'));
    r = await request(client, 'completion/complete', { ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
      argument: { name: 'name', value: 'A' }, context: { arguments: { department: 'Engineering' } } });
    eq(r.result?.completion?.values, ['Alice'], L('completion/complete with context.arguments'));
    r = await request(client, 'completion/complete', { ref: { type: 'ref/resource', uri: 'everything+demo://resource/dynamic/text/{resourceId}' },
      argument: { name: 'resourceId', value: '5' } });
    eq(r.result?.completion?.values, ['5'], L('completion/complete on a resource template variable'));
  }

  // server-everything asks its client for roots/list by itself 350 ms after
  // initialized: by now this client's instance has done so through mcpd
  ok(seen.roots >= 1, L(`server-everything's own roots/list (at instance start) reached this client's handler (${seen.roots} times)`));
}

// ---- the three transports ---------------------------------------------------------------

await step('stdio: StdioClientTransport launching mcpd stdio', async () => {
  const fixtureLog = path.join(tmp, 'fixture-stdio.log');
  const cfg = writeFile('stdio.yaml', config(fixtureLog));
  const transport = new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg, '--log-level', 'debug'],
    stderr: 'pipe', env: { ...process.env } });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const { client, seen } = newClient('stdio');
  await client.connect(transport);
  const wire = recordWire(transport);
  const child = transport._process;
  track(child);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  try {
    await exercise('stdio', client, seen, wire, fixtureLog);
  } finally {
    await client.close();
  }
  const r = await Promise.race([exited, sleep(15000).then(() => null)]);
  ok(r !== null, 'stdio: mcpd exited after stdin closed');
  if (r) checkCleanExit('stdio: mcpd', r.code, r.signal, stderr);
  if (process.env.MCPD_E2E_KEEP === '1') fs.writeFileSync(path.join(tmp, 'mcpd-stdio.log'), stderr);
});

await step('sse: SSEClientTransport to mcpd serve (GET /sse, POST /message)', async () => {
  const fixtureLog = path.join(tmp, 'fixture-sse.log');
  const srv = await startServe(config(fixtureLog), { name: 'sse' });
  const { client, seen } = newClient('sse');
  const transport = new SSEClientTransport(new URL(`http://127.0.0.1:${srv.port}/sse`));
  try {
    await client.connect(transport);
    const wire = recordWire(transport);
    await exercise('sse', client, seen, wire, fixtureLog);
    await client.close();
  } finally {
    await srv.stopAndCheck('sse: mcpd serve');
  }
});

await step('http: StreamableHTTPClientTransport to mcpd serve', async () => {
  const fixtureLog = path.join(tmp, 'fixture-http.log');
  const srv = await startServe(config(fixtureLog), { name: 'http' });
  const { client, seen } = newClient('http');
  const transport = new StreamableHTTPClientTransport(new URL(srv.url));
  try {
    await client.connect(transport);
    const wire = recordWire(transport);
    await exercise('http', client, seen, wire, fixtureLog);
    await transport.terminateSession();
    await client.close();
  } finally {
    await srv.stopAndCheck('http: mcpd serve');
  }
});

await finish();
