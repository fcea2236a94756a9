// tls.mjs - mcpd serve with `listen: { address, tls: { cert, key } }`: the
// official SDK client over https (certificate generated here with the openssl
// CLI and trusted through a custom fetch on node:https), a plaintext request
// to the TLS port (closed, mcpd keeps serving), an untrusted client refused,
// and start-up failures for bad certificate/key settings.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { bin, ok, eq, match, step, finish, startServe, rawHttp, run, sdk, texts, tmp, writeFile } from './lib.mjs';

const { Client, StreamableHTTPClientTransport } = await sdk();

// ---- a certificate for 127.0.0.1 and localhost --------------------------------------

const cert = path.join(tmp, 'cert.pem');
const key = path.join(tmp, 'key.pem');
{
  const r = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=mcpd e2e',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  if (r.code !== 0) {
    console.log(r.stderr);
    throw new Error('openssl req failed');
  }
  fs.chmodSync(key, 0o600);
}
const ca = fs.readFileSync(cert);

// A fetch for the SDK on node:https that trusts `ca` (streams the body: SSE works).
function tlsFetch(caPem) {
  const agent = new https.Agent({ ca: caPem, keepAlive: true });
  const f = (url, init = {}) =>
    new Promise((resolve, reject) => {
      const headers = {};
      new Headers(init.headers).forEach((v, k) => (headers[k] = v));
      const req = https.request(new URL(url), { method: init.method || 'GET', headers, agent }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => h.append(k, x));
          else if (v !== undefined) h.set(k, v);
        }
        const empty = res.statusCode === 204 || res.statusCode === 304;
        if (empty) res.resume();
        resolve(new Response(empty ? null : Readable.toWeb(res), { status: res.statusCode, statusText: res.statusMessage, headers: h }));
      });
      req.on('error', reject);
      if (init.signal) {
        if (init.signal.aborted) req.destroy(new Error('aborted'));
        init.signal.addEventListener('abort', () => req.destroy(new Error('aborted')));
      }
      if (init.body) req.write(init.body);
      req.end();
    });
  f.agent = agent;
  return f;
}

async function sdkRoundTrip(label, url) {
  const fetch = tlsFetch(ca);
  const client = new Client({ name: `mcpd-e2e-tls-${label}`, version: '1.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch });
  try {
    await client.connect(transport);
    ok(typeof transport.sessionId === 'string', `${label}: initialize over https (session ${transport.sessionId})`);
    const tools = await client.listTools();
    ok(tools.tools.some((t) => t.name.endsWith('test_simple_text')), `${label}: tools/list over https`,
      tools.tools.map((t) => t.name).join(','));
    const name = tools.tools.find((t) => t.name.endsWith('test_simple_text'))?.name;
    const r = await client.callTool({ name, arguments: {} });
    eq(texts(r)[0], 'This is a simple text response for testing.', `${label}: tools/call over https`);
    await transport.terminateSession().catch(() => {});
  } finally {
    await client.close().catch(() => {});
    fetch.agent.destroy();
  }
}

const config = `listen:
  address: 127.0.0.1:8443
  tls:
    cert: cert.pem
    key: key.pem
servers:
  fixture:
    command: ${bin.fixture}
`;
const srv = await startServe(config, { name: 'tls', essential: true });
const port = srv.port;
console.log(`mcpd pid ${srv.pid} on https://127.0.0.1:${port}/mcp`);

await step('mcpd says it serves https', async () => {
  match(srv.log(), /listening on https:\/\/127\.0\.0\.1:\d+\/mcp/, 'log line');
});

await step('SDK client over https (by address and by name)', async () => {
  await sdkRoundTrip('127.0.0.1', `https://127.0.0.1:${port}/mcp`);
  await sdkRoundTrip('localhost', `https://localhost:${port}/mcp`);
});

await step('a client that does not trust the certificate is refused', async () => {
  const err = await new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mcp', method: 'GET' }, (res) => {
      res.resume();
      resolve(null);
    });
    req.on('error', (e) => resolve(e));
    req.end();
  });
  ok(err && /self[- ]signed|unable to verify|certificate/i.test(String(err.code) + ' ' + err.message),
    'untrusted: TLS verification error', err ? `${err.code} ${err.message}` : 'request succeeded');
});

