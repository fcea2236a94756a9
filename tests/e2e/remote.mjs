// remote.mjs - remote upstreams (`url:`): server-everything started here in
// streamableHttp mode and in sse mode (legacy HTTP+SSE), both on 127.0.0.1
// (node --require loopback.cjs); mcpd serve reaches the first with
// transport: streamable-http and the second with transport: auto given the
// /sse URL, so mcpd's initialize POST is refused and it falls back to legacy
// HTTP+SSE. The SDK client talks to mcpd over streamable HTTP.
//
// Then the streamable-HTTP server-everything is killed mid-session: a call in
// flight and a new call get a JSON-RPC error naming the upstream, the other
// upstream keeps answering, and after server-everything is started again on
// the same port mcpd recovers within a bounded time.
import fs from 'node:fs';
import {
  bin, ok, eq, match, step, finish, startServe, sdk, texts, sleep, waitFor, settle, freePort, startEverythingHttp, dumpLog,
} from './lib.mjs';

const { Client, StreamableHTTPClientTransport } = await sdk();

if (!bin.everything || !fs.existsSync(bin.everything)) {
  ok(false, `server-everything present at ${bin.everything}`);
  await finish();
}

const httpPort = await freePort();
const ssePort = await freePort();
let seHttp = await startEverythingHttp('streamableHttp', httpPort, 'everything-http');
const seSse = await startEverythingHttp('sse', ssePort, 'everything-sse');
console.log(`server-everything streamableHttp pid ${seHttp.pid} on ${httpPort}, sse pid ${seSse.pid} on ${ssePort}`);

const srv = await startServe(`servers:
  ehttp:
    url: http://127.0.0.1:${httpPort}/mcp
    transport: streamable-http
    timeout: 10s
    connect_timeout: 2s
  esse:
    url: http://127.0.0.1:${ssePort}/sse
    transport: auto
    timeout: 10s
    connect_timeout: 2s
`, { name: 'remote', essential: true });
console.log(`mcpd pid ${srv.pid} on ${srv.url}`);

const client = new Client({ name: 'mcpd-e2e-remote', version: '1.0.0' }, { capabilities: {} });
const transport = new StreamableHTTPClientTransport(new URL(srv.url));

const call = (name, args = {}, timeout = 15000) => settle(() => client.callTool({ name, arguments: args }, undefined, { timeout }));
const logLines = (re) => srv.log().split('\n').filter((l) => re.test(l));

await step('both remote upstreams in the catalog', async () => {
  await client.connect(transport);
  ok(!!transport.sessionId, `SDK client connected to mcpd (session ${transport.sessionId})`);
  const names = (await client.listTools()).tools.map((t) => t.name);
  const of = (p) => names.filter((n) => n.startsWith(p)).map((n) => n.slice(p.length)).sort();
  console.log(`     ehttp: ${of('ehttp__').join(', ')}`);
  ok(of('ehttp__').includes('echo') && of('ehttp__').includes('get-sum'), 'tools/list has ehttp__echo and ehttp__get-sum');
  ok(of('esse__').includes('echo') && of('esse__').includes('get-sum'), 'tools/list has esse__echo and esse__get-sum');
  eq(of('esse__'), of('ehttp__'), 'both upstreams list the same tools (the same server, two transports)');
  const fallback = logLines(/upstream=esse answered HTTP \d+ to initialize; trying legacy HTTP\+SSE/);
  ok(fallback.length === 1, `mcpd log: esse fell back to legacy HTTP+SSE (${fallback[0]?.replace(/^.*upstream=/, 'upstream=')})`);
  ok(logLines(/upstream=ehttp .*legacy/).length === 0, 'mcpd log: ehttp did not fall back');
});

