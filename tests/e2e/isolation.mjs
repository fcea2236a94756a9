// isolation.mjs - two SDK clients on one mcpd serve at the same time
// (streamable HTTP): what the upstreams send for one client reaches that
// client only.
//
// Upstreams: server-everything (stdio, share: per-client: one instance per
// client, which asks *its* client for sampling and roots), mcpd-fixture
// (share: shared: one process for both clients; mcpd remaps ids and progress
// tokens), and `relay`, mcpd-fixture with share: per-client (the control for
// the sampling/elicitation relay: its tools exist whatever the client declared).
//
// Each client has its own canned sampling reply, elicitation answer and roots;
// the handlers count their invocations. Checked: sampling and roots
// concurrently (each handler invoked exactly for its own client's requests,
// each result carries its own reply), progress only to the requester (also
// with colliding token values), subscription updates of a per-client instance.
import fs from 'node:fs';
import { bin, ok, eq, step, finish, startServe, sdk, texts, sleep, waitFor, recordWire, settle } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, types } = await sdk();

if (!bin.everything || !fs.existsSync(bin.everything)) {
  ok(false, `server-everything present at ${bin.everything}`);
  await finish();
}

const srv = await startServe(`servers:
  everything:
    command: ${bin.node}
    args: [${JSON.stringify(bin.everything)}, stdio]
    share: per-client
  fixture:
    command: ${bin.fixture}
    share: shared
  relay:
    command: ${bin.fixture}
    share: per-client
`, { name: 'isolation', essential: true });
console.log(`mcpd pid ${srv.pid} on ${srv.url}`);

const reply = (who) => ({ role: 'assistant', content: { type: 'text', text: `reply-of-${who}` }, model: `model-${who}`, stopReason: 'endTurn' });
const rootsOf = (who) => [{ uri: `file:///srv/${who}`, name: `root-of-${who}` }];