await step('plaintext HTTP to the TLS port fails cleanly', async () => {
  const r = await rawHttp(port, ['POST /mcp HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json',
    'Content-Length: 2'], '{}', { timeoutMs: 5000 });
  ok(r.closed, 'connection closed by mcpd', `closed=${r.closed} error=${r.error}`);
  ok(!/^HTTP\/1\.1 \d{3}/.test(r.raw), 'no plaintext HTTP answer', r.raw.slice(0, 120));
  ok(r.ms < 4000, 'closed promptly', `${r.ms} ms`);
  // a client that sends nothing is dropped at the header deadline (10 s default; not waited for)
  await sdkRoundTrip('after plaintext', `https://127.0.0.1:${port}/mcp`);
});

await step('garbage bytes and a TLS client that hangs up mid-handshake', async () => {
  const net = await import('node:net');
  await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3])); // a truncated ClientHello
      s.destroy();
      resolve();
    });
    s.on('error', resolve);
  });
  await new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(Buffer.alloc(300, 0xff)));
    s.on('close', resolve);
    s.on('error', resolve);
  });
  await sdkRoundTrip('after garbage', `https://127.0.0.1:${port}/mcp`);
});

await step('the TLS handshake counts against the header deadline (1 s)', async () => {
  const net = await import('node:net');
  // a second mcpd with a short deadline (the first keeps the default: valgrind is slow)
  const fast = await startServe(`${config}limits:\n  header_timeout: 1s\n`, { name: 'tls-deadline' });
  const port = fast.port;
  // a client that drips a ClientHello one byte every 200 ms never completes it
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  const r = await new Promise((resolve) => {
    const t0 = Date.now();
    let i = 0;
    let timer;
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      timer = setInterval(() => {
        if (i < hello.length) s.write(hello.subarray(i, i + 1));
        i++;
      }, 200);
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      resolve({ ms: Date.now() - t0 });
    });
    setTimeout(() => {
      clearInterval(timer);
      s.destroy();
      resolve({ ms: -1 });
    }, 8000);
  });
  ok(r.ms >= 800 && r.ms < 3000, 'dripping handshake closed at the header deadline', `${r.ms} ms`);
  // the same for a client that completes the handshake and then sends no request
  const tls = await import('node:tls');
  const r2 = await new Promise((resolve) => {
    const t0 = Date.now();
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    s.on('error', () => {});
    s.on('close', () => resolve({ ms: Date.now() - t0 }));
    setTimeout(() => {
      s.destroy();
      resolve({ ms: -1 });
    }, 8000);
  });
  ok(r2.ms >= 800 && r2.ms < 3000, 'silent TLS client closed at the header deadline', `${r2.ms} ms`);
  await fast.stopAndCheck('tls-deadline: mcpd serve');
});

await step('mcpd stops cleanly', async () => {
  await srv.stopAndCheck('tls: mcpd serve');
});

// ---- start-up failures ------------------------------------------------------------

function serveFails(label, cfgText, want) {
  const cfg = writeFile(`${label}.yaml`, cfgText);
  const r = run(bin.mcpd, ['serve', '-c', cfg, '--listen', '127.0.0.1:0'], { timeout: 20000 });
  ok(r.code !== 0 && r.code !== null, `${label}: mcpd serve exits with an error`, `code=${r.code} signal=${r.signal}`);
  match(r.stderr, want, `${label}: message`);
}

await step('bad certificate/key settings fail at start-up with a clear message', async () => {
  const base = (c, k) => `listen:\n  address: 127.0.0.1:0\n  tls:\n    cert: ${c}\n    key: ${k}\nservers:\n  fixture:\n    command: ${bin.fixture}\n`;
  serveFails('missing-cert', base('nope.pem', 'key.pem'),
    /missing-cert\.yaml:4:11: key 'listen\.tls\.cert': cannot read .*nope\.pem: No such file or directory/);
  serveFails('missing-key', base('cert.pem', 'nokey.pem'), /key 'listen\.tls\.key': cannot read .*nokey\.pem/);
  const loose = path.join(tmp, 'loose-key.pem');
  fs.copyFileSync(key, loose);
  fs.chmodSync(loose, 0o644);
  serveFails('loose-key', base('cert.pem', 'loose-key.pem'),
    /key 'listen\.tls\.key': the private key .*loose-key\.pem is readable by group or others/);
  const bogus = path.join(tmp, 'bogus-key.pem');
  fs.writeFileSync(bogus, 'not a key\n', { mode: 0o600 });
  serveFails('bogus-key', base('cert.pem', 'bogus-key.pem'), /listen\.tls: private key .*bogus-key\.pem/);
  serveFails('cert-as-key', base('key.pem', 'key.pem'), /listen\.tls: certificate .*key\.pem/);
  serveFails('no-address', 'listen:\n  tls: { cert: cert.pem, key: key.pem }\n', /key 'listen': needs an address/);
});

await finish();
