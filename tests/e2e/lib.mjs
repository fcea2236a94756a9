// lib.mjs - helpers shared by the e2e tests (run through tests/e2e/run_node.sh).
//
// Environment (set by CTest, see tests/e2e/tests.cmake):
//   MCPD_BIN, MCPD_FIXTURE, MCPD_DEMO   the binaries under test
//   MCPD_EVERYTHING                     server-everything's dist/index.js (from the cache)
//   MCPD_E2E_TIMEOUT_MS                 watchdog for the whole test file (default 90000)
//   MCPD_E2E_KEEP=1                     keep the temp folder (configs, logs)
//
// Every process started here is tracked and SIGKILLed by PID if still alive
// when the test exits. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';

export const bin = {
  mcpd: need('MCPD_BIN'),
  fixture: need('MCPD_FIXTURE'),
  demo: need('MCPD_DEMO'),
  everything: process.env.MCPD_EVERYTHING || '',
  node: process.execPath,
};

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`e2e: environment variable ${name} is not set (run through ctest)`);
    process.exit(2);
  }
  return v;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- checks -----------------------------------------------------------------

let passed = 0;
let failed = 0;
const testName = path.basename(process.argv[1] || 'e2e', '.mjs');

function show(v) {
  return typeof v === 'string' ? JSON.stringify(v) : util.inspect(v, { depth: 6, breakLength: 160 });
}

