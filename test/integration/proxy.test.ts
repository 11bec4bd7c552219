/**
 * The data plane end to end: real upstream `http.Server`s and a real
 * ProxyServer on 127.0.0.1 port 0, real HTTPS/TLS/WebSocket clients that trust
 * only the test root and connect to 127.0.0.1 with `servername` and `Host`
 * set. No name is ever resolved.
 *
 * The :443 suites run three times: an HTTP/1.1 client and an HTTP/2 client
 * against the default server (h2 and http/1.1 on one port), and an HTTP/1.1
 * client against a server with HTTP/2 off (`--http2 false`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import tls from 'node:tls';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { TokenMap } from '../../src/acme/http01.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { ProxyServer, type ProxyTimeouts } from '../../src/proxy/server.js';
import { AdminServer } from '../../src/observe/admin.js';
import { CertificateRegistry, type CertificateEntry } from '../../src/tls/contexts.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { httpsClient, type Ask, type ClientProtocol, type HttpsClient, type Reply } from '../support/https-client.js';

/** Who talks to :443, and whether the server offers HTTP/2. */
interface Variant {
  name: string;
  client: ClientProtocol;
  http2: boolean;
}
const VARIANTS: Variant[] = [
  { name: 'HTTP/1.1 client, HTTP/2 server', client: 'http/1.1', http2: true },
  { name: 'HTTP/2 client', client: 'h2', http2: true },
  { name: 'HTTP/1.1 client, --http2 false', client: 'http/1.1', http2: false },
];

// ---------- upstreams ----------

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Upstream {
  name: string;
  port: number;
  url: string;
  /** TCP connections the upstream accepted. */
  connections: number;
  seen: Seen[];
  close(): Promise<void>;
}

/** An upstream that answers JSON about what it received; `/hang` never answers; `?delay=MS` waits; WebSocket echo. */
async function startUpstream(name: string): Promise<Upstream> {
  const state = { connections: 0, seen: [] as Seen[] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      state.seen.push({ url: req.url ?? '', headers: req.headers, body });
      if ((req.url ?? '').startsWith('/hang')) return;
      const delay = Number(new URL(req.url ?? '/', 'http://upstream.invalid').searchParams.get('delay') ?? 0);
      setTimeout(() => {
        const payload = JSON.stringify({ name, url: req.url, body });
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          connection: 'keep-alive, x-up-hop',
          'x-up-hop': 'must not reach the client',
          'x-end-to-end': 'kept',
        });
        res.end(payload);
      }, delay);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => state.connections++);
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    state.seen.push({ url: req.url ?? '', headers: req.headers, body: '' });
    ws.on('message', (m) => ws.send(`${name}:${String(m)}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    seen: state.seen,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A loopback port with nothing listening (connections are refused). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// ---------- clients ----------

let root: TestCert;

/** A plain-HTTP (:80) request; the answer as the HTTPS clients give it. */
function httpGet(port: number, ask: Pick<Ask, 'host' | 'path' | 'method' | 'headers'> & { body?: string }): Promise<Pick<Reply, 'status' | 'headers' | 'body'>> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: ask.path ?? '/', method: ask.method ?? 'GET', headers: { host: ask.host, ...ask.headers }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end(ask.body);
  });
}

/** The certificate a fresh TLS handshake for `servername` is shown, or the handshake error. */
function handshake(
  port: number,
  servername: string,
  ciphers?: string,
): Promise<{ fingerprint: string; alpn: string | false | null; protocol: string | null; cipher: string } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: root.cert, ALPNProtocols: ['h2', 'http/1.1'], ...(ciphers ? { ciphers } : {}) });
    s.once('secureConnect', () => {
      resolve({ fingerprint: s.getPeerCertificate().fingerprint256, alpn: s.alpnProtocol, protocol: s.getProtocol(), cipher: s.getCipher().standardName });
      s.destroy();
    });
    s.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
  });
}

function openWebSocket(port: number, host: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // ws hands TLS options (servername, ca) through to tls.connect; its types only list some.
    const options: WebSocket.ClientOptions & tls.ConnectionOptions = { headers: { host }, servername: host, ca: root.cert };
    const ws = new WebSocket(`wss://127.0.0.1:${port}/chat`, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo within 5 s')), 5_000);
    ws.once('message', (m) => {
      clearTimeout(timer);
      resolve(String(m));
    });
    ws.send(text);
  });
}

// ---------- fixtures ----------

const site = (host: string, upstreams: string[], extra: Partial<SiteSpec> = {}): SiteSpec => ({
  host,
  upstreams: upstreams.map((url) => ({ url })),
  https: true,
  redirect: true,
  issuer: 'acme',
  ...extra,
});

const fp = (c: TestCert) => new X509Certificate(c.cert).fingerprint256;