await step('echo through each transport', async () => {
  const h = await call('ehttp__echo', { message: 'over streamable http' });
  eq(texts(h.result), ['Echo: over streamable http'], 'ehttp__echo');
  const s = await call('esse__echo', { message: 'over legacy sse' });
  eq(texts(s.result), ['Echo: over legacy sse'], 'esse__echo');
  const sum = await call('esse__get-sum', { a: 20, b: 22 });
  eq(texts(sum.result), ['The sum of 20 and 22 is 42.'], 'esse__get-sum');
  const progress = [];
  const lr = await settle(() => client.callTool({ name: 'ehttp__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    undefined, { onprogress: (p) => progress.push(p.progress), timeout: 15000 }));
  eq(texts(lr.result), ['Long running operation completed. Duration: 0.3 seconds, Steps: 3.'], 'ehttp__trigger-long-running-operation');
  ok(progress.length >= 2, `progress from the remote upstream reaches the client (${progress.join(', ')})`);
});

await step('kill the streamable-HTTP server-everything mid-session', async () => {
  const inflight = call('ehttp__trigger-long-running-operation', { duration: 4, steps: 4 });
  await sleep(400);
  const killed = await seHttp.kill();
  ok(killed && killed.signal === 'SIGKILL', `server-everything (pid ${seHttp.pid}) killed`);
  const r = await inflight;
  ok(r.error, `the call in flight failed (after ${r.ms} ms)`, JSON.stringify(r.result));
  ok(r.ms < 4000, 'the call in flight failed before the tool would have finished (4 s), not at the 10 s deadline', `${r.ms} ms`);
  eq(r.error?.code, -32000, 'in-flight call: error code');
  match(r.error?.message, /'ehttp'/, 'in-flight call: the error names the upstream');
  const n = await call('ehttp__echo', { message: 'nobody there' });
  ok(n.error && n.ms < 3000, `a new call fails at once (${n.ms} ms)`, JSON.stringify(n.result));
  eq(n.error?.code, -32000, 'new call: error code');
  match(n.error?.message, /'ehttp'/, 'new call: the error names the upstream');
  console.log(`     errors: in flight: ${r.error?.message}\n             new call:  ${n.error?.message}`);
  const s = await call('esse__echo', { message: 'still here' });
  eq(texts(s.result), ['Echo: still here'], 'esse__echo keeps working');
  await sleep(1500);
  const s2 = await call('esse__echo', { message: 'still here later' });
  eq(texts(s2.result), ['Echo: still here later'], 'esse__echo keeps working 1.5 s later');
  const names = (await client.listTools()).tools.map((t) => t.name);
  ok(names.includes('esse__echo'), 'tools/list still has esse__echo');
  console.log(`     (tools/list while ehttp is down: ${names.filter((x) => x.startsWith('ehttp__')).length} ehttp__ tools)`);
});

await step('restart server-everything on the same port: mcpd recovers', async () => {
  seHttp = await startEverythingHttp('streamableHttp', httpPort, 'everything-http-2');
  console.log(`     server-everything restarted: pid ${seHttp.pid} on ${httpPort}`);
  const t0 = Date.now();
  let last;
  const back = await waitFor(async () => {
    last = await call('ehttp__echo', { message: 'back again' }, 5000);
    return texts(last.result)[0] === 'Echo: back again';
  }, 20000, 500);
  ok(back, `ehttp__echo answers again within 20 s of the restart (${Date.now() - t0} ms)`, last?.error?.message ?? JSON.stringify(last?.result));
  const names = (await client.listTools()).tools.map((t) => t.name);
  ok(names.includes('ehttp__echo') && names.includes('ehttp__get-sum'), 'tools/list has the ehttp__ tools');
  if (!back) {
    console.log('     mcpd log lines about ehttp:');
    console.log(logLines(/upstream=ehttp/).slice(-15).map((l) => `       ${l}`).join('\n'));
  }
  const s = await call('esse__echo', { message: 'after recovery' });
  eq(texts(s.result), ['Echo: after recovery'], 'esse__echo after the recovery');
});

await step('shut down', async () => {
  await settle(() => transport.terminateSession());
  await client.close();
  await srv.stopAndCheck('mcpd serve');
  await seHttp.kill();
  await seSse.kill();
});

await finish();