export function ok(cond, what, detail) {
  if (cond) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail !== undefined ? `\n     ${String(detail).replace(/\n/g, '\n     ')}` : ''}`);
  }
  return !!cond;
}

export function eq(actual, expected, what) {
  const good = util.isDeepStrictEqual(actual, expected);
  let shown = show(expected).replace(/\s*\n\s*/g, ' ');
  if (shown.length > 160) shown = `${shown.slice(0, 150)} ...`;
  return ok(good, `${what} == ${shown}`, good ? undefined : `expected: ${show(expected)}\nactual:   ${show(actual)}`);
}

export function match(actual, re, what) {
  const good = typeof actual === 'string' && re.test(actual);
  return ok(good, `${what} =~ ${re}`, good ? undefined : `actual: ${show(actual)}`);
}

export function section(title) {
  console.log(`\n== ${title}`);
}

// Runs fn; an exception counts as one failed check (the test goes on).
export async function step(title, fn) {
  await checkServers(`before "${title}"`);
  section(title);
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    ok(false, `${title}: no exception`, e?.stack || e);
    // a dying mcpd may still be writing its sanitizer report: give it a moment
    await Promise.race([Promise.any(servers.filter((x) => !x.stopping).map((x) => x.exited)).catch(() => {}), sleep(3000)]);
    await checkServers(`during "${title}"`);
  }
  console.log(`   (${Date.now() - t0} ms)`);
}

// An mcpd serve that exited although nobody stopped it is one failure
// (reported once, with its log); the test goes on.
async function checkServers(when) {
  for (const srv of servers) {
    if (srv.stopping) continue;
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null || !pidAlive(srv.pid)) {
      await Promise.race([srv.exited, sleep(2000)]);
      srv.stopping = true;
      ok(false, `${srv.proc.mcpdName}: mcpd (pid ${srv.pid}) must not exit on its own (noticed ${when})`,
        `it exited: code=${srv.proc.exitCode} signal=${srv.proc.signalCode}`);
      dumpLog(srv.proc, 80);
      if (srv.essential) {
        console.log('(every remaining step needs this mcpd: stopping the test here)');
        await finish();
      }
    }
  }
}

// Prints the summary and exits: 0 when every check passed.
export async function finish() {
  await cleanupAll();
  console.log(`\n${testName}: ${passed} checks passed, ${failed} failed`);
  process.exit(failed || passed === 0 ? 1 : 0);
}

// ---- temp folder, processes, watchdog -----------------------------------------

const servers = []; // every startServe() result

export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `mcpd-e2e-${testName}-`));
const children = new Set(); // ChildProcess objects still running
const cleanups = [];

export function onCleanup(fn) {
  cleanups.push(fn);
}

async function cleanupAll() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      console.log(`(cleanup: ${e?.message ?? e})`);
    }
  }
  killChildren();
  if (process.env.MCPD_E2E_KEEP === '1') console.log(`(kept ${tmp})`);
  else fs.rmSync(tmp, { recursive: true, force: true });
}

function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {}
    }
  }
  children.clear();
}

process.on('exit', () => {
  killChildren();
  if (process.env.MCPD_E2E_KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
});
for (const ev of ['uncaughtException', 'unhandledRejection']) {
  process.on(ev, (e) => {
    console.log(`FAIL ${testName}: ${ev}: ${e?.stack || e}`);
    failed++;
    for (const srv of servers) dumpLog(srv.proc, 80);
    killChildren();
    console.log(`\n${testName}: ${passed} checks passed, ${failed} failed`);
    process.exit(1);
  });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killChildren();
    process.exit(130);
  });
}

const watchdogMs = Number(process.env.MCPD_E2E_TIMEOUT_MS || 90000);
setTimeout(async () => {
  console.log(`FAIL ${testName}: watchdog: still running after ${watchdogMs} ms`);
  failed++;
  for (const c of children) if (c.mcpdLog) dumpLog(c);
  killChildren();
  console.log(`\n${testName}: ${passed} checks passed, ${failed} failed`);
  process.exit(1);
}, watchdogMs).unref();

export function writeFile(name, text) {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

// Tracks a child (spawned here or by an SDK transport) for the final kill.
export function track(child) {
  if (child) {
    children.add(child);
    child.once('exit', () => children.delete(child));
  }
  return child;
}

// ---- sanitizers -------------------------------------------------------------------

const SANITIZER_RE = /ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|SUMMARY: \w+Sanitizer|runtime error: /;

// A sanitizer report (of mcpd, or of a child whose stderr mcpd relays), or null.
export function sanitizerReport(text) {
  const m = SANITIZER_RE.exec(text);
  if (!m) return null;
  const start = Math.max(0, text.lastIndexOf('\n', m.index));
  return text.slice(start, start + 3000);
}

// Checks that an mcpd process ended as it should: exit status 0, no sanitizer report.
export function checkCleanExit(what, code, signal, stderrText) {
  ok(code === 0 && signal === null, `${what}: exit status 0`, `code=${code} signal=${signal}`);
  const rep = sanitizerReport(stderrText);
  ok(rep === null, `${what}: no sanitizer report on stderr`, rep);
}

// ---- mcpd serve -----------------------------------------------------------------

// Starts `mcpd serve -c <cfg> --listen 127.0.0.1:0 --port-file F` and waits (15 s at
// most) for the port file. Returns { proc, pid, port, url, log(), stop() }.
// essential: the rest of the test needs this process; if it dies, the test ends there.
export async function startServe(configText, { name = 'mcpd', logLevel = 'debug', env = {}, essential = false } = {}) {
  const cfg = writeFile(`${name}.yaml`, configText);
  const portFile = path.join(tmp, `${name}.port`);
  const proc = track(
    spawn(bin.mcpd, ['serve', '-c', cfg, '--listen', '127.0.0.1:0', '--port-file', portFile, '--log-level', logLevel], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.mcpdLog = () => out;
  proc.mcpdName = name;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  let port = 0;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    try {
      const s = fs.readFileSync(portFile, 'utf8').trim();
      if (/^\d+$/.test(s)) {
        port = Number(s);
        break;
      }
    } catch {}
    await sleep(50);
  }
  if (!port) {
    dumpLog(proc);
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {}
    throw new Error(`${name}: no port file within 15 s (exit ${proc.exitCode}, signal ${proc.signalCode})`);
  }
  // The port file is written after the "listening on" log lines; wait until
  // the log pipe has delivered them too, so tests can read earlier lines.
  for (const t0 = Date.now(); !/listening on/.test(out) && Date.now() - t0 < 5000; ) await sleep(20);
  const server = {
    proc,
    pid: proc.pid,
    port,
    url: `http://127.0.0.1:${port}/mcp`,
    config: cfg,
    log: () => out,
    exited,
    essential,
    // SIGTERM, then wait up to timeoutMs; SIGKILL after that. Resolves {code, signal, ms}.
    stopping: false,
    async stop(timeoutMs = 15000) {
      const t0 = Date.now();
      server.stopping = true;
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(proc.pid, 'SIGTERM');
        } catch {}
      }
      const r = await Promise.race([exited, sleep(timeoutMs).then(() => null)]);
      if (r === null) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {}
        const k = await exited;
        return { ...k, ms: Date.now() - t0, killed: true };
      }
      return { ...r, ms: Date.now() - t0, killed: false };
    },
    // Stops mcpd and checks exit status 0 and a clean stderr.
    async stopAndCheck(what = name) {
      const r = await server.stop();
      ok(!r.killed, `${what}: exited within 15 s of SIGTERM`, `took ${r.ms} ms`);
      checkCleanExit(what, r.code, r.signal, out);
      if (r.code !== 0 || r.killed || sanitizerReport(out)) dumpLog(proc);
      return r;
    },
  };
  servers.push(server);
  return server;
}

export function dumpLog(proc, lines = 60) {
  const text = proc.mcpdLog ? proc.mcpdLog() : '';
  const all = text.split('\n');
  console.log(`---- last ${lines} lines of ${proc.mcpdName || 'mcpd'} (pid ${proc.pid}) output ----`);
  console.log(all.slice(-lines).join('\n'));
  console.log('---- end ----');
}

