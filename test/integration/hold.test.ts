/**
 * Held requests and health checks in the data plane: a real ProxyServer with
 * `hold` on 127.0.0.1 port 0, real upstream `http.Server`s that start, stop
 * and change their minds, and real HTTPS clients that trust only the test
 * root. No name is ever resolved.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { TokenMap } from '../../src/acme/http01.js';
import { silentLogger } from '../../src/log.js';
import { ProxyServer, type ProxyObserver } from '../../src/proxy/server.js';
import { CertificateRegistry, type CertificateEntry } from '../../src/tls/contexts.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { freePort } from '../support/pebble.js';
import { httpsClient } from '../support/https-client.js';

const NAMES = ['grace.example.com', 'back.example.com', 'post.example.com', 'sent.example.com', 'ready.example.com', 'ws.example.com', 'flood.example.com', 'calm.example.com', 'nowait.example.com', 'h2-grace.example.com', 'h2-back.example.com', 'h2-post.example.com', 'dying.example.com'];
const WAIT_MS = 1_500;

let root: TestCert;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

function request(port: number, host: string, opts: { path?: string; method?: string; body?: string } = {}): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', servername: host, ca: root.cert, headers: { host }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started }));
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('client timeout')));
    req.end(opts.body);
  });
}

/** An upstream on a fixed port that can be started and stopped; `health` is what GET /healthz answers. */
class App {
  readonly seen: Array<{ method: string; url: string; body: string }> = [];
  health = 200;
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  constructor(readonly port: number, readonly name: string) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        if (req.url === '/healthz') return void res.writeHead(this.health).end(String(this.health));
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', body });
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`${this.name}:${body}`);
      });
    });
    this.wss = new WebSocketServer({ server });
    this.wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`${this.name}:${String(m)}`)));
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.server = server;
  }
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const c of this.wss?.clients ?? []) c.terminate();
    this.wss?.close();
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

