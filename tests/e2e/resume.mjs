// resume.mjs - resumable SSE streams toward clients (MCP 2025-11-25):
// event ids per stream, the priming event, replay with GET + Last-Event-ID
// after a dropped POST stream, and that a stream nobody resumes is cancelled
// upstream after the grace period is NOT waited for here (30 s) but a
// resumed one completes with its answer.
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { bin, ok, eq, step, finish, startServe, rawSession, rawHttp, sseMessages, tmp, waitFor, sleep } from './lib.mjs';

// Opens a POST on a raw socket and returns once `until(text)` is true; the
// socket is then destroyed (the client "loses the connection").
function postAndDrop(port, sid, version, body, until, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const payload = Buffer.from(JSON.stringify(body));
    const sock = net.connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => { sock.destroy(); resolve({ text, timedOut: true }); }, timeoutMs);
    sock.on('connect', () => {
      sock.write([
        'POST /mcp HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Content-Type: application/json',
        'Accept: application/json, text/event-stream', `Mcp-Session-Id: ${sid}`,
        `MCP-Protocol-Version: ${version}`, `Content-Length: ${payload.length}`, '', '',
      ].join('\r\n'));
      sock.write(payload);
    });
    sock.on('data', (d) => {
      text += d.toString('utf8');
      if (until(text)) { clearTimeout(timer); sock.destroy(); resolve({ text, timedOut: false }); }
    });
    sock.on('error', () => {});
  });
}

function eventIds(text) {
  return [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
}

await step('a dropped POST stream is resumed with GET + Last-Event-ID', async () => {
  const log = path.join(tmp, 'fixture.log');
  const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
    env: { FIXTURE_LOG: "${log}" }
`, { name: 'resume' });
  const { sid } = await rawSession(srv.port, '2025-11-25');
  const call = { jsonrpc: '2.0', id: 7, method: 'tools/call',
                 params: { name: 'sleep', arguments: { ms: 1200 }, _meta: { progressToken: 'p7' } } };
  const first = await postAndDrop(srv.port, sid, '2025-11-25', call, (t) => /notifications\/progress/.test(t));
  ok(!first.timedOut, 'the POST answered with an SSE stream carrying the progress notification');
  ok(/text\/event-stream/.test(first.text), 'the POST answer is text/event-stream');
  const ids = eventIds(first.text);
  ok(ids.length >= 2, `events carry ids (${ids.join(', ')})`);
  ok(/^\d+-0$/.test(ids[0]), `the first event is the priming event with id ${ids[0]}`);
  ok(/retry: \d+/.test(first.text), 'the priming event carries retry');
  const stream = ids[0].split('-')[0];
  const last = ids[ids.length - 1];
  eq(last, `${stream}-1`, 'the progress event is event 1 of that stream');
  // the client lost the connection; the call goes on upstream. Resume:
  const get = await rawHttp(srv.port, [
    'GET /mcp HTTP/1.1', `Host: 127.0.0.1:${srv.port}`, 'Accept: text/event-stream',
    `Mcp-Session-Id: ${sid}`, 'MCP-Protocol-Version: 2025-11-25', `Last-Event-ID: ${last}`, 'Connection: close',
  ], '', { timeoutMs: 8000 });
  eq(get.status, 200, 'GET with Last-Event-ID is answered 200');
  const msgs = sseMessages(get.body);
  const answer = msgs.find((m) => m && m.id === 7);
  ok(answer && answer.result && /slept 1200 ms/.test(JSON.stringify(answer.result)),
     'the resumed stream delivers the answer to request 7 with the client id');
  eq(msgs.filter((m) => m && m.method === 'notifications/progress').length, 0,
     'the progress event already seen is not sent again');
  eq(eventIds(get.raw).slice(-1)[0], `${stream}-2`, 'the answer is event 2 of the same stream');
  const cancelled = fs.readFileSync(log, 'utf8').split('\n').filter((l) => /notifications\/cancelled/.test(l));
  eq(cancelled.length, 0, 'the dropped connection did not cancel the call upstream');

  // a resume from an unknown or expired id is refused
  const bad = await rawHttp(srv.port, [
    'GET /mcp HTTP/1.1', `Host: 127.0.0.1:${srv.port}`, 'Accept: text/event-stream',
    `Mcp-Session-Id: ${sid}`, 'Last-Event-ID: 999-3', 'Connection: close',
  ], '', { timeoutMs: 5000 });
  eq(bad.status, 404, 'GET with an unknown Last-Event-ID is answered 404');
  // the finished stream can still be replayed once more from its start
  const again = await rawHttp(srv.port, [
    'GET /mcp HTTP/1.1', `Host: 127.0.0.1:${srv.port}`, 'Accept: text/event-stream',
    `Mcp-Session-Id: ${sid}`, `Last-Event-ID: ${stream}-0`, 'Connection: close',
  ], '', { timeoutMs: 5000 });
  eq(sseMessages(again.body).length, 2, 'replay from the priming id returns both events of the finished stream');
  await srv.stop();
});

await step('older sessions get ids but no priming event', async () => {
  const srv = await startServe(`servers:
  fixture:
    command: ${bin.fixture}
`, { name: 'resume-old' });
  const { sid } = await rawSession(srv.port, '2025-06-18');
  const call = { jsonrpc: '2.0', id: 1, method: 'tools/call',
                 params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'x' } } };
  const r = await postAndDrop(srv.port, sid, '2025-06-18', call, (t) => /"id":1,"result"/.test(t));
  const ids = eventIds(r.text);
  ok(ids.length === 4 && !ids.some((i) => /-0$/.test(i)), `four events with ids, none a priming event (${ids.join(', ')})`);
  await srv.stop();
});

await finish();