// PID of an upstream child from mcpd's log ("upstream=NAME started pid N"); the newest one.
export function upstreamPid(logText, name) {
  const re = new RegExp(`upstream=${name} started pid (\\d+)`, 'g');
  let m,
    pid = 0;
  while ((m = re.exec(logText))) pid = Number(m[1]);
  return pid;
}

export function pidAlive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  // a zombie still answers kill(0); it is gone for our purposes
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(st);
  } catch {
    return false;
  }
}

// Polls fn() every intervalMs until it returns a truthy value or timeoutMs passes.
export async function waitFor(fn, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v;
    try {
      v = await fn();
    } catch (e) {
      v = undefined;
    }
    if (v) return v;
    if (Date.now() >= deadline) return v;
    await sleep(intervalMs);
  }
}

// Runs a command to completion (timeout 30 s). Returns { code, signal, stdout, stderr }.
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30000, killSignal: 'SIGKILL', ...opts });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

// ---- raw HTTP over a socket ----------------------------------------------------------

// Sends `head` (request line + headers, CRLF-joined by the caller or an array of
// lines) and `body` on a fresh connection, and reads one response. The response
// is complete at Content-Length, at the last chunk, or when the server closes.
// Resolves { status, headers, body, json, closed, raw, ms, error }. Never rejects.
// With waitClose, the response is read until the server closes the connection.
export function rawHttp(port, head, body = '', { timeoutMs = 10000, endAfterSend = false, waitClose = false } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let done = false;
    let closed = false;
    let error = null;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const parsed = parseResponse(buf);
      sock.destroy();
      resolve({ ...parsed, closed, error, ms: Date.now() - t0, raw: buf.toString('latin1') });
    };
    const timer = setTimeout(() => {
      error = error || new Error(`no complete response within ${timeoutMs} ms`);
      finish();
    }, timeoutMs);
    sock.on('connect', () => {
      const headText = Array.isArray(head) ? head.join('\r\n') + '\r\n\r\n' : head;
      sock.write(headText);
      if (body && body.length) sock.write(body);
      if (endAfterSend) sock.end();
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!waitClose && parseResponse(buf).complete) finish();
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
  });
}

export function parseResponse(buf) {
  const text = buf.toString('latin1');
  const he = text.indexOf('\r\n\r\n');
  if (he < 0) return { complete: false, status: 0, headers: {}, body: '', json: undefined };
  const lines = text.slice(0, he).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const status = m ? Number(m[1]) : 0;
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let rest = buf.subarray(Buffer.byteLength(text.slice(0, he + 4), 'latin1'));
  let body = '';
  let complete = false;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    complete = rest.length >= n;
    body = rest.subarray(0, n).toString('utf8');
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    let off = 0;
    const parts = [];
    for (;;) {
      const crlf = rest.indexOf('\r\n', off);
      if (crlf < 0) break;
      const size = parseInt(rest.subarray(off, crlf).toString('latin1'), 16);
      if (Number.isNaN(size)) break;
      if (size === 0) {
        complete = true;
        break;
      }
      if (rest.length < crlf + 2 + size + 2) break;
      parts.push(rest.subarray(crlf + 2, crlf + 2 + size));
      off = crlf + 2 + size + 2;
    }
    body = Buffer.concat(parts).toString('utf8');
  } else {
    body = rest.toString('utf8'); // until close
    complete = status === 204 || status === 304 || (status >= 100 && status < 200);
  }
  let json;
  try {
    json = body ? JSON.parse(body) : undefined;
  } catch {
    json = undefined;
  }
  return { complete, status, headers, body, json };
}

// The messages of an SSE body ("data:" lines joined per event), parsed as JSON.
export function sseMessages(body) {
  const out = [];
  for (const ev of body.split(/\r?\n\r?\n/)) {
    const data = ev
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data) {
      try {
        out.push(JSON.parse(data));
      } catch {
        out.push(data);
      }
    }
  }
  return out;
}

// A POST to /mcp with the usual headers; `extra` overrides/extends them
// (a value of null removes a header). Returns rawHttp's result, plus
// `messages`: the JSON-RPC message(s) of a JSON or SSE body.
export async function post(port, body, extra = {}, opts = {}) {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const h = {
    Host: `127.0.0.1:${port}`,
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'Content-Length': String(payload.length),
    Connection: 'close',
    ...extra,
  };
  const lines = [`POST ${opts.path || '/mcp'} HTTP/1.1`];
  for (const [k, v] of Object.entries(h)) if (v !== null && v !== undefined) lines.push(`${k}: ${v}`);
  const r = await rawHttp(port, lines, payload, opts);
  const ct = r.headers['content-type'] || '';
  r.messages = ct.startsWith('text/event-stream') ? sseMessages(r.body) : r.json === undefined ? [] : [r.json];
  return r;
}

