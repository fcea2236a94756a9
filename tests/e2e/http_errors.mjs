// http_errors.mjs - bad input over streamable HTTP, sent as raw bytes on fresh
// connections (every header under our control). After each case mcpd must
// still serve a normal tools/call.
import net from 'node:net';
import { bin, ok, eq, match, step, finish, startServe, post, rawHttp, rawSession, INIT_PARAMS } from './lib.mjs';

const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
limits:
  max_message: 64KiB
  header_timeout: 1s
`, { name: 'http_errors', essential: true });
const port = srv.port;
console.log(`mcpd pid ${srv.pid} on ${srv.url}`);

let S; // the well-behaved session (2025-06-18)
let nextId = 100;
const hdr = () => ({ 'Mcp-Session-Id': S.sid, 'MCP-Protocol-Version': S.version });
const simpleCall = () => ({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: 'test_simple_text', arguments: {} } });

// After each bad input: mcpd is alive and a normal tools/call works.
async function stillServes(after) {
  const req = simpleCall();
  const r = await post(port, req, hdr());
  const m = r.messages.find((x) => x.id === req.id);
  ok(r.status === 200 && m?.result?.content?.[0]?.text === 'This is a simple text response for testing.',
    `after ${after}: tools/call still answered`, `status ${r.status} ${r.raw.slice(0, 400)}`);
}

await step('session set-up', async () => {
  S = await rawSession(port, '2025-06-18');
  ok(/^[\x21-\x7e]+$/.test(S.sid), `initialize returned Mcp-Session-Id ${S.sid}`);
  eq(S.init.messages[0]?.result?.protocolVersion, '2025-06-18', 'negotiated version');
  await stillServes('initialize');
});

await step('malformed JSON -> 400 + -32700', async () => {
  const r = await post(port, '{"jsonrpc":"2.0","id":1,"method":', hdr());
  eq(r.status, 400, 'HTTP status');
  eq(r.json?.error?.code, -32700, 'JSON-RPC error code');
  eq(r.json?.id, null, 'error id');
  await stillServes('malformed JSON');
});

await step('unknown method -> -32601', async () => {
  const r = await post(port, { jsonrpc: '2.0', id: 7, method: 'no/such/method', params: {} }, hdr());
  eq(r.status, 200, 'HTTP status');
  eq(r.messages[0]?.error?.code, -32601, 'JSON-RPC error code');
  eq(r.messages[0]?.id, 7, 'error id');
  await stillServes('unknown method');
});

await step('POST without Mcp-Session-Id -> 400', async () => {
  const r = await post(port, { jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'MCP-Protocol-Version': '2025-06-18' });
  eq(r.status, 400, 'HTTP status');
  await stillServes('missing session id');
});

await step('unknown session -> 404', async () => {
  const r = await post(port, { jsonrpc: '2.0', id: 9, method: 'tools/list' },
    { 'Mcp-Session-Id': '0123456789abcdef0123456789abcdef', 'MCP-Protocol-Version': '2025-06-18' });
  eq(r.status, 404, 'HTTP status');
  const r2 = await post(port, { jsonrpc: '2.0', id: 9, method: 'tools/list' },
    { 'Mcp-Session-Id': 'not-a-session', 'MCP-Protocol-Version': '2025-06-18' });
  eq(r2.status, 404, 'HTTP status (short id)');
  await stillServes('unknown session');
});

await step('unsupported MCP-Protocol-Version -> 400', async () => {
  const r = await post(port, { jsonrpc: '2.0', id: 10, method: 'tools/list' },
    { 'Mcp-Session-Id': S.sid, 'MCP-Protocol-Version': '1999-01-01' });
  eq(r.status, 400, 'HTTP status');
  await stillServes('bad protocol version');
});

await step('wrong Accept -> 406', async () => {
  const r = await post(port, simpleCall(), { ...hdr(), Accept: 'application/json' });
  eq(r.status, 406, 'HTTP status (Accept: application/json only)');
  const r2 = await post(port, simpleCall(), { ...hdr(), Accept: 'text/html' });
  eq(r2.status, 406, 'HTTP status (Accept: text/html)');
  await stillServes('wrong Accept');
});

await step('wrong Content-Type -> 415', async () => {
  const r = await post(port, simpleCall(), { ...hdr(), 'Content-Type': 'text/plain' });
  eq(r.status, 415, 'HTTP status');
  await stillServes('wrong Content-Type');
});

await step('body over max_message (64KiB) -> 413', async () => {
  const under = { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'echo', arguments: { text: 'u'.repeat(60 * 1024) } } };
  const r0 = await post(port, under, hdr());
  ok(r0.status === 200 && r0.messages[0]?.result?.content?.[0]?.text?.length === 60 * 1024,
    'a 60 KiB request is answered (200, echoed)', `status ${r0.status} ${r0.raw.slice(0, 300)}`);
  const over = { jsonrpc: '2.0', id: 12, method: 'tools/call', params: { name: 'echo', arguments: { text: 'o'.repeat(70 * 1024) } } };
  const r = await post(port, over, hdr());
  eq(r.status, 413, 'HTTP status for a 70 KiB body');
  await stillServes('oversized body');
});

await step('hostile Host / Origin -> 403', async () => {
  const r = await post(port, simpleCall(), { ...hdr(), Host: 'evil.example.com' });
  eq(r.status, 403, 'HTTP status (Host: evil.example.com)');
  const r2 = await post(port, simpleCall(), { ...hdr(), Origin: 'http://evil.example.com' });
  eq(r2.status, 403, 'HTTP status (Origin: http://evil.example.com)');
  const r3 = await post(port, { jsonrpc: '2.0', id: 13, method: 'initialize', params: INIT_PARAMS('2025-06-18') },
    { Host: 'evil.example.com', Origin: 'http://evil.example.com' });
  eq(r3.status, 403, 'HTTP status (initialize from evil.example.com)');
  ok(!r3.headers['mcp-session-id'], 'no session created for the hostile initialize');
  const r4 = await post(port, simpleCall(), { ...hdr(), Origin: `http://localhost:${port}` });
  eq(r4.status, 200, `HTTP status (Origin: http://localhost:${port} is allowed)`);
  await stillServes('hostile Host/Origin');
});

