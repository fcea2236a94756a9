// mcpd_as_client.mjs MCPD CONFIG - the driver of mcpd_as_client.sh: starts
// `MCPD stdio -c CONFIG` with the official SDK client over stdio, lists the
// tools and calls the first one (add_numbers gets {a: 2, b: 3}; other tools
// get arguments made from their input schema), prints what happened on
// stderr and exits 0 when every step worked (1 otherwise).
//
// Run from a folder whose node_modules has @modelcontextprotocol/sdk
// (mcpd_as_client.sh arranges that).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const [mcpd, config] = process.argv.slice(2);
if (!mcpd || !config) {
  console.error('usage: mcpd_as_client.mjs MCPD CONFIG');
  process.exit(2);
}
const say = (s) => console.error(`mcpd_as_client: ${s}`);
const watchdog = setTimeout(() => {
  say('timed out after 25 s');
  process.exit(1);
}, 25000);

function argsFor(tool) {
  if (tool.name === 'add_numbers') return { a: 2, b: 3 };
  const out = {};
  for (const [k, s] of Object.entries(tool.inputSchema?.properties ?? {})) {
    if (s.type === 'number' || s.type === 'integer') out[k] = 1;
    else if (s.type === 'boolean') out[k] = true;
    else if (s.type === 'array') out[k] = [];
    else if (s.type === 'object') out[k] = {};
    else out[k] = 'test';
  }
  return out;
}

const client = new Client({ name: 'mcpd-conformance-driver', version: '1.0.0' }, { capabilities: {} });
const transport = new StdioClientTransport({ command: mcpd, args: ['stdio', '-c', config, '--log-level', 'debug'], stderr: 'inherit' });
let rc = 0;
try {
  await client.connect(transport);
  say(`connected to mcpd: ${JSON.stringify(client.getServerVersion())}`);
  const { tools } = await client.listTools();
  say(`tools/list: ${JSON.stringify(tools.map((t) => t.name))}`);
  if (tools.length > 0) {
    const t = tools[0];
    const args = argsFor(t);
    const r = await client.callTool({ name: t.name, arguments: args }, undefined, { timeout: 20000 });
    say(`tools/call ${t.name} ${JSON.stringify(args)} -> ${JSON.stringify(r)}`);
    if (r.isError) rc = 1;
    if (t.name === 'add_numbers' && !(r.content ?? []).some((c) => c.text === 'The sum of 2 and 3 is 5')) {
      say('add_numbers: unexpected result');
      rc = 1;
    }
  }
} catch (e) {
  say(`error: ${e?.message ?? e}`);
  rc = 1;
}
try {
  await client.close();
} catch {}
clearTimeout(watchdog);
process.exit(rc);