function newClient(who) {
  const client = new Client({ name: `mcpd-e2e-isolation-${who}`, version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const c = { who, client, sampling: [], elicitation: [], roots: 0, updated: [] };
  client.setRequestHandler(types.CreateMessageRequestSchema, async (req) => {
    c.sampling.push(req.params);
    await sleep(30); // keep several relayed requests in flight at once
    return reply(who);
  });
  client.setRequestHandler(types.ElicitRequestSchema, async (req) => {
    c.elicitation.push(req.params);
    return { action: 'accept', content: { username: `user-${who}`, email: `${who}@example.com` } };
  });
  client.setRequestHandler(types.ListRootsRequestSchema, async () => {
    c.roots++;
    return { roots: rootsOf(who) };
  });
  client.setNotificationHandler(types.ResourceUpdatedNotificationSchema, (n) => c.updated.push(n.params));
  client.onerror = () => {}; // progress for tokens the SDK did not mint (set by hand below) is reported here
  return c;
}

const A = newClient('alice');
const B = newClient('bob');
const both = [A, B];

await step('connect two clients at once', async () => {
  await Promise.all(both.map(async (c) => {
    c.transport = new StreamableHTTPClientTransport(new URL(srv.url));
    await c.client.connect(c.transport);
    c.wire = recordWire(c.transport);
  }));
  ok(A.transport.sessionId && B.transport.sessionId && A.transport.sessionId !== B.transport.sessionId,
    `two sessions (${A.transport.sessionId}, ${B.transport.sessionId})`);
  const names = (await A.client.listTools()).tools.map((t) => t.name);
  for (const n of ['everything__trigger-sampling-request', 'everything__get-roots-list', 'everything__trigger-long-running-operation',
    'fixture__test_tool_with_progress', 'relay__test_sampling'])
    ok(names.includes(n), `tools/list has ${n}`);
});

await step('per-client instances: server-everything asks each client for roots once, at its start', async () => {
  // the first call starts each client's instance; it asks for roots 350 ms after initialized
  const r = await Promise.all(both.map((c) => settle(() => c.client.callTool({ name: 'everything__echo', arguments: { message: c.who } }))));
  eq(r.map((x) => texts(x.result)), [['Echo: alice'], ['Echo: bob']], 'everything__echo answers each client');
  await waitFor(() => A.roots >= 1 && B.roots >= 1, 5000, 50);
  await sleep(300);
  eq([A.roots, B.roots], [1, 1], 'roots/list handler invocations (alice, bob): each instance asked its own client once');
});

await step('sampling concurrently: each client answers only its own instance\'s requests', async () => {
  const calls = [];
  for (let i = 0; i < 2; i++)
    for (const c of both)
      calls.push(settle(() => c.client.callTool({ name: 'everything__trigger-sampling-request',
        arguments: { prompt: `${c.who}-${i}`, maxTokens: 10 } }, undefined, { timeout: 15000 })).then((r) => ({ c, i, r })));
  const res = await Promise.all(calls);
  const errs = res.filter(({ r }) => r.error);
  if (!ok(errs.length === 0, '4 concurrent everything__trigger-sampling-request calls answered', errs.map(({ c, r }) => `${c.who}: ${r.error.message}`).join('\n')))
    return;
  for (const { c, i, r } of res) {
    const t = texts(r.result)[0] ?? '';
    let parsed = null;
    try {
      parsed = JSON.parse(t.replace(/^LLM sampling result: \n/, ''));
    } catch {}
    eq(parsed, reply(c.who), `${c.who} call ${i}: result carries ${c.who}'s own canned reply`);
  }
  for (const c of both) {
    eq(c.sampling.length, 2, `${c.who}: sampling handler invocations`);
    eq(c.sampling.map((p) => p.messages?.[0]?.content?.text).sort(),
      [0, 1].map((i) => `Resource trigger-sampling-request context: ${c.who}-${i}`),
      `${c.who}: sampling requests are exactly ${c.who}'s prompts`);
  }
});

await step('roots concurrently: get-roots-list returns each client\'s own roots', async () => {
  const res = await Promise.all(both.map((c) => settle(() => c.client.callTool({ name: 'everything__get-roots-list', arguments: {} }))));
  both.forEach((c, k) => {
    const t = texts(res[k].result)[0] ?? res[k].error?.message ?? '';
    const [root] = rootsOf(c.who);
    ok(t.startsWith(`Current MCP Roots (1 total):\n\n1. ${root.name}\n   URI: ${root.uri}\n\n`), `${c.who}: get-roots-list shows ${root.uri} only`, t);
  });
});

await step('control: sampling and elicitation relayed by per-client mcpd-fixture instances, concurrently', async () => {
  const s0 = both.map((c) => c.sampling.length);
  const e0 = both.map((c) => c.elicitation.length);
  const calls = [];
  for (let i = 0; i < 3; i++) {
    for (const c of both) {
      calls.push(settle(() => c.client.callTool({ name: 'relay__test_sampling', arguments: { prompt: `${c.who}-ctl-${i}` } },
        undefined, { timeout: 15000 })).then((r) => ({ c, kind: 's', r })));
      calls.push(settle(() => c.client.callTool({ name: 'relay__test_elicitation', arguments: { message: `${c.who}-ask-${i}` } },
        undefined, { timeout: 15000 })).then((r) => ({ c, kind: 'e', r })));
    }
  }
  const res = await Promise.all(calls);
  const wrong = res.filter(({ c, kind, r }) => {
    const t = texts(r.result)[0];
    return kind === 's' ? t !== `LLM response: reply-of-${c.who}`
      : t !== `User response: action=accept, content={"username":"user-${c.who}","email":"${c.who}@example.com"}`;
  }).map(({ c, kind, r }) => `${c.who}/${kind}: ${texts(r.result)[0] ?? r.error?.message}`);
  eq(wrong, [], '12 concurrent relayed calls: every result carries its own client\'s answer');
  both.forEach((c, k) => {
    eq(c.sampling.slice(s0[k]).map((p) => p.messages?.[0]?.content?.text).sort(), [0, 1, 2].map((i) => `${c.who}-ctl-${i}`),
      `${c.who}: sampling handler saw exactly its own 3 prompts`);
    eq(c.elicitation.slice(e0[k]).map((p) => p.message).sort(), [0, 1, 2].map((i) => `${c.who}-ask-${i}`),
      `${c.who}: elicitation handler saw exactly its own 3 messages`);
  });
});

// tools/call with a progress token chosen here (the SDK would use its own ids,
// which are the same numbers in both clients anyway); wire-level record.
function callWithToken(c, name, args, token) {
  return settle(() => c.client.request({ method: 'tools/call', params: { name, arguments: args, _meta: { progressToken: token } } },
    types.CallToolResultSchema, { timeout: 20000 }));
}
function progressSeen(c, since) {
  return c.wire.in.slice(since).filter((m) => m.method === 'notifications/progress').map((m) => m.params);
}

await step('progress, per-client upstream: concurrent long-running operations, the same token value in both', async () => {
  const since = both.map((c) => c.wire.in.length);
  const steps = { alice: 3, bob: 4 };
  const res = await Promise.all(both.map((c) => callWithToken(c, 'everything__trigger-long-running-operation',
    { duration: 0.4 * steps[c.who] / 3, steps: steps[c.who] }, 'same-token')));
  both.forEach((c, k) => {
    ok(!res[k].error, `${c.who}: long-running operation answered`, res[k].error?.message);
    eq(progressSeen(c, since[k]).map((p) => [p.progressToken, p.progress, p.total]),
      Array.from({ length: steps[c.who] }, (_, i) => ['same-token', i + 1, steps[c.who]]),
      `${c.who}: exactly its own ${steps[c.who]} progress notifications`);
  });
});

await step('progress, shared upstream: concurrent fixture__test_tool_with_progress', async () => {
  // distinct tokens
  let since = both.map((c) => c.wire.in.length);
  let res = await Promise.all(both.map((c) => callWithToken(c, 'fixture__test_tool_with_progress', {}, `tok-${c.who}`)));
  both.forEach((c, k) => {
    ok(!res[k].error, `${c.who}: test_tool_with_progress answered`, res[k].error?.message);
    const got = progressSeen(c, since[k]);
    eq([...new Set(got.map((p) => p.progressToken))], [`tok-${c.who}`], `${c.who}: progress notifications carry only its own token`);
    ok(got.length >= 3, `${c.who}: >= 3 progress notifications (got ${got.length})`);
  });
  const counts = both.map((c, k) => progressSeen(c, since[k]).length);
  // colliding token values: mcpd's own upstream tokens keep them apart
  since = both.map((c) => c.wire.in.length);
  res = await Promise.all(both.map((c) => callWithToken(c, 'fixture__test_tool_with_progress', {}, 1)));
  both.forEach((c, k) => {
    ok(!res[k].error, `${c.who}: test_tool_with_progress (token 1) answered`, res[k].error?.message);
    const got = progressSeen(c, since[k]);
    eq(got.length, counts[k], `${c.who}: token 1 in both clients: still exactly its own ${counts[k]} notifications`);
    ok(got.every((p, i) => p.progressToken === 1 && (i === 0 || p.progress > got[i - 1].progress)), `${c.who}: token 1, increasing`,
      JSON.stringify(got));
  });
});

await step('subscriptions on a per-client upstream: updates of one client\'s instance reach that client', async () => {
  const uri = 'everything+demo://resource/static/document/features.md';
  for (const c of both) {
    const r = await settle(() => c.client.subscribeResource({ uri }));
    eq(r.result, {}, `${c.who}: resources/subscribe ${uri}`);
  }
  const u0 = both.map((c) => c.updated.length);
  // only bob's instance starts sending updates (one round at once, then every 5 s)
  const t = await settle(() => B.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
  ok(/^Started simulated resource updated/.test(texts(t.result)[0] ?? ''), 'bob: toggle-subscriber-updates on', texts(t.result)[0]);
  await waitFor(() => B.updated.length > u0[1], 3000, 50);
  await sleep(300);
  eq(B.updated.slice(u0[1]).map((u) => u.uri), [uri], 'bob: receives the update from his instance');
  eq(A.updated.slice(u0[0]).map((u) => u.uri), [], 'alice: receives nothing from bob\'s instance');
  await settle(() => B.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
  // and the other way round
  const u1 = both.map((c) => c.updated.length);
  const t2 = await settle(() => A.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
  ok(/^Started simulated resource updated/.test(texts(t2.result)[0] ?? ''), 'alice: toggle-subscriber-updates on', texts(t2.result)[0]);
  await waitFor(() => A.updated.length > u1[0], 3000, 50);
  await sleep(300);
  eq(A.updated.slice(u1[0]).map((u) => u.uri), [uri], 'alice: receives the update from her instance');
  eq(B.updated.slice(u1[1]).map((u) => u.uri), [], 'bob: receives nothing from alice\'s instance');
  await settle(() => A.client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} }));
  for (const c of both) {
    const r = await settle(() => c.client.unsubscribeResource({ uri }));
    eq(r.result, {}, `${c.who}: resources/unsubscribe`);
  }
});

await step('close both sessions', async () => {
  for (const c of both) {
    await settle(() => c.transport.terminateSession());
    await c.client.close();
  }
  await srv.stopAndCheck('mcpd serve');
});

await finish();