for (const v of VARIANTS) describe(`proxy data plane (${v.name})`, () => {
  const client = httpsClient(v.client, () => root.cert);
  const httpsGet = (port: number, ask: Ask): Promise<Reply> => client.request(port, ask);
  let pki: TestPki;
  const certs: Record<string, TestCert> = {};
  let renewedApp: TestCert;
  let registry: CertificateRegistry;
  let tokens: TokenMap;
  let proxy: ProxyServer;
  let ports: { httpPort: number; httpsPort: number };
  const upstreams: Upstream[] = [];
  const NAMES = ['app.example.com', 'two.example.com', 'down.example.com', 'slow.example.com', 'ws.example.com', 'other.example.com', 'hsts.example.com'];

  const snapshot = (override: Record<string, { cert: TestCert; version: string }> = {}): Map<string, CertificateEntry> => {
    const m = new Map<string, CertificateEntry>();
    for (const name of NAMES) m.set(name, { certPem: certs[name]!.cert, keyPem: certs[name]!.key, version: '1' });
    for (const [name, { cert, version }] of Object.entries(override)) m.set(name, { certPem: cert.cert, keyPem: cert.key, version });
    return m;
  };
  const up = async (name: string) => {
    const u = await startUpstream(name);
    upstreams.push(u);
    return u;
  };
  const newProxy = async (timeouts: ProxyTimeouts = {}) => {
    const p = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens, certificates: registry, logger: silentLogger, timeouts, ...(v.http2 ? {} : { http2: false as const }) });
    return { p, ports: await p.listen() };
  };

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'Proxy Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const leaf = { issuer: root, kind: 'leaf' as const, notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) };
    for (const name of NAMES) certs[name] = await pki.issue({ ...leaf, cn: name, names: [name] });
    renewedApp = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    registry = new CertificateRegistry();
    registry.replace(snapshot());
    tokens = new TokenMap();
    ({ p: proxy, ports } = await newProxy({ connectMs: 1_000, responseMs: 1_500, upstreamDownMs: 60_000 }));
  });

  after(async () => {
    await proxy?.close({ drainMs: 0 });
    for (const u of upstreams) await u.close();
    await pki?.cleanup();
  });

  it('proxies a 200 with its body, and the upstream sees padlock\'s X-Forwarded-* (not the client\'s) and no hop-by-hop header', async () => {
    const a = await up('a');
    proxy.setSites([site('app.example.com', [a.url])]);
    // HTTP/2 has no connection-specific fields (a client cannot even send them); HTTP/1.1 names one more in Connection.
    const hopByHop: Record<string, string> = v.client === 'h2'
      ? { 'proxy-authorization': 'Basic Zm9vOmJhcg==', te: 'trailers' }
      : { connection: 'keep-alive, x-client-hop', 'x-client-hop': 'secret', 'keep-alive': 'timeout=99', 'proxy-authorization': 'Basic Zm9vOmJhcg==', te: 'trailers' };
    const r = await httpsGet(ports.httpsPort, {
      host: 'app.example.com',
      path: '/hello?x=1',
      method: 'POST',
      body: 'ping',
      headers: { ...hopByHop, 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'spoofed' },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { name: 'a', url: '/hello?x=1', body: 'ping' });
    const seen = a.seen.at(-1)!;
    // The client is no trusted proxy: its X-Forwarded-For and -Proto are replaced, not appended to.
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], 'app.example.com');
    assert.equal(seen.headers['x-forwarded-port'], String(ports.httpsPort));
    assert.equal(seen.headers.host, 'app.example.com');
    for (const h of ['x-client-hop', 'keep-alive', 'proxy-authorization', 'te']) assert.equal(seen.headers[h], undefined, `${h} reached the upstream`);
    assert.notEqual(seen.headers.connection, 'keep-alive, x-client-hop');
    assert.equal(seen.headers.via, `${v.client === 'h2' ? '2' : '1.1'} padlock`);
    // And back: the upstream's Connection-named header is gone, end-to-end ones stay.
    assert.equal(r.headers['x-up-hop'], undefined);
    if (v.client === 'h2') for (const h of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(r.headers[h], undefined, `${h} reached the h2 client`);
    assert.equal(r.headers['x-end-to-end'], 'kept');
    assert.equal(r.headers['strict-transport-security'], undefined, 'no HSTS unless the site asks');
  });

  it('keeps the client connection alive and reuses one upstream connection', async () => {
    const a = await up('keepalive');
    proxy.setSites([site('app.example.com', [a.url])]);
    const agent = client.connection(ports.httpsPort);
    try {
      const sockets = new Set<object>();
      for (let i = 0; i < 10; i++) {
        const r = await httpsGet(ports.httpsPort, { host: 'app.example.com', path: `/k${i}`, connection: agent });
        assert.equal(r.status, 200);
        assert.notEqual(r.headers.connection, 'close');
        sockets.add(r.socket);
      }
      assert.equal(sockets.size, 1, 'one client connection for ten requests');
      assert.equal(a.seen.length, 10);
      assert.equal(a.connections, 1, 'one upstream connection for ten requests');
    } finally {
      agent.close();
    }
  });

  it('round robins over two upstreams', async () => {
    const [a, b] = [await up('rr-a'), await up('rr-b')];
    proxy.setSites([site('two.example.com', [a.url, b.url])]);
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push(JSON.parse((await httpsGet(ports.httpsPort, { host: 'two.example.com' })).body).name);
    assert.deepEqual(names.filter((n) => n === 'rr-a').length, 3);
    assert.deepEqual(names.filter((n) => n === 'rr-b').length, 3);
  });

  it('skips an upstream that refuses connections: every request still gets 200', async () => {
    const live = await up('live');
    const dead = `http://127.0.0.1:${await deadPort()}`;
    proxy.setSites([site('two.example.com', [dead, live.url])]);
    const before = proxy.stats().upstreamRetries;
    for (let i = 0; i < 6; i++) {
      const r = await httpsGet(ports.httpsPort, { host: 'two.example.com' });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).name, 'live');
    }
    assert.equal(live.seen.length, 6);
    assert.equal(proxy.stats().upstreamRetries - before, 1, 'one retry, then the dead one is skipped');
    assert.ok(proxy.stats().upstreamsDown >= 1);
  });

  it('retries an idempotent request once when a reused upstream connection is reset, but never a POST with a body', async () => {
    // A raw upstream: the first GET on each connection is answered keep-alive; the next request, and any POST, meet a reset.
    let posts = 0;
    const raw = net.createServer((sock) => {
      let buffered = '';
      let answered = 0;
      sock.on('error', () => undefined);
      sock.setEncoding('utf8').on('data', (d: string) => {
        buffered += d;
        let end: number;
        while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
          const head = buffered.slice(0, end);
          const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buffered.length < end + 4 + length) return;
          buffered = buffered.slice(end + 4 + length);
          if (head.startsWith('POST ')) {
            posts++;
            return void sock.resetAndDestroy();
          }
          if (answered++ === 0) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
          else return void sock.resetAndDestroy();
        }
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`;
      proxy.setSites([site('app.example.com', [url])]);
      const retriesBefore = proxy.stats().upstreamRetries;
      assert.equal((await httpsGet(ports.httpsPort, { host: 'app.example.com', path: '/one' })).status, 200);
      const second = await httpsGet(ports.httpsPort, { host: 'app.example.com', path: '/two' });
      assert.equal(second.status, 200, 'the GET met a reset on the reused connection and was retried');
      assert.equal(proxy.stats().upstreamRetries - retriesBefore, 1);
      const post = await httpsGet(ports.httpsPort, { host: 'app.example.com', path: '/three', method: 'POST', body: 'payload' });
      assert.equal(post.status, 502, 'a POST is not replayed');
      assert.equal(posts, 1, 'the upstream saw the POST once');
      assert.equal(proxy.stats().upstreamRetries - retriesBefore, 1);
    } finally {
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  it('answers 502 for a down upstream and 504 for a slow one, naming no address', async () => {
    const deadP = await deadPort();
    const slow = await up('slow');
    proxy.setSites([site('down.example.com', [`http://127.0.0.1:${deadP}`]), site('slow.example.com', [slow.url])]);
    const down = await httpsGet(ports.httpsPort, { host: 'down.example.com' });
    assert.equal(down.status, 502);
    const late = await httpsGet(ports.httpsPort, { host: 'slow.example.com', path: '/hang' });
    assert.equal(late.status, 504);
    for (const page of [down, late]) {
      assert.match(page.headers['content-type'] ?? '', /^text\/html/);
      assert.match(page.body, new RegExp(String(page.status)));
      for (const leak of ['127.0.0.1', String(deadP), String(slow.port), 'ECONN', 'Error', ' at ']) assert.ok(!page.body.includes(leak), `page leaks ${leak}`);
    }
  });

  // :80 does not depend on the :443 client: once is enough.
  if (v === VARIANTS[0]) it(':80 answers the ACME challenge for any host, 308 to HTTPS with the port, 404 for unknown hosts, and proxies a plain-HTTP site', async () => {
    const plain = await up('plain');
    proxy.setSites([site('app.example.com', [plain.url]), site('plain.example.com', [plain.url], { https: false })]);
    tokens.set('tok_abc-1', 'tok_abc-1.thumbprint');
    try {
      const ch = await httpGet(ports.httpPort, { host: 'not-routed.example.com', path: '/.well-known/acme-challenge/tok_abc-1' });
      assert.equal(ch.status, 200);
      assert.equal(ch.body, 'tok_abc-1.thumbprint');
      const redirect = await httpGet(ports.httpPort, { host: 'App.Example.com:80', path: '/a/b?c=d&e' });
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers.location, `https://app.example.com:${ports.httpsPort}/a/b?c=d&e`);
      assert.equal((await httpGet(ports.httpPort, { host: 'unknown.example.com' })).status, 404);
      const proxied = await httpGet(ports.httpPort, { host: 'plain.example.com', path: '/p' });
      assert.equal(proxied.status, 200);
      assert.equal(JSON.parse(proxied.body).url, '/p');
      assert.equal(plain.seen.at(-1)!.headers['x-forwarded-proto'], 'http');
      assert.equal(plain.seen.at(-1)!.headers['x-forwarded-port'], String(ports.httpPort), 'the port the request came in on');
      const ws = new WebSocket(`ws://127.0.0.1:${ports.httpPort}/live`, { headers: { host: 'plain.example.com' } });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      assert.equal(await echo(ws, 'hi'), 'plain:hi');
      ws.close();
    } finally {
      tokens.delete('tok_abc-1');
    }
  });

  it('refuses an unknown SNI name with an unrecognized_name alert, and answers 421 to a Host the connection does not serve', async () => {
    const a = await up('sni');
    proxy.setSites([site('app.example.com', [a.url]), site('other.example.com', [a.url])]);
    const known = await handshake(ports.httpsPort, 'app.example.com');
    assert.ok('fingerprint' in known, 'a known name completes the handshake');
    assert.equal(known.alpn, v.http2 ? 'h2' : 'http/1.1', 'ALPN prefers h2 when HTTP/2 is on');
    assert.equal(known.protocol, 'TLSv1.3');
    const unknown = await handshake(ports.httpsPort, 'unknown.example.com');
    assert.ok('error' in unknown, 'the handshake must fail');
    assert.equal(unknown.error.code, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    const noSni = await handshake(ports.httpsPort, '');
    assert.ok('error' in noSni, 'no SNI: no default certificate is shown');
    const misdirected = await httpsGet(ports.httpsPort, { servername: 'app.example.com', host: 'other.example.com' });
    assert.equal(misdirected.status, 421);
    assert.equal(a.seen.length, 0, 'nothing was forwarded');
    const routeless = await httpsGet(ports.httpsPort, { host: 'hsts.example.com' });
    assert.equal(routeless.status, 421, 'a certificate but no route');
  });

  it("picks TLS 1.3's AES-128-GCM suite first (Mozilla's order), and still serves a client that offers only AES-256 or ChaCha20", async () => {
    const a = await up('suites');
    proxy.setSites([site('app.example.com', [a.url])]);
    // Node's (and OpenSSL's) default client list puts TLS_AES_256_GCM_SHA384 first: the server's order decides.
    const defaults = await handshake(ports.httpsPort, 'app.example.com');
    assert.ok('cipher' in defaults, 'the handshake completes');
    assert.equal(defaults.protocol, 'TLSv1.3');
    assert.equal(defaults.cipher, 'TLS_AES_128_GCM_SHA256');
    for (const only of ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
      const r = await handshake(ports.httpsPort, 'app.example.com', only);
      assert.ok('cipher' in r, `a client offering only ${only} is served`);
      assert.equal(r.cipher, only);
    }
  });

  it('adds HSTS for a site with hstsMaxAge, and only for it', async () => {
    const a = await up('hsts');
    proxy.setSites([site('hsts.example.com', [a.url], { hstsMaxAge: 31_536_000 }), site('app.example.com', [a.url])]);
    assert.equal((await httpsGet(ports.httpsPort, { host: 'hsts.example.com' })).headers['strict-transport-security'], 'max-age=31536000');
    assert.equal((await httpsGet(ports.httpsPort, { host: 'app.example.com' })).headers['strict-transport-security'], undefined);
  });

  it('streams a chunked 4 MiB upload to the upstream and its 4 MiB answer back intact, and a client that hangs up ends the upstream request', async () => {
    let streamClosed: (() => void) | undefined;
    const upstreamSawClose = new Promise<void>((r) => (streamClosed = r));
    const echoServer = http.createServer((req, res) => {
      if (req.url === '/forever') {
        // Streams until the response is closed under it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 1)), 5);
        res.once('close', () => {
          clearInterval(timer);
          streamClosed?.();
        });
        return;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      req.on('end', () => {
        const body = Buffer.alloc(4 * 1024 * 1024, 7);
        res.writeHead(200, { 'x-got-bytes': String(bytes), 'x-got-sha256': hash.digest('hex'), 'x-got-te': String(req.headers['transfer-encoding']) });
        res.end(body);
      });
    });
    await new Promise<void>((r) => echoServer.listen(0, '127.0.0.1', r));
    try {
      proxy.setSites([site('app.example.com', [`http://127.0.0.1:${(echoServer.address() as net.AddressInfo).port}`])]);
      const upload = randomBytes(4 * 1024 * 1024);
      // No Content-Length, 64 KiB writes: HTTP/1.1 sends the body chunked, HTTP/2 in DATA frames.
      const pieces: Buffer[] = [];
      for (let i = 0; i < upload.length; i += 64 * 1024) pieces.push(upload.subarray(i, i + 64 * 1024));
      const got = await httpsGet(ports.httpsPort, { host: 'app.example.com', path: '/upload', method: 'PUT', body: pieces, timeoutMs: 20_000 });
      const reply = { ...got, bytes: got.raw.length, sha256: createHash('sha256').update(got.raw).digest('hex') };
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-got-bytes'], String(upload.length));
      assert.equal(reply.headers['x-got-sha256'], createHash('sha256').update(upload).digest('hex'), 'the upload arrived byte for byte');
      assert.equal(reply.headers['x-got-te'], 'chunked', 'a body without a length is sent on chunked');
      assert.equal(reply.bytes, 4 * 1024 * 1024);
      assert.equal(reply.sha256, createHash('sha256').update(Buffer.alloc(4 * 1024 * 1024, 7)).digest('hex'), 'the download arrived byte for byte');

      // A client that reads a little of an endless stream, then hangs up (HTTP/2: resets the stream).
      await client.readThenHangUp(ports.httpsPort, { host: 'app.example.com', path: '/forever' });
      const closed = await Promise.race([upstreamSawClose.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      assert.ok(closed, 'the upstream response was closed within 5 s of the client hanging up');
    } finally {
      echoServer.closeAllConnections();
      await new Promise<void>((r) => echoServer.close(() => r()));
    }
  });

  // Raw HTTP/1.1 on :80 (test/integration/h2.test.ts has the HTTP/2 side of interim answers).
  if (v === VARIANTS[0]) it('passes early hints and odd but valid upstream answers on, and refuses an absolute-form target for another host', async () => {
    // A raw upstream whose answer depends on the path; every request is answered on a keep-alive connection.
    const seenTargets: string[] = [];
    const answers: Record<string, string> = {
      '/hints': 'HTTP/1.1 103 Early Hints\r\nlink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
      '/processing': 'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
      '/reason': 'HTTP/1.1 200 R\xe9ussi\r\ncontent-length: 2\r\n\r\nok',
      '/two-connection-headers': 'HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nconnection: x-up-hop\r\nx-up-hop: gone\r\ncontent-length: 2\r\n\r\nok',
    };
    let upstreamConnections = 0;
    const rawSockets = new Set<net.Socket>();
    const raw = net.createServer((sock) => {
      upstreamConnections++;
      rawSockets.add(sock);
      let buffered = '';
      sock.on('error', () => undefined);
      sock.setEncoding('latin1').on('data', (d: string) => {
        buffered += d;
        let end: number;
        while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
          const head = buffered.slice(0, end);
          buffered = buffered.slice(end + 4);
          const [method, target] = head.split(' ');
          seenTargets.push(`${method} ${target}`);
          sock.write(answers[target ?? ''] ?? (method === 'HEAD' ? 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n' : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), 'latin1');
        }
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    /** Sends raw bytes to padlock's :80 and returns everything until padlock closes (requests say `connection: close`). */
    const exchange = (text: string) => new Promise<string>((resolve, reject) => {
      const s = net.connect(ports.httpPort, '127.0.0.1');
      let got = '';
      s.setEncoding('latin1').on('data', (d: string) => (got += d));
      s.on('error', reject);
      s.on('close', () => resolve(got));
      s.setTimeout(5_000, () => s.destroy(new Error(`no answer to ${JSON.stringify(text)}; got ${JSON.stringify(got)}`)));
      s.write(text);
    });
    const get = (target: string, host = 'plain.example.com', method = 'GET') => exchange(`${method} ${target} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
    try {
      proxy.setSites([site('plain.example.com', [`http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`], { https: false })]);

      const hints = await get('/hints');
      assert.match(hints, /^HTTP\/1\.1 103 Early Hints\r\n(?:.*\r\n)*link: <\/app\.css>; rel=preload\r\n/i, 'the early hint reaches the client first');
      assert.match(hints, /\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, 'then the answer');
      assert.match(await get('/processing'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, '102 Processing is dropped, the answer kept');
      assert.match(await get('/reason'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, 'a reason phrase Node cannot send becomes the standard one');
      const twoConnection = await get('/two-connection-headers');
      assert.match(twoConnection, /^HTTP\/1\.1 200 OK\r\n/);
      assert.doesNotMatch(twoConnection, /x-up-hop/i, 'both Connection headers were honoured');

      // HEAD keeps its upstream connection: three HEADs, one connection.
      const connectionsBefore = upstreamConnections;
      for (let i = 0; i < 3; i++) assert.match(await get(`/head-${i}`, 'plain.example.com', 'HEAD'), /^HTTP\/1\.1 200 OK\r\n(?:.*\r\n)*content-length: 5\r\n/i);
      assert.ok(upstreamConnections - connectionsBefore <= 1, `HEADs reuse the upstream connection (opened ${upstreamConnections - connectionsBefore})`);

      // Absolute form: same host -> forwarded in origin form; another host -> 400, nothing forwarded.
      assert.match(await get('http://plain.example.com/abs?q=1'), /^HTTP\/1\.1 200 OK\r\n/);
      assert.equal(seenTargets.at(-1), 'GET /abs?q=1');
      const count = seenTargets.length;
      assert.match(await get('http://internal-admin.example.com:9999/admin'), /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.equal(seenTargets.length, count, 'a target naming another host was not forwarded');
      assert.match(await get('*', 'plain.example.com', 'OPTIONS'), /^HTTP\/1\.1 200 OK\r\n/, 'OPTIONS * is answered by padlock');
      assert.equal(seenTargets.length, count);
    } finally {
      for (const sock of rawSockets) sock.destroy();
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  // WebSockets are HTTP/1.1 upgrades: once per server kind (with and without HTTP/2 on the port).
  if (v.client === 'http/1.1') it('keeps a WebSocket open and echoing across a certificate replace() and a route change for another name', async () => {
    const w = await up('ws');
    const other = await up('other');
    proxy.setSites([site('ws.example.com', [w.url]), site('other.example.com', [other.url])]);
    const ws = await openWebSocket(ports.httpsPort, 'ws.example.com');
    try {
      assert.equal(await echo(ws, 'one'), 'ws:one');
      assert.equal(proxy.stats().websockets, 1);
      registry.replace(snapshot({ 'ws.example.com': { cert: certs['other.example.com']!, version: 'swapped' }, 'app.example.com': { cert: renewedApp, version: '2' } }));
      assert.equal(await echo(ws, 'two'), 'ws:two');
      proxy.setSites([site('ws.example.com', [w.url]), site('other.example.com', [w.url])]);
      assert.equal(await echo(ws, 'three'), 'ws:three');
      registry.replace(snapshot());
      proxy.setSites([site('ws.example.com', [w.url])]);
      assert.equal(await echo(ws, 'four'), 'ws:four');
      assert.equal(ws.readyState, WebSocket.OPEN);
      assert.equal(w.seen.at(-1)!.headers['x-forwarded-proto'], 'https');
    } finally {
      ws.close();
    }
  });

  it('under a bounded load loop, 50 certificate replacements fail no request, and new handshakes see the new certificate', async () => {
    const a = await up('load');
    proxy.setSites([site('app.example.com', [a.url])]);
    const deadline = Date.now() + 3_000;
    const PER_CLIENT = 300;
    let ok = 0;
    const failures: string[] = [];
    const fingerprints = new Set<string>();
    let stop = false;
    const loop = async (keepAlive: boolean) => {
      const agent = keepAlive ? client.connection(ports.httpsPort) : undefined;
      try {
        for (let i = 0; i < PER_CLIENT && !stop && Date.now() < deadline; i++) {
          try {
            const r = await httpsGet(ports.httpsPort, { host: 'app.example.com', path: `/load${i}`, ...(agent ? { connection: agent } : {}) });
            if (r.status === 200) ok++;
            else failures.push(`status ${r.status}`);
            if (r.fingerprint) fingerprints.add(r.fingerprint);
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      } finally {
        agent?.close();
      }
    };
    // Two clients reuse one connection, two open a new TLS connection (a new handshake) per request.
    const clients = [loop(true), loop(true), loop(false), loop(false)];
    const versions = [renewedApp, certs['app.example.com']!];
    for (let i = 1; i <= 50; i++) {
      registry.replace(snapshot({ 'app.example.com': { cert: versions[i % 2]!, version: `load-${i}` } }));
      await new Promise((r) => setTimeout(r, 40));
    }
    // Pin the last version and check that a fresh handshake now gets it.
    registry.replace(snapshot({ 'app.example.com': { cert: renewedApp, version: 'final' } }));
    const seenNow = await handshake(ports.httpsPort, 'app.example.com');
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    assert.ok('fingerprint' in seenNow);
    assert.equal(seenNow.fingerprint, fp(renewedApp));
    assert.ok(fingerprints.has(fp(renewedApp)) && fingerprints.has(fp(certs['app.example.com']!)), 'clients saw both certificates');
    registry.replace(snapshot());
  });
});

for (const v of VARIANTS) describe(`proxy shutdown (${v.name})`, () => {
  const client = httpsClient(v.client, () => root.cert);
  const httpsGet = (port: number, ask: Ask): Promise<Reply> => client.request(port, ask);
  /** A proxy of its own (these tests close it) serving app.example.com with a fresh root, and an upstream. */
  const loneProxy = async (rootName: string, upstreamName: string) => {
    const pki = await TestPki.create();
    const slow = await startUpstream(upstreamName);
    const now = Date.now();
    root = await pki.issue({ cn: rootName, kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    const leaf = await pki.issue({ cn: 'app.example.com', issuer: root, kind: 'leaf', names: ['app.example.com'], notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    const registry = new CertificateRegistry();
    registry.replace(new Map([['app.example.com', { certPem: leaf.cert, keyPem: leaf.key, version: '1' }]]));
    const proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger, ...(v.http2 ? {} : { http2: false as const }) });
    return { pki, slow, proxy };
  };

  it('close({ drainMs }) lets an in-flight slow request finish, then stops accepting', async () => {
    const { pki, slow, proxy } = await loneProxy('Drain Root', 'drain');
    try {
      const { httpsPort } = await proxy.listen();
      proxy.setSites([site('app.example.com', [slow.url])]);
      const inFlight = httpsGet(httpsPort, { host: 'app.example.com', path: '/s?delay=400' });
      while (slow.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
      assert.equal(proxy.stats().inFlight, 1);
      const closed = proxy.close({ drainMs: 5_000 });
      const r = await inFlight;
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).name, 'drain');
      await closed;
      assert.equal(proxy.stats().openConnections, 0);
      await assert.rejects(httpsGet(httpsPort, { host: 'app.example.com' }), /ECONNREFUSED/);
      assert.equal(proxy.stats().requestsByStatus['200'], 1);
    } finally {
      await proxy.close({ drainMs: 0 });
      await slow.close();
      await pki.cleanup();
    }
  });

  it('close({ drainMs }) cuts a request that outlives the drain window', async () => {
    const { pki, slow, proxy } = await loneProxy('Cut Root', 'cut');
    try {
      const { httpsPort } = await proxy.listen();
      proxy.setSites([site('app.example.com', [slow.url])]);
      // Settled into a value at once, so the rejection is never unhandled while close() runs.
      const ws = await openWebSocket(httpsPort, 'app.example.com');
      const wsClosed = new Promise((resolve) => ws.once('close', resolve));
      assert.equal(await echo(ws, 'x'), 'cut:x');
      const inFlight = httpsGet(httpsPort, { host: 'app.example.com', path: '/hang' }).then(
        (r) => `answered ${r.status}`,
        (err: NodeJS.ErrnoException) => err,
      );
      while (!slow.seen.some((x) => x.url.startsWith('/hang'))) await new Promise((r) => setTimeout(r, 10));
      await proxy.close({ drainMs: 100 });
      const outcome = await inFlight;
      assert.ok(outcome instanceof Error, `the request should be cut, got ${String(outcome)}`);
      // HTTP/1.1: the connection is reset; HTTP/2: the stream ends without an answer.
      assert.equal(outcome.code, v.client === 'h2' ? 'ERR_HTTP2_STREAM_RESET' : 'ECONNRESET');
      await wsClosed;
      assert.equal(proxy.stats().websockets, 0);
      assert.equal(proxy.stats().openConnections, 0);
    } finally {
      await proxy.close({ drainMs: 0 });
      await slow.close();
      await pki.cleanup();
    }
  });
});

describe('slow-client protection', () => {
  it('answers 431 to an oversized request head and closes a connection whose head never completes', async () => {
    const registry = new CertificateRegistry();
    const proxy = new ProxyServer({
      httpPort: 0,
      httpsPort: 0,
      bind: '127.0.0.1',
      tokens: new TokenMap(),
      certificates: registry,
      logger: silentLogger,
      timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 1_000, maxHeaderSize: 4_096 },
    });
    try {
      const { httpPort } = await proxy.listen();
      proxy.setSites([site('plain.example.com', ['http://127.0.0.1:9'], { https: false })]);
      const big = await httpGet(httpPort, { host: 'plain.example.com', headers: { 'x-big': 'x'.repeat(8_192) } });
      assert.equal(big.status, 431);

      // A slowloris client: half a request head, then silence. The server must end it by itself.
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: httpPort }, () => s.write('GET / HTTP/1.1\r\nHost: plain.example.com\r\nX-Slow: 1\r\n'));
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => (got += d));
        const guard = setTimeout(() => {
          s.destroy();
          resolve('still open after 10 s');
        }, 10_000);
        s.on('close', () => {
          clearTimeout(guard);
          resolve(got.split('\r\n')[0] ?? '');
        });
        s.on('error', () => undefined);
      });
      assert.equal(outcome, 'HTTP/1.1 408 Request Timeout');
    } finally {
      await proxy.close({ drainMs: 0 });
    }
  });
});

describe('an upstream that cuts its own answer short', () => {
  it('a GET whose app sent the head and then closed (killed mid-answer) is cut at the client, never a short 200, and padlock logs and counts why', async () => {
    // As busybox httpd's child did when its container stopped: the head (Content-Length: 11), then the connection closes.
    const raw = net.createServer((sock) => {
      sock.on('error', () => undefined);
      sock.once('data', () => {
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\n');
        setTimeout(() => sock.end(), 50);
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const lines: Array<Record<string, unknown>> = [];
    const errors: Array<[string, string]> = [];
    const { proxy, httpPort } = await plainProxy({
      logger: createLogger({ level: 'warn', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }),
      observer: { request: () => undefined, upstreamError: (host, error) => errors.push([host, error]) },
    });
    try {
      proxy.setSites([site('cut.example.com', [`http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`], { https: false })]);
      // A raw client, to see exactly what reaches it: the connection closes with no answer (the head was not sent yet).
      const seen = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: httpPort }, () => s.write('GET /page HTTP/1.1\r\nHost: cut.example.com\r\n\r\n'));
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => (got += d));
        const guard = setTimeout(() => s.destroy(), 10_000);
        s.on('close', () => {
          clearTimeout(guard);
          resolve(got);
        });
        s.on('error', () => undefined);
      });
      assert.ok(!/^HTTP\/1\.1 200/.test(seen), `no 200 with a short body reaches the client: ${JSON.stringify(seen)}`);
      const cut = await waitUntil(() => lines.find((l) => l['msg'] === 'upstream failed after its answer began; cutting the client connection'));
      assert.equal(cut['host'], 'cut.example.com');
      // undici says "body shorter than its Content-Length"; padlock reports it as the connection going away.
      assert.equal(cut['error'], 'ECONNRESET');
      assert.deepEqual(errors, [['cut.example.com', 'ECONNRESET']], 'counted once in padlock_proxy_upstream_errors_total');
    } finally {
      await proxy.close({ drainMs: 0 });
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });
});

describe('a streaming answer (server-sent events)', () => {
  it('reaches the client head first, before the app sends its first event, and each event as it is sent', async () => {
    // The app sends its head, then an event only once the client has seen the head: a proxy that holds
    // the head back until the first body byte (as Node does unless told) never gets past the first step.
    let headSeen!: () => void;
    const headReached = new Promise<void>((r) => (headSeen = r));
    let firstSeen!: () => void;
    const firstReached = new Promise<void>((r) => (firstSeen = r));
    const app = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      void headReached.then(() => {
        res.write('data: one\n\n');
        return firstReached;
      }).then(() => res.end('data: two\n\n'));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const { proxy, httpPort } = await plainProxy();
    try {
      proxy.setSites([site('sse.example.com', [`http://127.0.0.1:${(app.address() as net.AddressInfo).port}`], { https: false })]);
      const steps: string[] = [];
      const got = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: httpPort }, () => s.write('GET /events HTTP/1.1\r\nHost: sse.example.com\r\nAccept: text/event-stream\r\n\r\n'));
        let text = '';
        const guard = setTimeout(() => { s.destroy(); reject(new Error(`stuck after ${JSON.stringify(steps)}: ${JSON.stringify(text)}`)); }, 5_000);
        s.setEncoding('utf8').on('data', (d: string) => {
          text += d;
          if (!steps.includes('head') && text.includes('\r\n\r\n')) { steps.push('head'); headSeen(); }
          if (!steps.includes('one') && text.includes('data: one')) { steps.push('one'); firstSeen(); }
          if (text.includes('data: two')) { clearTimeout(guard); s.destroy(); resolve(text); }
        });
        s.on('error', () => undefined);
      });
      assert.match(got, /^HTTP\/1\.1 200 /);
      assert.match(got, /content-type: text\/event-stream/i);
      assert.deepEqual(steps, ['head', 'one']);
    } finally {
      await proxy.close({ drainMs: 0 });
      await new Promise<void>((r) => app.close(() => r()));
    }
  });
});

/** `fn()` once it returns something (checked every 10 ms, up to 5 s). */
async function waitUntil<T>(fn: () => T | undefined): Promise<T> {
  for (const end = Date.now() + 5_000; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
    const v = fn();
    if (v !== undefined) return v;
  }
  throw new Error('not seen within 5 s');
}

/** A proxy on 127.0.0.1 port 0 serving plain-HTTP sites only (no certificates needed), closed by the caller. */
async function plainProxy(extra: Partial<ConstructorParameters<typeof ProxyServer>[0]> = {}): Promise<{ proxy: ProxyServer; httpPort: number; httpsPort: number }> {
  const proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: new CertificateRegistry(), logger: silentLogger, ...extra });
  return { proxy, ...(await proxy.listen()) };
}

/** What a client (a proxy in front of padlock, or someone pretending to be one) claims. */
const CLAIMS = {
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-port': '1234',
  'x-real-ip': '203.0.113.9',
  forwarded: 'for=203.0.113.9;proto=https',
  via: '1.1 cdn',
};

describe('forwarding headers end to end', () => {
  /** What the upstream sees when padlock replaces the client's claims (the request came in on `port`). */
  const replaced = (port: number) => ({
    'x-forwarded-for': '127.0.0.1',
    'x-forwarded-proto': 'http',
    'x-forwarded-host': 'plain.example.com:8000',
    'x-forwarded-port': String(port),
    'x-real-ip': '127.0.0.1',
    forwarded: 'for=127.0.0.1;host="plain.example.com:8000";proto=http',
    via: '1.1 cdn, 1.1 padlock',
  });
  const cases = [
    {
      desc: 'an untrusted client\'s X-Forwarded-*, X-Real-IP and Forwarded are replaced; Via is appended; X-Forwarded-Port is the listener port',
      trustedProxies: undefined,
      want: replaced,
    },
    {
      desc: 'a trusted-proxies list that does not cover the client changes nothing',
      trustedProxies: ['10.0.0.0/8', 'fd00::/8'],
      want: replaced,
    },
    {
      desc: 'with --trusted-proxies 127.0.0.1/32 the client\'s are kept, X-Forwarded-For and Forwarded appended to',
      trustedProxies: ['127.0.0.1/32'],
      want: () => ({
        'x-forwarded-for': '203.0.113.9, 127.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-port': '1234',
        'x-real-ip': '203.0.113.9',
        forwarded: 'for=203.0.113.9;proto=https, for=127.0.0.1;host="plain.example.com:8000";proto=http',
        via: '1.1 cdn, 1.1 padlock',
      }),
    },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const app = await startUpstream('headers');
      const { proxy, httpPort } = await plainProxy(c.trustedProxies ? { trustedProxies: c.trustedProxies } : {});
      try {
        proxy.setSites([site('plain.example.com', [app.url], { https: false })]);
        // A Host with a port that is not padlock's: X-Forwarded-Port must not come from it.
        const r = await httpGet(httpPort, { host: 'plain.example.com:8000', headers: CLAIMS });
        assert.equal(r.status, 200);
        const seen = app.seen.at(-1)!.headers;
        const want = c.want(httpPort);
        assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, seen[k]])), want);
      } finally {
        await proxy.close({ drainMs: 0 });
        await app.close();
      }
    });
  }
});

