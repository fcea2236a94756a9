// list_changed.mjs - an upstream's notifications/tools/list_changed reaches a
// client: over HTTP on the GET stream the SDK client opens after initialize,
// and over stdio; the next tools/list shows the change.
import { bin, ok, eq, step, finish, startServe, sdk, texts, waitFor, writeFile, track, checkCleanExit, sleep } from './lib.mjs';

const { Client, StreamableHTTPClientTransport, StdioClientTransport, types } = await sdk();

const config = `servers:
  fixture:
    command: ${bin.fixture}
`;

function newClient(label) {
  const client = new Client({ name: `mcpd-e2e-${label}`, version: '1.0.0' }, { capabilities: {} });
  const changes = [];
  client.setNotificationHandler(types.ToolListChangedNotificationSchema, (n) => changes.push(Date.now()));
  return { client, changes };
}

async function toggleAndCheck(label, client, changes) {
  const before = (await client.listTools()).tools.map((t) => t.name);
  ok(!before.includes('extra_tool'), `${label}: extra_tool absent at first`);
  ok(before.includes('toggle_extra'), `${label}: toggle_extra listed (single server: no prefix)`);

  let n = changes.length;
  const r = await client.callTool({ name: 'toggle_extra', arguments: {} });
  eq(texts(r), ['extra_tool added'], `${label}: toggle_extra answer`);
  const got = await waitFor(() => changes.length > n, 5000, 25);
  ok(got, `${label}: notifications/tools/list_changed received within 5 s`);
  const after = (await client.listTools()).tools.map((t) => t.name);
  ok(after.includes('extra_tool'), `${label}: next tools/list contains extra_tool`, after.join(','));
  const r2 = await client.callTool({ name: 'extra_tool', arguments: {} });
  eq(texts(r2), ['extra_tool called'], `${label}: extra_tool callable`);

  n = changes.length;
  const r3 = await client.callTool({ name: 'toggle_extra', arguments: {} });
  eq(texts(r3), ['extra_tool removed'], `${label}: toggle_extra answer (off)`);
  ok(await waitFor(() => changes.length > n, 5000, 25), `${label}: second list_changed received`);
  const last = (await client.listTools()).tools.map((t) => t.name);
  ok(!last.includes('extra_tool'), `${label}: extra_tool gone again`);
}

await step('http: SDK client with its GET stream', async () => {
  const srv = await startServe(config, { name: 'list_changed' });
  const { client, changes } = newClient('http');
  const transport = new StreamableHTTPClientTransport(new URL(srv.url));
  try {
    await client.connect(transport);
    // the SDK opens the GET stream right after notifications/initialized; give it a moment
    await sleep(200);
    await toggleAndCheck('http', client, changes);

    // a second client on its own session is told too
    const other = newClient('http-2');
    const t2 = new StreamableHTTPClientTransport(new URL(srv.url));
    await other.client.connect(t2);
    await sleep(200);
    const n = other.changes.length;
    await client.callTool({ name: 'toggle_extra', arguments: {} });
    ok(await waitFor(() => other.changes.length > n, 5000, 25), 'http: another session receives list_changed too');
    await client.callTool({ name: 'toggle_extra', arguments: {} });
    await t2.terminateSession();
    await other.client.close();

    await transport.terminateSession();
    await client.close();
  } finally {
    await srv.stopAndCheck('mcpd serve');
  }
});

await step('stdio: list_changed over mcpd stdio', async () => {
  const cfg = writeFile('stdio.yaml', config);
  const transport = new StdioClientTransport({ command: bin.mcpd, args: ['stdio', '-c', cfg], stderr: 'pipe', env: { ...process.env } });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const { client, changes } = newClient('stdio');
  await client.connect(transport);
  const child = track(transport._process);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  try {
    await toggleAndCheck('stdio', client, changes);
  } finally {
    await client.close();
  }
  const r = await Promise.race([exited, sleep(10000).then(() => null)]);
  ok(r !== null, 'stdio: mcpd exited after stdin closed');
  if (r) checkCleanExit('stdio: mcpd', r.code, r.signal, stderr);
});

await finish();
