#!/usr/bin/env node
// echo_http.cjs: a minimal streamable-HTTP MCP echo server built on the
// official TypeScript SDK (@modelcontextprotocol/sdk), used as (a) an HTTP
// upstream for proxies that can forward to remote servers and (b) a "no
// proxy" reference: what the SDK's own HTTP stack costs per call.
//
// Usage: node echo_http.cjs --port 18090 [--host 127.0.0.1] [--stateless] [--json]
//   --stateless  no Mcp-Session-Id; a fresh Server+transport per POST (SDK pattern)
//   --json       answer POSTs with application/json instead of an SSE body
// The SDK is loaded from $MCPD_BENCH_PEERS/node_modules (default /tmp/mcpd-bench/peers;
// bench/remote.sh also finds the copy scripts/test.sh installs under ~/.cache/mcpd-test).
// Copied from shared/bench/upstream/ (the team's peer benchmark).
'use strict';
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { createRequire } = require('node:module');
const path = require('node:path');

const peers = process.env.MCPD_BENCH_PEERS || '/tmp/mcpd-bench/peers';
const req_ = createRequire(path.join(peers, 'package.json'));
const { Server } = req_('@modelcontextprotocol/sdk/server/index.js');
const { StreamableHTTPServerTransport } = req_('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { ListToolsRequestSchema, CallToolRequestSchema, isInitializeRequest } =
  req_('@modelcontextprotocol/sdk/types.js');

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : def;
};
const port = Number(opt('--port', '18090'));
const host = opt('--host', '127.0.0.1');
const stateless = argv.includes('--stateless');
const enableJsonResponse = argv.includes('--json');

const TOOLS = [
  { name: 'echo', description: 'Echo the text back',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } },
  { name: 'add', description: 'Add two numbers',
    inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } },
];

function makeServer() {
  const s = new Server({ name: 'echo-http', version: '1.0.0' }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  s.setRequestHandler(CallToolRequestSchema, async (r) => {
    const { name, arguments: a = {} } = r.params;
    if (name === 'echo') return { content: [{ type: 'text', text: String(a.text) }], isError: false };
    if (name === 'add') return { content: [{ type: 'text', text: String(Number(a.a) + Number(a.b)) }], isError: false };
    return { content: [{ type: 'text', text: `unknown tool ${name}` }], isError: true };
  });
  return s;
}

const sessions = new Map(); // session id -> transport

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (!chunks.length) return resolve(undefined);
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch (e) { reject(e); }
    });
    req.on('error', reject);
  });
}

function jsonError(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

const srv = http.createServer(async (req, res) => {
  try {
    if (!req.url.startsWith('/mcp')) return jsonError(res, 404, -32000, 'not found');
    const body = req.method === 'POST' ? await readBody(req) : undefined;
    if (stateless) {
      if (req.method !== 'POST') return jsonError(res, 405, -32000, 'Method not allowed.');
      const server = makeServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse });
      res.on('close', () => { transport.close(); server.close(); });
      await server.connect(transport);
      return await transport.handleRequest(req, res, body);
    }
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? sessions.get(sid) : undefined;
    if (!transport) {
      if (sid) return jsonError(res, 404, -32001, 'Session not found');
      if (req.method !== 'POST' || !isInitializeRequest(body))
        return jsonError(res, 400, -32000, 'Bad Request: No valid session ID provided');
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse,
        onsessioninitialized: (id) => sessions.set(id, transport),
      });
      transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
      await makeServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) jsonError(res, 500, -32603, String(e && e.message || e));
  }
});
srv.keepAliveTimeout = 300000;
srv.listen(port, host, () => {
  process.stderr.write(`echo_http listening on http://${host}:${port}/mcp stateless=${stateless} json=${enableJsonResponse}\n`);
});
const stop = () => { srv.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