describe('upstream rules at connect time (loopback only)', () => {
  const MARKER = 'the-status-document';
  let admin: AdminServer;
  let adminPort: number;
  /** Every name the proxies resolve goes to 127.0.0.1, and is recorded: no DNS. */
  const resolved: string[] = [];
  const lookup: LookupFunction = (hostname, options, cb) => {
    resolved.push(hostname);
    if (options.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
    else cb(null, '127.0.0.1', 4);
  };

  before(async () => {
    // A token-less admin API on loopback, like padlock's default: it trusts loopback Host names such as evil.localhost.
    admin = new AdminServer({ listen: '127.0.0.1:0', status: () => ({ document: MARKER }), ready: () => true });
    ({ port: adminPort } = await admin.listen());
  });
  after(() => admin.close());

  const wsStatus = (port: number, host: string) =>
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host } });
      ws.once('open', () => {
        ws.close();
        resolve('open');
      });
      ws.once('error', (err) => resolve(err.message));
    });

  it("a route to padlock's own HTTP or HTTPS port answers 502 and forwards nothing (no loop)", async () => {
    const { proxy, httpPort, httpsPort } = await plainProxy();
    try {
      proxy.setSites([
        site('loop.example.com', [`http://127.0.0.1:${httpPort}`], { https: false }),
        site('tls.example.com', [`http://127.0.0.1:${httpsPort}`], { https: false }),
      ]);
      for (const host of ['loop.example.com', 'tls.example.com']) {
        const r = await httpGet(httpPort, { host });
        assert.equal(r.status, 502, host);
        assert.ok(!r.body.includes(String(httpPort)) && !r.body.includes('127.0.0.1'), 'the page names no address');
      }
      // Only the two refused requests reached padlock: none was forwarded back into it.
      assert.deepEqual(proxy.stats().requestsByStatus, { '502': 2 });
      assert.equal(proxy.stats().upstreamConnectionsOpened, 0, 'no upstream connection was opened');
      assert.match(await wsStatus(httpPort, 'loop.example.com'), /502/, 'the WebSocket path refuses it too');
      assert.deepEqual(proxy.stats().requestsByStatus, { '502': 2 }, 'the upgrade was not forwarded into padlock either');
    } finally {
      await proxy.close({ drainMs: 0 });
    }
  });

  it("a name that resolves to the admin API's port at connect time answers 502, over HTTP and WebSocket, never the status document", async () => {
    const { proxy, httpPort } = await plainProxy({ lookup });
    try {
      // What main.ts does once the admin API is bound.
      proxy.setOwnPorts([adminPort]);
      proxy.setSites([site('evil.localhost', [`http://admin-alias.test:${adminPort}`], { https: false, issuer: 'local' })]);
      resolved.length = 0;
      const r = await httpGet(httpPort, { host: 'evil.localhost', path: '/api/status' });
      assert.equal(r.status, 502);
      assert.doesNotMatch(r.body, new RegExp(MARKER));
      assert.ok(resolved.includes('admin-alias.test'), 'refused after resolving the name, not before');
      assert.equal(proxy.stats().upstreamConnectionsOpened, 0, 'refused before connecting');
      resolved.length = 0;
      assert.match(await wsStatus(httpPort, 'evil.localhost'), /502/);
      assert.ok(resolved.includes('admin-alias.test'), 'the WebSocket path resolved it through the guarded lookup');
    } finally {
      await proxy.close({ drainMs: 0 });
    }
  });

  it("even when the proxy does not know the admin port, the admin API answers 403 to a request through padlock (Via), never the status document", async () => {
    const { proxy, httpPort } = await plainProxy({ lookup });
    try {
      // evil.localhost is a loopback Host name, which the token-less admin API would otherwise serve.
      proxy.setSites([site('evil.localhost', [`http://admin-alias.test:${adminPort}`], { https: false, issuer: 'local' })]);
      const r = await httpGet(httpPort, { host: 'evil.localhost', path: '/api/status' });
      assert.equal(r.status, 403);
      assert.match(JSON.parse(r.body).error, /came through padlock's proxy/);
      assert.doesNotMatch(r.body, new RegExp(MARKER));
    } finally {
      await proxy.close({ drainMs: 0 });
    }
  });
});
