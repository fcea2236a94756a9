#!/usr/bin/env node
// The smallest MCP server over stdio: one tool, `greet`. No dependencies.
import { createInterface } from 'node:readline';

const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const tools = [{
  name: 'greet',
  description: 'Say hello',
  inputSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
}];

createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (m.id === undefined) return; // notifications
  const ok = (result) => send({ jsonrpc: '2.0', id: m.id, result });
  switch (m.method) {
    case 'initialize':
      return ok({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} },
                  serverInfo: { name: 'hello', version: '1.0.0' } });
    case 'ping': return ok({});
    case 'tools/list': return ok({ tools });
    case 'tools/call':
      return ok({ content: [{ type: 'text', text: `hello, ${m.params.arguments?.name}` }] });
    default:
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'method not found' } });
  }
});
