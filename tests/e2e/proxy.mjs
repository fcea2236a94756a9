// proxy.mjs - the official SDK client through mcpd, over stdio and over
// streamable HTTP, with two upstreams at once: mcpd-fixture and
// @modelcontextprotocol/server-everything (stdio). Checks the prefixed
// catalog, calls into both upstreams, progress and logging notifications.
import fs from 'node:fs';
import {
  bin, ok, eq, match, step, finish, tmp, writeFile, startServe, sdk, texts, track,
  checkCleanExit, sleep, waitFor,
} from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport, types } = await sdk();

if (!bin.everything || !fs.existsSync(bin.everything)) {
  ok(false, `server-everything present at ${bin.everything}`);
  await finish();
}

const config = `# two upstreams; prefix auto => both prefixed with "<server>__"
servers:
  fixture:
    command: ${bin.fixture}
    env: { FIXTURE_NAME: e2e-fixture }
  everything:
    command: ${bin.node}
    args: [${JSON.stringify(bin.everything)}, stdio]
`;

function newClient(label) {
  const client = new Client({ name: `mcpd-e2e-${label}`, version: '1.0.0' }, { capabilities: {} });
  const logs = [];
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  return { client, logs };
}

// Records every message the transport hands to the client, in arrival order.
// The SDK dispatches notifications in a microtask but responses at once, so
// when the last progress notification and the response arrive in one read,
// onprogress misses it although mcpd delivered it in order: what mcpd sent
// is judged from this wire-level record.
function recordWire(transport) {
  const wire = { in: [], out: [] };
  const orig = transport.onmessage;
  transport.onmessage = (m, extra) => {
    wire.in.push(m);
    orig?.(m, extra);
  };
  const send = transport.send.bind(transport);
  transport.send = (m, opts) => {
    wire.out.push(m);
    return send(m, opts);
  };
  return wire;
}

// The checks both transports must pass.
async function exercise(label, client, logs, wire) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  console.log(`     ${label}: ${names.length} tools: ${names.slice(0, 8).join(', ')}, ...`);
  for (const n of ['fixture__test_simple_text', 'fixture__test_tool_with_progress', 'fixture__echo',
    'everything__echo', 'everything__get-sum']) {
    ok(names.includes(n), `${label}: tools/list has ${n}`);
  }
  eq(names.filter((n) => !/^(fixture|everything)__/.test(n)), [], `${label}: tool names without a server prefix`);
  const simple = tools.find((t) => t.name === 'fixture__test_simple_text');
  ok(simple && typeof simple.description === 'string' && simple.description.length > 0 && simple.inputSchema?.type === 'object',
    `${label}: fixture__test_simple_text keeps description and inputSchema`, JSON.stringify(simple));

  const r1 = await client.callTool({ name: 'fixture__test_simple_text', arguments: {} });
  eq(r1.content, [{ type: 'text', text: 'This is a simple text response for testing.' }],
    `${label}: fixture__test_simple_text content`);
  ok(!r1.isError, `${label}: fixture__test_simple_text is not an error`);

  const r2 = await client.callTool({ name: 'everything__echo', arguments: { message: `hello ${label}` } });
  eq(texts(r2), [`Echo: hello ${label}`], `${label}: everything__echo text`);

  const r3 = await client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 3 } });
  eq(texts(r3), ['The sum of 2 and 3 is 5.'], `${label}: everything__get-sum text`);

  const r4 = await client.callTool({ name: 'fixture__echo', arguments: { text: `via ${label}` } });
  eq(texts(r4), [`via ${label}`], `${label}: fixture__echo text`);

  // progress: the SDK adds _meta.progressToken when onprogress is given
  const progress = [];
  const r5 = await client.callTool({ name: 'fixture__test_tool_with_progress', arguments: {} }, undefined, {
    onprogress: (p) => progress.push(p),
    timeout: 20000,
  });
  ok(!r5.isError && texts(r5).length > 0, `${label}: test_tool_with_progress answered`, JSON.stringify(r5));
  // on the wire: the request carried _meta.progressToken; mcpd must deliver >= 3
  // notifications/progress with that token, all before the response
  const req = wire.out.findLast((m) => m.method === 'tools/call' && m.params?.name === 'fixture__test_tool_with_progress');
  const token = req?.params?._meta?.progressToken;
  ok(req && token !== undefined, `${label}: request sent with _meta.progressToken ${JSON.stringify(token)}`);
  const respIdx = wire.in.findIndex((m) => req && m.id === req.id && (m.result || m.error));
  ok(respIdx >= 0, `${label}: response with id ${req?.id} received`);
  const onWire = wire.in.filter((m, i) => m.method === 'notifications/progress' && m.params?.progressToken === token && i < respIdx)
    .map((m) => m.params);
  ok(onWire.length >= 3, `${label}: >= 3 notifications/progress with token ${JSON.stringify(token)} before the response (got ${onWire.length})`,
    JSON.stringify(wire.in.filter((m) => m.method === 'notifications/progress')));
  ok(onWire.every((p, i) => i === 0 || p.progress > onWire[i - 1].progress),
    `${label}: progress values increase`, JSON.stringify(onWire));
  console.log(`     (${label}: the SDK's onprogress saw ${progress.length}` + (progress.length < onWire.length
    ? ': the SDK dispatches notifications in a microtask and drops a progress notification that arrives in the same read as the response)'
    : ')'));

  // logging: notifications/message reach this client
  const before = logs.length;
  const r6 = await client.callTool({ name: 'fixture__test_tool_with_logging', arguments: {} });
  ok(!r6.isError, `${label}: test_tool_with_logging answered`, JSON.stringify(r6));
  await waitFor(() => logs.length > before, 2000, 50);
  const got = logs.slice(before);
  ok(got.length >= 1, `${label}: >= 1 notifications/message received (got ${got.length})`, JSON.stringify(got));
  ok(got.every((m) => typeof m.level === 'string' && m.data !== undefined),
    `${label}: log notifications have level and data`, JSON.stringify(got));

  // unknown tool: a JSON-RPC error or an isError result, never a success
  let unknownFailed = false;
  try {
    const r = await client.callTool({ name: 'nobody__nothing', arguments: {} });
    unknownFailed = r.isError === true;
  } catch (e) {
    unknownFailed = true;
  }
  ok(unknownFailed, `${label}: unknown tool name fails`);
}