const site = (host: string, upstreams: Array<Partial<SiteSpec['upstreams'][number]> & { url: string }>, extra: Partial<SiteSpec> = {}): SiteSpec => ({
  host, upstreams, https: true, redirect: true, issuer: 'acme', ...extra,
});
const graced = (host: string, extra: Partial<SiteSpec> = {}): SiteSpec => site(host, [], { graceUntil: new Date(Date.now() + 300_000).toISOString(), ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('held requests (ProxyServer with hold)', () => {
  let pki: TestPki;
  let registry: CertificateRegistry;
  let proxy: ProxyServer;
  let port: number;
  const apps: App[] = [];
  const observed: { held: string[]; unavailable: string[] } = { held: [], unavailable: [] };
  /** The routes now; each test replaces its own name's entry. */
  const routes = new Map<string, SiteSpec>();
  const setRoute = (s: SiteSpec) => {
    routes.set(s.host, s);
    proxy.setSites([...routes.values()]);
  };
  const app = async (name: string, start = true) => {
    const a = new App(await freePort(), name);
    apps.push(a);
    if (start) await a.start();
    return a;
  };

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'Hold Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const snapshot = new Map<string, CertificateEntry>();
    for (const name of NAMES) {
      const c = await pki.issue({ issuer: root, kind: 'leaf', cn: name, names: [name], notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) });
      snapshot.set(name, { certPem: c.cert, keyPem: c.key, version: '1' });
    }
    registry = new CertificateRegistry();
    registry.replace(snapshot);
    const observer: ProxyObserver = {
      request: () => undefined,
      upstreamError: () => undefined,
      held: (host, outcome) => observed.held.push(`${host}:${outcome}`),
      unavailable: (host, reason) => observed.unavailable.push(`${host}:${reason}`),
    };
    proxy = new ProxyServer({
      httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger, observer,
      timeouts: { connectMs: 1_000, upstreamDownMs: 60_000 },
      hold: { waitMs: WAIT_MS, maxHeld: 40 },
    });
    port = (await proxy.listen()).httpsPort;
  });

  after(async () => {
    await proxy?.close({ drainMs: 0 });
    for (const a of apps) await a.stop();
    await pki?.cleanup();
  });

  it('a name in its grace period completes the TLS handshake, holds the request for the wait, then answers 503 with Retry-After on a page naming nothing internal', async () => {
    setRoute(graced('grace.example.com'));
    const cert = await new Promise<tls.PeerCertificate>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'grace.example.com', ca: root.cert }, () => {
        resolve(s.getPeerCertificate());
        s.destroy();
      });
      s.once('error', reject);
    });
    assert.equal(cert.subject.CN, 'grace.example.com');
    const r = await request(port, 'grace.example.com');
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '5');
    assert.ok(r.ms >= WAIT_MS - 50, `held ${Math.round(r.ms)} ms`);
    assert.match(r.body, /503 Service Unavailable/);
    for (const leak of ['127.0.0.1', 'grace', 'container', 'upstream', 'Error']) assert.ok(!r.body.includes(leak), `page leaks ${leak}`);
    assert.ok(observed.held.includes('grace.example.com:unavailable'));
    assert.ok(observed.unavailable.includes('grace.example.com:wait-elapsed'));
  });

  it('a GET whose upstream refuses is held and answered by the app once it listens again (inside the wait)', async () => {
    const a = await app('back', false);
    setRoute(site('back.example.com', [{ url: a.url }]));
    const pending = request(port, 'back.example.com', { path: '/again' });
    await sleep(500);
    await a.start();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'back:');
    assert.ok(r.ms >= 450, `answered after the app came back (${Math.round(r.ms)} ms)`);
    assert.deepEqual(a.seen.map((s) => s.url), ['/again']);
    assert.ok(observed.held.includes('back.example.com:released'));
  });

  it('a GET whose upstream resets every connection before answering (a container stopping) is held, not answered 502, and reaches the app that listens next', async () => {
    const a = await app('dying', false);
    let resets = 0;
    const dying = net.createServer((socket) => {
      resets++;
      socket.resetAndDestroy();
    });
    await new Promise<void>((r) => dying.listen(Number(new URL(a.url).port), '127.0.0.1', r));
    setRoute(site('dying.example.com', [{ url: a.url }]));
    const pending = request(port, 'dying.example.com', { path: '/after-reset' });
    await sleep(400);
    await new Promise<void>((r) => dying.close(() => r()));
    await a.start();
    const r = await pending;
    assert.equal(r.status, 200, 'held until the next app answered');
    assert.deepEqual(a.seen.map((x) => x.url), ['/after-reset']);
    assert.ok(resets >= 2, `the dying upstream reset ${resets} connections`);
    assert.ok(resets <= 20, `and was not hammered meanwhile: ${resets} connections in 400 ms`);
  });

  it('a POST to a name in its grace period waits unsent, and reaches the new container once, body intact, when discovery routes it', async () => {
    setRoute(graced('post.example.com'));
    const a = await app('post');
    const pending = request(port, 'post.example.com', { method: 'POST', path: '/orders', body: 'one order' });
    await sleep(300);
    setRoute(site('post.example.com', [{ url: a.url, containerName: 'post-2' }]));
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'post:one order');
    assert.deepEqual(a.seen, [{ method: 'POST', url: '/orders', body: 'one order' }]);
  });

  it('a POST whose connection is refused after it was sent on its way is not retried: 502, and the app that comes back never sees it', async () => {
    const a = await app('sent', false);
    setRoute(site('sent.example.com', [{ url: a.url }]));
    const r = await request(port, 'sent.example.com', { method: 'POST', path: '/pay', body: 'once' });
    assert.equal(r.status, 502);
    await a.start();
    await sleep(100);
    assert.deepEqual(a.seen, []);
  });

  it('an upstream whose health check does not pass gets no request; a held GET goes to it once /healthz answers 200', async () => {
    const a = await app('ready');
    a.health = 503;
    setRoute(site('ready.example.com', [{ url: a.url, containerId: 'ready-1', healthcheck: { path: '/healthz', intervalMs: 200 } }], { upstreamWait: 5 }));
    const pending = request(port, 'ready.example.com', { path: '/work' });
    await sleep(700);
    assert.equal(a.seen.length, 0, 'listening but not ready: no traffic');
    const status = proxy.upstreamStatus().find((r) => r.host === 'ready.example.com')!;
    assert.deepEqual(status.upstreams.map((u) => [u.healthy, u.check]), [[false, 'failing']]);
    a.health = 200;
    const r = await pending;
    assert.equal(r.status, 200);
    assert.deepEqual(a.seen.map((s) => s.url), ['/work']);
    assert.deepEqual(proxy.upstreamStatus().find((x) => x.host === 'ready.example.com')!.upstreams.map((u) => [u.healthy, u.check]), [[true, 'passing']]);
  });

  it('a WebSocket upgrade to a name in its grace period is held and connects to the new container', async () => {
    setRoute(graced('ws.example.com'));
    const a = await app('ws');
    const opened = new Promise<WebSocket>((resolve, reject) => {
      const options: WebSocket.ClientOptions & tls.ConnectionOptions = { headers: { host: 'ws.example.com' }, servername: 'ws.example.com', ca: root.cert };
      const ws = new WebSocket(`wss://127.0.0.1:${port}/chat`, options);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
    await sleep(300);
    setRoute(site('ws.example.com', [{ url: a.url }]));
    const ws = await opened;
    const echo = await new Promise<string>((resolve) => {
      ws.once('message', (m) => resolve(String(m)));
      ws.send('hi');
    });
    assert.equal(echo, 'ws:hi');
    ws.close();
  });

  it('bounds held requests: past half of the limit for one name the rest get 503 at once, and another name keeps answering', async () => {
    // A longer wait than the others: 30 TLS handshakes on a busy machine may take a while to all arrive, and the held ones must still be held when counted.
    const floodWaitMs = 4_000;
    setRoute(graced('flood.example.com', { upstreamWait: floodWaitMs / 1000 }));
    const calm = await app('calm');
    setRoute(site('calm.example.com', [{ url: calm.url }]));
    const full = () => observed.unavailable.filter((x) => x === 'flood.example.com:hold-full').length;
    const flood = Array.from({ length: 30 }, () => request(port, 'flood.example.com'));
    const arrivedBy = Date.now() + floodWaitMs - 1_000;
    while ((proxy.stats().held ?? 0) + full() < 30 && Date.now() < arrivedBy) await sleep(20);
    assert.equal(proxy.stats().held, 20, 'half of maxHeld (40) for one name');
    assert.equal(full(), 10, 'the 10 over the limit were not held');
    const other = await request(port, 'calm.example.com');
    assert.equal(other.status, 200);
    assert.ok(other.ms < 1_000, `the other name answered in ${Math.round(other.ms)} ms`);
    const replies = await Promise.all(flood);
    const fast = replies.filter((r) => r.ms < floodWaitMs - 1_000);
    assert.equal(fast.length, 10, 'the 10 over the limit were answered at once');
    assert.ok(replies.every((r) => r.status === 503 && r.headers['retry-after'] === '5'));
    assert.equal(proxy.stats().held, 0);
  });

  it('holds HTTP/2 requests too: 503 with Retry-After after the wait in a grace period, a GET answered once the app listens again, a POST body delivered intact once routed', async () => {
    const h2 = httpsClient('h2', () => root.cert);
    const timed = async (ask: Parameters<typeof h2.request>[1]) => {
      const started = performance.now();
      const r = await h2.request(port, { timeoutMs: 15_000, ...ask });
      return { ...r, ms: performance.now() - started };
    };
    setRoute(graced('h2-grace.example.com'));
    const back = await app('h2-back', false);
    setRoute(site('h2-back.example.com', [{ url: back.url }]));
    setRoute(graced('h2-post.example.com'));
    const post = await app('h2-post');
    const [grace, again, order] = [
      timed({ host: 'h2-grace.example.com' }),
      timed({ host: 'h2-back.example.com', path: '/again' }),
      timed({ host: 'h2-post.example.com', method: 'POST', path: '/orders', body: 'one order' }),
    ];
    await sleep(500);
    await back.start();
    setRoute(site('h2-post.example.com', [{ url: post.url, containerName: 'h2-post-2' }]));
    const g = await grace;
    assert.equal(g.status, 503);
    assert.equal(g.headers['retry-after'], '5');
    assert.ok(g.ms >= WAIT_MS - 50, `held ${Math.round(g.ms)} ms`);
    const a = await again;
    assert.equal(a.status, 200);
    assert.equal(a.body, 'h2-back:');
    assert.ok(a.ms >= 450, `answered after the app came back (${Math.round(a.ms)} ms)`);
    assert.deepEqual(back.seen.map((x) => x.url), ['/again']);
    const o = await order;
    assert.equal(o.status, 200);
    assert.equal(o.body, 'h2-post:one order');
    assert.deepEqual(post.seen, [{ method: 'POST', url: '/orders', body: 'one order' }]);
    assert.ok(observed.held.includes('h2-grace.example.com:unavailable') && observed.held.includes('h2-back.example.com:released'));
  });

  it('a site with upstream-wait 0 is not held: 503 at once in its grace period', async () => {
    setRoute(graced('nowait.example.com', { upstreamWait: 0 }));
    const r = await request(port, 'nowait.example.com');
    assert.equal(r.status, 503);
    assert.ok(r.ms < 500, `answered in ${Math.round(r.ms)} ms`);
    assert.ok(observed.unavailable.includes('nowait.example.com:no-upstream'));
  });
});
