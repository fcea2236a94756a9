// protected_mcp.mjs - a remote MCP server (the official SDK, streamable HTTP,
// stateless) that requires "Authorization: Bearer <token>" and checks the
// token at the authorization server's introspection endpoint. For the
// credential e2e test.
//
//   E2E_RS_SECRET=... node protected_mcp.mjs <port> <introspection_url> <rs_client_id>
//
// Tool "whoami" answers "sub=<subject> client=<client_id>". Test-only routes:
//   POST /control/fail-next[?n=N][&together=1]  the next (N) MCP requests carrying a
//                             token seen before are answered 401 (a retry with a newer
//                             token passes); with together=1 the N answers are held
//                             until the Nth such request arrived (at most 5 s), so that
//                             none of them returns before all N were sent
//   POST /control/fail-get    ends the open GET streams and answers the next GET that
//                             carries a token seen before with 401
//   GET  /control/seen        [{token, status, method}] of every MCP request (the test
//                             greps mcpd's logs and files for these values)
// An authorized GET /mcp is a stream kept open (": ok" comments), so that mcpd keeps one.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const [portS, introspectUrl, rsId] = process.argv.slice(2);
const rsSecret = process.env.E2E_RS_SECRET;
const seen = [];
let failNext = 0;
let together = [];   /* held forced 401s (together=1) */
let togetherN = 0;
let togetherTimer = null;
function releaseTogether() {
  clearTimeout(togetherTimer);
  togetherTimer = null;
  const held = together;
  together = [];
  togetherN = 0;
  for (const res of held) deny(res, 'forced by the test');
}
let failTokens = new Set();
let failGet = false;
let failGetTokens = new Set();
const streams = new Set();

async function introspect(token) {
  const r = await fetch(introspectUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${rsId}:${rsSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token }).toString(),
  });
  return r.ok ? r.json() : { active: false };
}

function deny(res, why) {
  res.statusCode = 401;
  res.setHeader('www-authenticate', `Bearer error="invalid_token", error_description="${why}"`);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ error: 'invalid_token', error_description: why }));
}

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/control/fail-next') && req.method === 'POST') {
    const q = new URL(req.url, 'http://x').searchParams;
    failNext = Number(q.get('n') || 1);
    togetherN = q.get('together') === '1' ? failNext : 0;
    failTokens = new Set(seen.map((x) => x.token));
    res.end('ok');
    return;
  }
  if (req.url === '/control/fail-get' && req.method === 'POST') {
    failGet = true;
    failGetTokens = new Set(seen.map((x) => x.token));
    for (const r of streams) r.end();
    streams.clear();
    res.end('ok');
    return;
  }
  if (req.url === '/control/seen') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
    return;
  }
  if (!req.url.startsWith('/mcp')) {
    res.statusCode = 404;
    res.end();
    return;
  }
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  const token = m ? m[1] : '';
  if (req.method === 'GET' && failGet && failGetTokens.has(token)) {
    failGet = false;
    seen.push({ token, status: 401, forced: true, method: 'GET' });
    deny(res, 'forced by the test');
    return;
  }
  if (failNext > 0 && failTokens.has(token)) {
    failNext--;
    seen.push({ token, status: 401, forced: true });
    if (togetherN > 0) {
      together.push(res);
      if (together.length >= togetherN) releaseTogether();
      else if (!togetherTimer) togetherTimer = setTimeout(releaseTogether, 5000);
      return;
    }
    deny(res, 'forced by the test');
    return;
  }
  const info = token ? await introspect(token) : { active: false };
  if (!info.active) {
    seen.push({ token, status: 401 });
    deny(res, token ? 'token inactive' : 'no token');
    return;
  }
  seen.push({ token, status: 200, method: req.method });
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(': ok\n\n');
    streams.add(res);
    res.on('close', () => streams.delete(res));
    return;
  }
  if (req.method !== 'POST') {
    res.statusCode = 405;
    res.end();
    return;
  }
  const mcp = new McpServer({ name: 'protected', version: '1.0.0' });
  mcp.tool('whoami', 'who the bearer token belongs to', async () => ({
    content: [{ type: 'text', text: `sub=${info.sub ?? '-'} client=${info.client_id ?? '-'}` }],
  }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    transport.close();
    mcp.close();
  });
  await mcp.connect(transport);
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString() || 'null');
  } catch {
    body = undefined;
  }
  await transport.handleRequest(req, res, body);
});
server.listen(Number(portS), '127.0.0.1', () => console.log(`listening ${portS}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
