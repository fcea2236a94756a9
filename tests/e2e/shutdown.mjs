// shutdown.mjs - SIGTERM to `mcpd serve` while a call is in flight: the call
// completes, mcpd exits 0, and its upstream children are gone.
import { bin, ok, eq, step, finish, startServe, sdk, texts, upstreamPid, pidAlive, waitFor, sleep, checkCleanExit, dumpLog, post } from './lib.mjs';

const { Client, StreamableHTTPClientTransport } = await sdk();

await step('SIGTERM during a 1500 ms call', async () => {
  const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
  demo:
    command: ${bin.demo}
`, { name: 'shutdown' });
  const fixturePid = upstreamPid(srv.log(), 'fixture');
  const demoPid = upstreamPid(srv.log(), 'demo');
  ok(pidAlive(fixturePid), `fixture child runs (pid ${fixturePid})`);
  ok(pidAlive(demoPid), `demo child runs (pid ${demoPid})`);

  const client = new Client({ name: 'mcpd-e2e-shutdown', version: '1.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(srv.url));
  await client.connect(transport);
  const t0 = Date.now();
  const call = client.callTool({ name: 'fixture__sleep', arguments: { ms: 1500 } }, undefined, { timeout: 15000 })
    .then((result) => ({ result, ms: Date.now() - t0 }), (error) => ({ error, ms: Date.now() - t0 }));
  await sleep(300);
  const tTerm = Date.now();
  srv.stopping = true; // from here on its exit is expected
  process.kill(srv.pid, 'SIGTERM');

  // While draining, a new request on a fresh connection is refused (listener
  // closed, or 503); it must not be served.
  await sleep(100);
  const late = await post(srv.port, { jsonrpc: '2.0', id: 99, method: 'ping' }, {
    'Mcp-Session-Id': transport.sessionId, 'MCP-Protocol-Version': transport.protocolVersion,
  }, { timeoutMs: 3000 });
  ok(late.status === 0 || late.status === 503, `a new request during the drain is refused (status ${late.status}${late.error ? `, ${late.error.code}` : ''})`);

  const r = await call;
  ok(!r.error, 'the in-flight call completed without error', r.error?.message);
  eq(texts(r.result), ['slept 1500 ms'], 'its result');
  ok(r.ms >= 1400, `it took the full 1500 ms (${r.ms} ms)`);

  const ex = await Promise.race([srv.exited, sleep(12000).then(() => null)]);
  ok(ex !== null, `mcpd exited after SIGTERM (${Date.now() - tTerm} ms)`);
  if (ex === null) {
    dumpLog(srv.proc);
    await srv.stop(1000);
  } else {
    checkCleanExit('mcpd serve', ex.code, ex.signal, srv.log());
    if (ex.code !== 0) dumpLog(srv.proc);
  }
  ok(await waitFor(() => !pidAlive(fixturePid), 5000, 50), `fixture child (pid ${fixturePid}) is gone`);
  ok(await waitFor(() => !pidAlive(demoPid), 5000, 50), `demo child (pid ${demoPid}) is gone`);
  try {
    await client.close();
  } catch {}
});

await step('SIGTERM with nothing in flight: prompt exit 0', async () => {
  const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
`, { name: 'shutdown-idle' });
  const fixturePid = upstreamPid(srv.log(), 'fixture');
  const r = await srv.stopAndCheck('mcpd serve (idle)');
  ok(r.ms < 5000, `exited within 5 s (${r.ms} ms)`);
  ok(await waitFor(() => !pidAlive(fixturePid), 5000, 50), `fixture child (pid ${fixturePid}) is gone`);
});

await finish();
