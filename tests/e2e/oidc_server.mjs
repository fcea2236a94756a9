// oidc_server.mjs - a real OAuth 2.0 authorization server for the credential
// e2e test: npm oidc-provider (pinned in scripts/deps.sh) on 127.0.0.1 with
// authorization code + PKCE, refresh tokens, client credentials, the device
// flow, introspection and revocation enabled, and short access-token
// lifetimes. Login and consent are oidc-provider's devInteractions forms,
// which the test drives over HTTP.
//
//   E2E_CLIENT_SECRET=... E2E_RS_SECRET=... node oidc_server.mjs <provider-module> <port> <redirect_uri> <access_ttl_s>
//
// Prints "listening <port>" on stdout once ready. Test-only control routes
// (not part of OAuth):
//   POST /control/slow-down-once   the next device_code poll answers slow_down
//   POST /control/revoke-refresh   destroys every refresh token (as a revocation would)
//   GET  /control/polls            times (ms) of the device_code polls seen
import http from 'node:http';

const [modPath, portS, redirectUri, ttlS] = process.argv.slice(2);
const clientSecret = process.env.E2E_CLIENT_SECRET;
const rsSecret = process.env.E2E_RS_SECRET;
const { default: Provider } = await import(modPath);
const port = Number(portS);
const accessTtl = Number(ttlS || 4);

// A small in-memory adapter of our own, so revoke-refresh can reach the tokens.
const store = new Map();
class Adapter {
  constructor(name) {
    this.name = name;
  }
  key(id) {
    return `${this.name}:${id}`;
  }
  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.userCode) store.set(`${this.name}:userCode:${payload.userCode}`, id);
    if (payload.uid) store.set(`${this.name}:uid:${payload.uid}`, id);
  }
  async find(id) {
    const e = store.get(this.key(id));
    if (!e || e.exp < Date.now()) return undefined;
    return e.payload;
  }
  async findByUserCode(code) {
    const id = store.get(`${this.name}:userCode:${code}`);
    return id ? this.find(id) : undefined;
  }
  async findByUid(uid) {
    const id = store.get(`${this.name}:uid:${uid}`);
    return id ? this.find(id) : undefined;
  }
  async consume(id) {
    const e = store.get(this.key(id));
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) {
    store.delete(this.key(id));
  }
  async revokeByGrantId(grantId) {
    for (const [k, e] of store) if (e?.payload?.grantId === grantId) store.delete(k);
  }
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: Adapter,
  clients: [
    {
      client_id: 'mcpd',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access api',
    },
    {
      client_id: 'mcp-rs',
      client_secret: rsSecret,
      redirect_uris: [],
      grant_types: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  cookies: { keys: ['mcpd-e2e-cookie-key'] },
  scopes: ['openid', 'offline_access', 'api'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
});
provider.proxy = false;

const polls = [];
let slowDownOnce = false;
const handler = provider.callback();

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

const server = http.createServer(async (req, res) => {
  if (req.url === '/control/slow-down-once' && req.method === 'POST') {
    slowDownOnce = true;
    res.end('ok');
    return;
  }
  if (req.url === '/control/revoke-refresh' && req.method === 'POST') {
    let n = 0;
    for (const k of [...store.keys()]) if (k.startsWith('RefreshToken:')) (store.delete(k), n++);
    res.end(JSON.stringify({ revoked: n }));
    return;
  }
  if (req.url === '/control/polls') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(polls));
    return;
  }
  if (req.url === '/token' && req.method === 'POST') {
    // look at the grant without consuming the body for oidc-provider
    const body = await readBody(req);
    const form = new URLSearchParams(body.toString());
    if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:device_code') {
      polls.push(Date.now());
      if (slowDownOnce) {
        slowDownOnce = false;
        res.statusCode = 400;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: 'slow_down', error_description: 'you are polling too quickly' }));
        return;
      }
    }
    // hand the body on: a fresh readable with the same bytes
    const { Readable } = await import('node:stream');
    const again = Readable.from([body]);
    Object.assign(again, { headers: req.headers, method: req.method, url: req.url, httpVersion: req.httpVersion, socket: req.socket, connection: req.socket });
    again.httpVersionMajor = req.httpVersionMajor;
    again.httpVersionMinor = req.httpVersionMinor;
    handler(again, res);
    return;
  }
  handler(req, res);
});
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