await step('stdio: StdioClientTransport launching mcpd stdio', async () => {
  const cfg = writeFile('stdio.yaml', config);
  const transport = new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg], stderr: 'pipe', env: { ...process.env } });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const { client, logs } = newClient('stdio');
  await client.connect(transport);
  const wire = recordWire(transport);
  const child = transport._process; // to read mcpd's exit status after close
  track(child);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  ok(transport.pid > 0, `stdio: mcpd started (pid ${transport.pid})`);
  const info = client.getServerVersion();
  ok(info && typeof info.name === 'string', `stdio: serverInfo ${JSON.stringify(info)}`);
  ok(client.getServerCapabilities()?.tools, 'stdio: server declares tools capability');
  try {
    await exercise('stdio', client, logs, wire);
  } finally {
    await client.close(); // ends mcpd's stdin: mcpd must exit by itself
  }
  const r = await Promise.race([exited, sleep(10000).then(() => null)]);
  ok(r !== null, 'stdio: mcpd exited after stdin closed');
  if (r) checkCleanExit('stdio: mcpd', r.code, r.signal, stderr);
  if (!r || r.code !== 0) console.log(stderr.split('\n').slice(-40).join('\n'));
});

await step('http: StreamableHTTPClientTransport to mcpd serve', async () => {
  const srv = await startServe(config, { name: 'http' });
  const { client, logs } = newClient('http');
  const transport = new StreamableHTTPClientTransport(new URL(srv.url));
  try {
    await client.connect(transport);
    const wire = recordWire(transport);
    ok(typeof transport.sessionId === 'string' && /^[\x21-\x7e]+$/.test(transport.sessionId),
      `http: session id ${transport.sessionId}`);
    match(transport.protocolVersion, /^20\d\d-\d\d-\d\d$/, 'http: negotiated protocol version');
    await exercise('http', client, logs, wire);
    await transport.terminateSession();
    await client.close();
  } finally {
    await srv.stopAndCheck('http: mcpd serve');
  }
});

await finish();