await step('slow client: half the headers, then silence -> 408 and close after header_timeout (1s)', async () => {
  const r = await rawHttp(port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: applic`, '', { timeoutMs: 6000, waitClose: true });
  eq(r.status, 408, 'HTTP status');
  ok(r.closed && !r.error, 'connection closed by mcpd', r.error?.message);
  match(r.headers.connection, /close/i, 'Connection header');
  ok(r.ms >= 900 && r.ms <= 3000, `closed after ~1 s (${r.ms} ms)`);
  await stillServes('slow client');
});

await step('batch on a 2025-06-18 session -> -32600', async () => {
  const r = await post(port, [
    { jsonrpc: '2.0', id: 21, method: 'tools/list' },
    { jsonrpc: '2.0', id: 22, method: 'ping' },
  ], hdr());
  eq(r.status, 400, 'HTTP status');
  ok(!Array.isArray(r.json), 'answer is a single error, not an array', r.body.slice(0, 300));
  eq(r.json?.error?.code, -32600, 'JSON-RPC error code');
  eq(r.json?.id, null, 'error id');
  await stillServes('batch on 2025-06-18');
});

await step('batch on a 2025-03-26 session -> array of results', async () => {
  const init = await post(port, { jsonrpc: '2.0', id: 1, method: 'initialize', params: INIT_PARAMS('2025-03-26') });
  const sid = init.headers['mcp-session-id'];
  eq(init.messages[0]?.result?.protocolVersion, '2025-03-26', 'negotiated version');
  const h = { 'Mcp-Session-Id': sid }; // 2025-03-26 clients send no MCP-Protocol-Version
  const n = await post(port, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
  eq(n.status, 202, 'notifications/initialized status');
  const r = await post(port, [
    { jsonrpc: '2.0', id: 31, method: 'tools/call', params: { name: 'test_simple_text', arguments: {} } },
    { jsonrpc: '2.0', id: 32, method: 'ping' },
    { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: 1 } },
    { jsonrpc: '2.0', id: 33, method: 'no/such/method' },
  ], h);
  eq(r.status, 200, 'HTTP status');
  const arr = r.headers['content-type']?.startsWith('text/event-stream') ? r.messages.flat() : r.json;
  ok(Array.isArray(arr), 'answer is a JSON array', r.body.slice(0, 400));
  if (Array.isArray(arr)) {
    const byId = Object.fromEntries(arr.map((m) => [m.id, m]));
    eq(arr.map((m) => m.id).sort(), [31, 32, 33], 'ids of the answers (one per request, none for the notification)');
    eq(byId[31]?.result?.content, [{ type: 'text', text: 'This is a simple text response for testing.' }], 'id 31 tools/call result');
    eq(byId[32]?.result, {}, 'id 32 ping result');
    eq(byId[33]?.error?.code, -32601, 'id 33 error code');
  }
  const r2 = await post(port, [{ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: 2 } }], h);
  eq(r2.status, 202, 'batch of notifications only -> 202');
  await stillServes('batch on 2025-03-26');
});

await step('garbage requests -> 400 and close; a body cut short by EOF -> closed at once', async () => {
  // bounded: 20 sequential garbage requests, each must be answered and closed quickly
  let good = 0;
  const bad = [];
  for (let i = 0; i < 20; i++) {
    const r = await rawHttp(port, 'GARBAGE / NONSENSE\r\n\r\n', '', { timeoutMs: 3000, waitClose: true, endAfterSend: i % 2 === 1 });
    if (r.status === 400 && r.closed && !r.error) good++;
    else bad.push(`status ${r.status} closed ${r.closed} ${r.error?.message ?? ''} after ${r.ms} ms`);
  }
  eq(good, 20, 'garbage request lines answered 400 and closed (of 20)');
  if (bad.length) console.log(`     ${bad.slice(0, 3).join('; ')}`);
  // The client sends half of a Content-Length body and then EOF (FIN): the
  // request can never complete, so mcpd should close now, not at body_timeout (30 s).
  const cut = await Promise.all([0, 1, 2].map(() => rawHttp(port,
    [`POST /mcp HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Content-Type: application/json',
      'Accept: application/json, text/event-stream', 'Content-Length: 100'], '{"jsonrpc":"2.0"',
    { timeoutMs: 5000, waitClose: true, endAfterSend: true })));
  ok(cut.every((r) => r.closed && r.ms < 3000), 'truncated body + EOF: connection closed within 3 s',
    cut.map((r) => `closed=${r.closed} after ${r.ms} ms, status ${r.status}`).join('; '));
  await stillServes('malformed connections');
});

await srv.stopAndCheck('mcpd serve');
await finish();
