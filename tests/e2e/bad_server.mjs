// bad_server.mjs - a tiny stdio MCP server that misbehaves on purpose (for
// failures.mjs). Plain Node, no dependencies; newline-delimited JSON-RPC.
//
// Environment:
//   BAD_MODE  garbage | huge | flood | close | guess | none   (default none)
//   BAD_WHEN  call (default): the tool `misbehave` misbehaves, everything else is normal
//             init: the answer to `initialize` misbehaves:
//               garbage - garbage lines first, then the normal answer
//               huge    - the answer padded past 16 MiB, then stdout closed
//               flood   - BAD_FLOOD notifications first, then the normal answer
//               close   - stdout closed instead of an answer (the process stays)
//               guess   - answers ("guessed") for the 20 ids after initialize's own, which
//                         mcpd has not sent yet, then the normal answer 300 ms later
//   BAD_FLOOD number of notifications/message for flood (default 100000)
//   BAD_HUGE  bytes of the huge answer's text (default 17 MiB)
//   BAD_LOG   file to append every received line to
//
// Tools: `ok` (answers "fine"), `misbehave` (BAD_WHEN=call: garbage: garbage
// lines and no answer; huge: a 17 MiB answer; flood: BAD_FLOOD notifications,
// then the answer "flood done"; close: closes stdout, no answer), `burst`
// (5000 notifications/message back to back, then "burst done", any mode).
import fs from 'node:fs';

const mode = process.env.BAD_MODE || 'none';
const when = process.env.BAD_WHEN || 'call';
const floodN = Number(process.env.BAD_FLOOD || 100000);
const hugeN = Number(process.env.BAD_HUGE || 17 * 1024 * 1024);
const logFile = process.env.BAD_LOG || '';
let stdoutOpen = true;

// Writes synchronously (a pipe: blocks until mcpd reads), so ordering is exact
// and a flood really is back-to-back.
function write(s) {
  if (!stdoutOpen) return;
  let buf = Buffer.from(s);
  while (buf.length) {
    try {
      const n = fs.writeSync(1, buf);
      buf = buf.subarray(n);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      stdoutOpen = false; // EPIPE: mcpd went away
      return;
    }
  }
}
const send = (msg) => write(JSON.stringify(msg) + '\n');
const result = (id, r) => send({ jsonrpc: '2.0', id, result: r });
const text = (id, t) => result(id, { content: [{ type: 'text', text: t }] });

function closeStdout() {
  stdoutOpen = false;
  fs.closeSync(1);
  process.stderr.write('bad_server: stdout closed\n');
  setInterval(() => {}, 60000); // stay alive: mcpd must notice the EOF itself
}

const GARBAGE = [
  'this is not json',
  '{"jsonrpc":"2.0","id":',
  '[1,2,3]',
  '"a string"',
  '{"jsonrpc":"2.0","id":987654,"result":{}}',
  '{"jsonrpc":"1.0","id":1,"result":{}}',
  '{"jsonrpc":"2.0","method":42}',
  '{"jsonrpc":"2.0","id":{"nested":true},"result":{}}',
  '{"a":' + '['.repeat(200) + ']'.repeat(200) + '}',
  '\u0000\u0001\u0002 binary-ish',
];
function garbage() {
  for (const g of GARBAGE) write(g + '\n');
  write(Buffer.from([0xff, 0xfe, 0x7b, 0x0a])); // invalid UTF-8
}
function flood(n = floodN) {
  for (let i = 0; i < n; i++)
    send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', logger: 'bad', data: `flood ${i}` } });
}

const TOOLS = [
  { name: 'ok', description: 'Answers "fine"', inputSchema: { type: 'object', properties: {} } },
  { name: 'misbehave', description: `Misbehaves (${mode})`, inputSchema: { type: 'object', properties: {} } },
  { name: 'burst', description: '5000 log notifications, then an answer', inputSchema: { type: 'object', properties: {} } },
];

function onInitialize(m) {
  const answer = { protocolVersion: m.params?.protocolVersion || '2025-06-18', capabilities: { tools: {}, logging: {} },
    serverInfo: { name: 'bad-server', version: '1.0.0' } };
  if (when === 'init') {
    if (mode === 'garbage') garbage();
    if (mode === 'flood') flood();
    if (mode === 'close') return closeStdout();
    if (mode === 'guess' && Number.isInteger(m.id)) {
      for (let id = m.id + 1; id <= m.id + 20; id++) text(id, 'guessed');
      setTimeout(() => result(m.id, answer), 300);
      return;
    }
    if (mode === 'huge') {
      result(m.id, { ...answer, padding: 'x'.repeat(hugeN) });
      return closeStdout();
    }
  }
  result(m.id, answer);
}

function onCall(m) {
  const name = m.params?.name;
  if (name === 'ok') return text(m.id, 'fine');
  if (name === 'burst') {
    flood(5000);
    return text(m.id, 'burst done');
  }
  if (name !== 'misbehave') return send({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: `Unknown tool: ${name}` } });
  if (when !== 'call' || mode === 'none') return text(m.id, 'behaving');
  switch (mode) {
    case 'garbage':
      garbage();
      // and the "answer": right id, but neither result nor error
      send({ jsonrpc: '2.0', id: m.id });
      return;
    case 'huge':
      return text(m.id, 'x'.repeat(hugeN));
    case 'flood':
      flood();
      return text(m.id, 'flood done');
    case 'close':
      return closeStdout();
  }
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (logFile) fs.appendFileSync(logFile, line + '\n');
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      continue;
    }
    if (m.method === 'initialize') onInitialize(m);
    else if (m.method === 'tools/list') result(m.id, { tools: TOOLS });
    else if (m.method === 'tools/call') onCall(m);
    else if (m.method === 'ping') result(m.id, {});
    else if (m.id !== undefined && m.method) send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } });
  }
});
process.stdin.on('end', () => process.exit(0));