export const INIT_PARAMS = (version) => ({
  protocolVersion: version,
  capabilities: {},
  clientInfo: { name: 'mcpd-e2e-raw', version: '1.0.0' },
});

// initialize + notifications/initialized over raw HTTP. Returns { sid, version, init }.
export async function rawSession(port, version = '2025-06-18') {
  const init = await post(port, { jsonrpc: '2.0', id: 1, method: 'initialize', params: INIT_PARAMS(version) });
  const sid = init.headers['mcp-session-id'];
  if (init.status !== 200 || !sid) throw new Error(`initialize failed: ${init.status} ${init.raw.slice(0, 500)}`);
  const note = await post(port, { jsonrpc: '2.0', method: 'notifications/initialized' }, {
    'Mcp-Session-Id': sid,
    'MCP-Protocol-Version': version,
  });
  if (note.status !== 202) throw new Error(`notifications/initialized: ${note.status} ${note.raw.slice(0, 500)}`);
  return { sid, version, init };
}

// ---- SDK ----------------------------------------------------------------------------

// The official SDK client, imported from the cache's node_modules (next to this file).
export async function sdk() {
  const [{ Client }, { StreamableHTTPClientTransport }, { StdioClientTransport }, { SSEClientTransport }, types] = await Promise.all([
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    import('@modelcontextprotocol/sdk/client/stdio.js'),
    import('@modelcontextprotocol/sdk/client/sse.js'),
    import('@modelcontextprotocol/sdk/types.js'),
  ]);
  return { Client, StreamableHTTPClientTransport, StdioClientTransport, SSEClientTransport, types };
}

// The text of a tools/call result's content blocks.
export function texts(result) {
  return (result?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
}

// ---- helpers of the feature tests (features, isolation, remote, failures) ------------

// Records every message the transport hands to the client (in) and every one the
// client sends (out), in order. The SDK dispatches notifications in a microtask
// but responses at once, so a handler can miss a notification that arrived in
// the same read as the response although mcpd delivered it first: what mcpd
// sent is judged from this wire-level record. Call after client.connect().
export function recordWire(transport) {
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

// Calls fn() and resolves { result } or { error } (never rejects); ms = duration.
export async function settle(fn) {
  const t0 = Date.now();
  try {
    return { result: await fn(), ms: Date.now() - t0 };
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
}

// A port on 127.0.0.1 that was free a moment ago, picked below the kernel's ephemeral range
// (32768 and up by default), where outgoing connections and port-0 listeners of tests running
// alongside take theirs: a port-0 pick could be taken again before the caller's server binds it
// (seen once, e2e.credentials_oauth under ctest -j2).
export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('freePort: no free port in 20000-31999 after 100 tries');
}

// True once something accepts TCP connections on 127.0.0.1:port (bounded by timeoutMs).
export async function waitPort(port, timeoutMs = 15000) {
  return waitFor(() => new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (v) => {
      sock.destroy();
      resolve(v);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  }), timeoutMs, 100);
}

// Node servers that call listen(port) without a host bind every interface;
// this preload (the harness's loopback.cjs, recreated here) pins them to
// 127.0.0.1. Returns its path in the test's temp folder.
export function loopbackShim() {
  const p = path.join(tmp, 'loopback.cjs');
  if (!fs.existsSync(p)) {
    fs.writeFileSync(p, `const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (a0 !== null && typeof a0 === 'object' && !Array.isArray(a0)) {
    if (a0.path === undefined && a0.fd === undefined && a0.handle === undefined &&
        a0._handle === undefined && !a0.host) args[0] = Object.assign({}, a0, { host: '127.0.0.1' });
  } else if (a0 === undefined || typeof a0 === 'number' || (typeof a0 === 'string' && /^\\d+$/.test(a0))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  }
  return orig.apply(this, args);
};
`);
  }
  return p;
}

// Starts server-everything in an HTTP mode ('streamableHttp' or 'sse') on
// 127.0.0.1:port and waits (15 s at most) until the port accepts connections.
// Returns { proc, pid, port, log(), kill() }; kill() is SIGKILL by PID and
// resolves once the process has exited.
export async function startEverythingHttp(mode, port, name = `everything-${mode}`) {
  const proc = track(spawn(bin.node, ['--require', loopbackShim(), bin.everything, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port), NODE_OPTIONS: '' },
  }));
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.mcpdLog = () => out;
  proc.mcpdName = name;
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const up = await waitPort(port, 15000);
  if (!up || proc.exitCode !== null) {
    dumpLog(proc, 30);
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {}
    throw new Error(`${name}: port ${port} not accepting connections within 15 s`);
  }
  return {
    proc,
    pid: proc.pid,
    port,
    log: () => out,
    exited,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {}
      }
      return Promise.race([exited, sleep(5000).then(() => null)]);
    },
  };
}
