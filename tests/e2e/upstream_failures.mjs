// upstream_failures.mjs - an upstream that crashes mid-call and one that hangs,
// through mcpd serve with the SDK client over HTTP, while a second upstream
// (mcpd-demo-server) keeps answering.
import fs from 'node:fs';
import path from 'node:path';
import { bin, ok, eq, match, step, finish, tmp, startServe, sdk, texts, waitFor, upstreamPid, pidAlive, sleep } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, types } = await sdk();
const fixtureLog = path.join(tmp, 'fixture.log');

const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
    timeout: 1s
    env: { FIXTURE_LOG: ${JSON.stringify(fixtureLog)} }
  demo:
    command: ${bin.demo}
`, { name: 'upstream_failures', essential: true });
console.log(`mcpd pid ${srv.pid} on ${srv.url}`);

const client = new Client({ name: 'mcpd-e2e-failures', version: '1.0.0' }, { capabilities: {} });
const transport = new StreamableHTTPClientTransport(new URL(srv.url));
await step('connect', async () => {
  await client.connect(transport);
  ok(!!transport.sessionId, `SDK client connected (session ${transport.sessionId})`);
});

// tools/call that resolves to { result } or { error } and never throws; ms = duration.
async function call(name, args = {}, timeout = 15000) {
  const t0 = Date.now();
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout });
    return { result, ms: Date.now() - t0 };
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
}

async function demoAnswers(label) {
  const r = await call('demo__reverse', { text: label });
  eq(texts(r.result), [label.split('').reverse().join('')], `demo__reverse answered (${label})`);
}

await step('baseline', async () => {
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['fixture__crash', 'fixture__hang', 'fixture__test_simple_text', 'demo__echo', 'demo__reverse']) ok(names.includes(n), `tools/list has ${n}`);
  await demoAnswers('baseline');
});

await step('crash mid-call -> -32000 "went away", restart, tools back', async () => {
  const pid1 = upstreamPid(srv.log(), 'fixture');
  ok(pid1 > 0 && pidAlive(pid1), `fixture runs (pid ${pid1})`);
  const slow = call('fixture__sleep', { ms: 800 }); // in flight when the crash happens
  await sleep(50);
  const r = await call('fixture__crash');
  ok(r.error instanceof Error, 'crash call fails with a JSON-RPC error', JSON.stringify(r.result));
  eq(r.error?.code, -32000, 'error code');
  match(r.error?.message, /went away/, 'error message');
  const s = await slow;
  ok(s.error instanceof Error && s.error.code === -32000 && /went away/.test(s.error.message),
    'a concurrent fixture__sleep in flight fails the same way', s.error?.message ?? JSON.stringify(s.result));
  await demoAnswers('fixture down');
  const back = await waitFor(async () => {
    const names = (await client.listTools()).tools.map((t) => t.name);
    return names.includes('fixture__test_simple_text') ? names : null;
  }, 10000, 200);
  ok(!!back, 'fixture tools are back in tools/list within 10 s');
  const pid2 = upstreamPid(srv.log(), 'fixture');
  ok(pid2 > 0 && pid2 !== pid1 && pidAlive(pid2), `fixture restarted (new pid ${pid2})`);
  ok(!pidAlive(pid1), `old fixture pid ${pid1} is gone`);
  const r2 = await call('fixture__test_simple_text');
  eq(texts(r2.result), ['This is a simple text response for testing.'], 'fixture__test_simple_text after the restart');
});

await step('hang with timeout: 1s -> error after ~1 s, notifications/cancelled sent upstream', async () => {
  const hang = call('fixture__hang', {}, 20000);
  // meanwhile the demo upstream keeps answering
  const t0 = Date.now();
  for (const w of ['one', 'two', 'three']) await demoAnswers(`during hang ${w}`);
  ok(Date.now() - t0 < 900, `demo answered 3 calls while the hang was pending (${Date.now() - t0} ms)`);
  const r = await hang;
  ok(r.error instanceof Error, 'hang call fails with a JSON-RPC error', JSON.stringify(r.result));
  eq(r.error?.code, -32000, 'error code');
  match(r.error?.message, /within 1000 ms|time(d)? ?out/i, 'error message mentions the timeout');
  ok(r.ms >= 900 && r.ms <= 3000, `error after ~1 s (${r.ms} ms)`);
  await demoAnswers('after hang');

  // FIXTURE_LOG holds every line the fixture received
  const lines = await waitFor(() => {
    const ls = fs.readFileSync(fixtureLog, 'utf8').split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } });
    return ls.some((m) => m?.method === 'notifications/cancelled') ? ls : null;
  }, 2000, 50) || fs.readFileSync(fixtureLog, 'utf8').split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } });
  const hangReq = lines.filter((m) => m?.method === 'tools/call' && m.params?.name === 'hang').pop();
  ok(!!hangReq, `fixture received tools/call hang (id ${hangReq?.id})`);
  const cancels = lines.filter((m) => m?.method === 'notifications/cancelled');
  const mine = cancels.find((m) => hangReq && m.params?.requestId === hangReq.id);
  ok(!!mine, 'fixture received notifications/cancelled for that request id',
    `cancels: ${JSON.stringify(cancels)}`);
  if (mine) console.log(`     cancelled: ${JSON.stringify(mine)}`);
});

await step('fixture still serves after the timeout', async () => {
  const r = await call('fixture__echo', { text: 'still here' });
  eq(texts(r.result), ['still here'], 'fixture__echo');
  await demoAnswers('end');
});

try {
  await transport.terminateSession();
  await client.close();
} catch (e) {
  ok(false, 'client closes cleanly', e?.message);
}
await srv.stopAndCheck('mcpd serve');
await finish();
