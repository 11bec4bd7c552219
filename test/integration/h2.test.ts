/**
 * HTTP/2 at :443, end to end, for what the shared proxy suite
 * (proxy.test.ts, run over both protocols) cannot show: connection
 * coalescing and 421, trailers, interim answers, the limits, and hostile
 * clients (Rapid Reset, MadeYouReset, floods) written frame by frame.
 *
 * Everything runs on 127.0.0.1 with port 0; clients name the server with
 * `servername` and `:authority`, never through DNS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { TokenMap } from '../../src/acme/http01.js';
import { silentLogger } from '../../src/log.js';
import type { Http2Limits } from '../../src/proxy/h2-limits.js';
import { ProxyServer, type ProxyTimeouts } from '../../src/proxy/server.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import { CertificateRegistry, type CertificateEntry } from '../../src/tls/contexts.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { FLAG, FRAME, frame, rawH2, requestBlock } from '../support/h2-frames.js';
import { httpsClient } from '../support/https-client.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_SETTINGS_TIMEOUT, NGHTTP2_NO_ERROR } = http2.constants;

const site = (host: string, url: string, extra: Partial<SiteSpec> = {}): SiteSpec => ({ host, upstreams: [{ url }], https: true, redirect: true, issuer: 'acme', ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Upstream {
  url: string;
  /** Request targets in the order they arrived. */
  seen: string[];
  /** The HTTP version of each request. */
  versions: string[];
  /** Requests whose client (padlock) went away before the answer. */
  aborted: number;
  close(): Promise<void>;
}

/**
 * An upstream app: `/hang` never answers, `/big` answers 1 MiB, `?delay=MS` waits, `/trailers`
 * answers chunked with trailer fields, anything else answers 200 `ok`.
 */
async function startUpstream(): Promise<Upstream> {
  const state = { seen: [] as string[], versions: [] as string[], aborted: 0 };
  const server = http.createServer((req, res) => {
    state.seen.push(req.url ?? '');
    state.versions.push(req.httpVersion);
    res.once('close', () => {
      if (!res.writableFinished) state.aborted++;
    });
    req.resume();
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    if (url.pathname === '/hang') return;
    if (url.pathname === '/big') return void res.end(Buffer.alloc(1024 * 1024, 1));
    if (url.pathname === '/trailers') {
      res.writeHead(200, { 'content-type': 'application/grpc', trailer: 'grpc-status, x-checksum' });
      res.write('part one;');
      res.addTrailers({ 'grpc-status': '0', 'x-checksum': 'abc123' });
      res.end('part two');
      return;
    }
    const delay = Number(url.searchParams.get('delay') ?? 0);
    setTimeout(() => res.end('ok'), delay);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    ...state,
    get aborted() {
      return state.aborted;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A raw upstream that writes `answer` (bytes as given) to every request. */
async function rawUpstream(answer: string): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let buffered = '';
    s.setEncoding('latin1').on('data', (d: string) => {
      buffered += d;
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        s.write(answer, 'latin1');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('HTTP/2 at :443', () => {
  let pki: TestPki;
  let root: TestCert;
  let registry: CertificateRegistry;
  let app: Upstream;
  const proxies: ProxyServer[] = [];
  const h2 = httpsClient('h2', () => root.cert);
  const h1 = httpsClient('http/1.1', () => root.cert);

  /** A proxy with these limits, serving app.example.com and the wildcard names, closed after the suite. */
  const start = async (options: { http2?: Partial<Http2Limits>; timeouts?: ProxyTimeouts; sites?: SiteSpec[] } = {}) => {
    const proxy = new ProxyServer({
      httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger,
      http2: options.http2 ?? {}, ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    });
    proxies.push(proxy);
    const { httpsPort } = await proxy.listen();
    proxy.setSites(options.sites ?? [site('app.example.com', app.url), site('a.example.com', app.url), site('b.example.com', app.url)]);
    return { proxy, port: httpsPort };
  };
  const connect = (port: number, servername: string, settings: http2.Settings = {}) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername, ca: root.cert, settings });
    session.on('error', () => undefined);
    return session;
  };
  /** One request on `session`; the status, or the RST_STREAM code as `reset N`. */
  const ask = (session: http2.ClientHttp2Session, authority: string, path = '/', extra: http2.OutgoingHttpHeaders = {}) =>
    new Promise<string>((resolve) => {
      const stream = session.request({ ':path': path, ':authority': authority, ...extra });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('error', () => undefined);
      stream.resume();
      stream.on('close', () => resolve(status && stream.rstCode === NGHTTP2_NO_ERROR ? String(status) : `reset ${stream.rstCode}`));
    });

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'H2 Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const leaf = { issuer: root, kind: 'leaf' as const, notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) };
    const own = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    const wildcard = await pki.issue({ ...leaf, cn: '*.example.com', names: ['*.example.com'] });
    registry = new CertificateRegistry();
    const entry = (c: TestCert, version: string): CertificateEntry => ({ certPem: c.cert, keyPem: c.key, version });
    registry.replace(new Map([['app.example.com', entry(own, '1')], ['*.example.com', entry(wildcard, '1')]]));
    app = await startUpstream();
  });

  after(async () => {
    for (const p of proxies) await p.close({ drainMs: 0 });
    await app?.close();
    await pki?.cleanup();
  });

  it('offers h2 then http/1.1 in ALPN, and advertises its limits: 250 streams, the header list size, no extended CONNECT', async () => {
    const { port } = await start();
    const alpn = (offer: string[]) => new Promise<string | false>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'app.example.com', ca: root.cert, ALPNProtocols: offer }, () => {
        resolve(s.alpnProtocol ?? false);
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(await alpn(['h2', 'http/1.1']), 'h2');
    assert.equal(await alpn(['http/1.1', 'h2']), 'h2', "the server's preference wins");
    assert.equal(await alpn(['http/1.1']), 'http/1.1');
    const session = connect(port, 'app.example.com');
    try {
      await new Promise((r) => session.once('remoteSettings', r));
      const settings = session.remoteSettings;
      assert.equal(settings.maxConcurrentStreams, 250);
      assert.equal(settings.maxHeaderListSize, 32 * 1024);
      assert.equal(settings.enableConnectProtocol, false, 'no RFC 8441 WebSockets over h2 without an implementation');
      assert.equal(await ask(session, 'app.example.com'), '200');
      assert.equal(app.versions.at(-1), '1.1', 'the upstream is spoken to over HTTP/1.1');
    } finally {
      session.close();
    }
  });

  it('serves a coalesced name on a connection whose certificate covers it, and answers 421 to a name with its own certificate, an uncovered name and an unrouted one', async () => {
    const { port } = await start();
    // The connection is handshaken for a.example.com and shows the wildcard certificate.
    const session = connect(port, 'a.example.com');
    try {
      const before = app.seen.length;
      assert.equal(await ask(session, 'a.example.com', '/first'), '200');
      assert.equal(await ask(session, 'b.example.com', '/coalesced'), '200', 'same wildcard certificate: served on this connection');
      assert.equal(app.seen.length - before, 2);
      assert.equal(await ask(session, 'app.example.com'), '421', 'covered by the wildcard, but padlock presents another certificate for it');
      assert.equal(await ask(session, 'elsewhere.test'), '421', 'not covered by this certificate');
      assert.equal(await ask(session, 'c.example.com'), '421', 'covered, but not routed');
      assert.equal(app.seen.length - before, 2, 'nothing more was forwarded');
    } finally {
      session.close();
    }
    // The other way round: a connection for app.example.com (its own certificate) cannot serve the wildcard names.
    const own = connect(port, 'app.example.com');
    try {
      assert.equal(await ask(own, 'a.example.com'), '421');
    } finally {
      own.close();
    }
  });

  it('answers 400 when Host and :authority disagree and 405 to CONNECT, forwarding neither', async () => {
    const { port } = await start();
    const session = connect(port, 'app.example.com');
    try {
      const before = app.seen.length;
      assert.equal(await ask(session, 'app.example.com', '/', { host: 'a.example.com' }), '400');
      assert.equal(await ask(session, 'app.example.com', '/', { host: 'APP.example.com:443' }), '200', 'the same host in another spelling is fine');
      const connectStatus = await new Promise<string>((resolve) => {
        const stream = session.request({ ':method': 'CONNECT', ':authority': 'app.example.com:443' });
        stream.on('response', (h) => resolve(String(h[':status'])));
        stream.on('error', () => undefined);
        stream.on('close', () => resolve(`reset ${stream.rstCode}`));
      });
      assert.equal(connectStatus, '405');
      assert.equal(app.seen.length - before, 1);
    } finally {
      session.close();
    }
  });

  it("forwards the upstream's trailers: to an HTTP/2 client always, to an HTTP/1.1 client on a chunked answer", async () => {
    const { port } = await start();
    for (const client of [h2, h1]) {
      const r = await client.request(port, { host: 'app.example.com', path: '/trailers', headers: { te: 'trailers' } });
      assert.equal(r.status, 200, client.protocol);
      assert.equal(r.body, 'part one;part two');
      assert.equal(r.trailers['grpc-status'], '0', client.protocol);
      assert.equal(r.trailers['x-checksum'], 'abc123', client.protocol);
      assert.equal(r.headers['content-type'], 'application/grpc');
    }
  });

  it("drops the upstream's connection-specific fields for an HTTP/2 client, and passes 103 Early Hints on", async () => {
    const hop = await rawUpstream(
      'HTTP/1.1 103 Early Hints\r\nlink: </app.css>; rel=preload\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nconnection: keep-alive, x-hop\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nupgrade: h2c\r\nx-hop: gone\r\nx-kept: yes\r\n' +
      'transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    );
    try {
      const { port } = await start({ sites: [site('app.example.com', hop.url)] });
      const session = connect(port, 'app.example.com');
      try {
        const result = await new Promise<{ hints: http2.IncomingHttpHeaders[]; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
          const stream = session.request({ ':path': '/', ':authority': 'app.example.com' });
          const hints: http2.IncomingHttpHeaders[] = [];
          let headers: http2.IncomingHttpHeaders = {};
          let body = '';
          stream.on('headers', (h) => hints.push(h));
          stream.on('response', (h) => (headers = h));
          stream.setEncoding('utf8').on('data', (d: string) => (body += d));
          stream.on('end', () => resolve({ hints, headers, body }));
          stream.on('error', reject);
        });
        assert.equal(result.headers[':status'], 200);
        assert.equal(result.body, 'ok');
        assert.equal(result.headers['x-kept'], 'yes');
        for (const name of ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'x-hop']) assert.equal(result.headers[name], undefined, `${name} reached the client`);
        assert.equal(result.hints.length, 1);
        assert.equal(result.hints[0]![':status'], 103);
        assert.equal(result.hints[0]!['link'], '</app.css>; rel=preload');
      } finally {
        session.close();
      }
    } finally {
      await hop.close();
    }
  });

  it('speaks HTTP/1.1 to an https upstream that offers h2', async () => {
    const key = await pki.issue({ cn: 'upstream', issuer: root, kind: 'leaf', names: ['127.0.0.1'], notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    const versions: string[] = [];
    const upstream = http2.createSecureServer({ cert: key.cert, key: key.key, allowHTTP1: true }, (req, res) => {
      versions.push(req.httpVersion);
      res.end('tls upstream');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    try {
      const { port } = await start({ sites: [site('app.example.com', `https://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`)] });
      const r = await h2.request(port, { host: 'app.example.com' });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'tls upstream');
      assert.deepEqual(versions, ['1.1']);
    } finally {
      await new Promise<void>((r) => upstream.close(() => r()));
    }
  });

  describe('limits against hostile clients', () => {
    it('refuses streams beyond the concurrent stream limit, and forwards no more than the limit', async () => {
      const { port } = await start({ http2: { maxConcurrentStreams: 20 } });
      const raw = await rawH2(port, 'app.example.com', root.cert);
      try {
        await sleep(50);
        const before = app.seen.length;
        const frames: Buffer[] = [];
        for (let i = 0; i < 30; i++) frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, requestBlock('app.example.com', `/hang?limit=${i}`)));
        raw.write(Buffer.concat(frames));
        await sleep(500);
        const refused = raw.resets.filter(([, code]) => code === NGHTTP2_REFUSED_STREAM || code === http2.constants.NGHTTP2_PROTOCOL_ERROR);
        assert.ok(refused.length >= 10 || raw.goaway !== undefined, `streams over the limit are refused (resets ${JSON.stringify(raw.resets)}, goaway ${raw.goaway})`);
        assert.ok(app.seen.length - before <= 20, `at most 20 requests forwarded, got ${app.seen.length - before}`);
      } finally {
        raw.destroy();
      }
    });

    it('refuses a request head over the header list limit, before and after the client acknowledged the limit, and the connection goes on', async () => {
      const { port } = await start({ http2: { maxHeaderListSize: 4096 } });
      const before = app.seen.length;
      // First flight, before the client has seen padlock's SETTINGS: padlock checks it itself (431).
      const raw = await rawH2(port, 'app.example.com', root.cert, { ackSettings: false });
      try {
        raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestBlock('app.example.com', '/big', [['x-big', 'x'.repeat(6000)]])));
        await sleep(300);
        assert.ok(raw.headersOn.has(1), 'stream 1 was answered (431) rather than forwarded');
      } finally {
        raw.destroy();
      }
      const session = connect(port, 'app.example.com');
      try {
        assert.equal(await ask(session, 'app.example.com', '/small'), '200');
        const big = await ask(session, 'app.example.com', '/big', { 'x-big': 'x'.repeat(6000) });
        assert.match(big, /^(431|reset 11)$/, `an oversized head is refused, got ${big}`);
        assert.equal(await ask(session, 'app.example.com', '/after'), '200', 'the connection still serves');
      } finally {
        session.close();
      }
      assert.deepEqual(app.seen.slice(before).filter((u) => u.startsWith('/big')), [], 'no oversized request was forwarded');
    });

    it('refuses new streams from a client that never reads, once its connection holds the session memory limit', async () => {
      const { port } = await start({ http2: { maxSessionMemoryMiB: 1 } });
      // A slow reader: a receive window of 0, so every answer stays buffered in padlock.
      const session = connect(port, 'app.example.com', { initialWindowSize: 0 });
      const outcomes: Record<string, number> = {};
      try {
        const streams: Array<Promise<void>> = [];
        for (let i = 0; i < 120; i++) {
          const stream = session.request({ ':path': `/big?slow-reader=${i}`, ':authority': 'app.example.com' });
          stream.on('error', () => undefined);
          streams.push(new Promise<void>((resolve) => {
            stream.on('response', () => {
              outcomes['answered'] = (outcomes['answered'] ?? 0) + 1;
              resolve();
            });
            stream.on('close', () => {
              const key = `reset ${stream.rstCode}`;
              outcomes[key] = (outcomes[key] ?? 0) + 1;
              resolve();
            });
          }));
          if (i % 10 === 9) await sleep(30);
        }
        await Promise.race([Promise.all(streams), sleep(3_000)]);
        assert.ok((outcomes[`reset ${NGHTTP2_ENHANCE_YOUR_CALM}`] ?? 0) > 0, `streams are refused with ENHANCE_YOUR_CALM: ${JSON.stringify(outcomes)}`);
        // (Node's default of 10 MiB answers all 120 here.)
        assert.ok((outcomes['answered'] ?? 0) < 100, `the streams past the budget were refused: ${JSON.stringify(outcomes)}`);
        assert.equal((await h2.request(port, { host: 'app.example.com', path: '/other-client' })).status, 200, 'another client is served');
      } finally {
        session.destroy();
      }
    });

    it('closes an idle connection with a GOAWAY, but not while a request runs', async () => {
      const { port } = await start({ http2: { idleTimeoutMs: 300 } });
      const session = connect(port, 'app.example.com');
      const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
      const closedAt = new Promise<number>((resolve) => session.once('close', () => resolve(Date.now())));
      const started = Date.now();
      // A request that runs longer than the idle timeout keeps the connection.
      assert.equal(await ask(session, 'app.example.com', '/slow?delay=700'), '200');
      const answeredAt = Date.now();
      assert.ok(answeredAt - started >= 650);
      assert.equal(await goaway, NGHTTP2_NO_ERROR);
      const closed = await closedAt;
      assert.ok(closed - answeredAt >= 250, `closed ${closed - answeredAt} ms after the last answer, not before the idle timeout`);
      assert.ok(closed - answeredAt < 3_000);
    });

    it('cuts a client that never acknowledges SETTINGS with GOAWAY SETTINGS_TIMEOUT, and leaves a normal client alone', async () => {
      const { port } = await start({ http2: { settingsTimeoutMs: 300 } });
      const raw = await rawH2(port, 'app.example.com', root.cert, { ackSettings: false });
      const normal = connect(port, 'app.example.com');
      try {
        assert.ok(await raw.closedWithin(3_000), 'the connection was closed');
        assert.ok(raw.serverSettingsSeen);
        assert.equal(raw.goaway, NGHTTP2_SETTINGS_TIMEOUT);
        await sleep(100);
        assert.equal(await ask(normal, 'app.example.com'), '200', 'a client that acknowledged is still served');
      } finally {
        raw.destroy();
        normal.close();
      }
    });

    it('Rapid Reset (CVE-2023-44487): HEADERS + RST_STREAM floods reach no upstream and end in a GOAWAY, while another client is served', async () => {
      const { port, proxy } = await start({ http2: { resetBurst: 200, resetRate: 20 } });
      const before = app.seen.length;
      const opened = proxy.stats().upstreamConnectionsOpened;
      const floods = await Promise.all([0, 1, 2].map(() => rawH2(port, 'app.example.com', root.cert)));
      const bystander = connect(port, 'app.example.com');
      try {
        await sleep(50);
        let id = 1;
        for (let round = 0; round < 20; round++) {
          const frames: Buffer[] = [];
          for (let i = 0; i < 50; i++, id += 2) {
            frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, requestBlock('app.example.com', `/flood?${id}`)));
            frames.push(frame(FRAME.RST_STREAM, 0, id, Buffer.from([0, 0, 0, NGHTTP2_CANCEL])));
          }
          for (const f of floods) f.write(Buffer.concat(frames));
          await sleep(10);
        }
        for (const f of floods) assert.ok(await f.closedWithin(3_000), 'the flooding connection was closed');
        for (const f of floods) assert.notEqual(f.goaway, undefined, 'with a GOAWAY');
        assert.equal(await ask(bystander, 'app.example.com', '/bystander'), '200');
        assert.deepEqual(app.seen.slice(before).filter((u) => u.startsWith('/flood')), [], 'no reset stream reached the upstream');
        // An upstream request cancelled after it started costs its HTTP/1.1 connection: none may have started.
        assert.ok(proxy.stats().upstreamConnectionsOpened - opened <= 1, `upstream connections opened: ${proxy.stats().upstreamConnectionsOpened - opened} (the bystander's at most)`);
      } finally {
        for (const f of floods) f.destroy();
        bystander.close();
      }
    });

    it('MadeYouReset (CVE-2025-8671): malformed requests that make padlock reset streams end in a GOAWAY, and reach no upstream', async () => {
      const { port } = await start();
      const before = app.seen.length;
      const raw = await rawH2(port, 'app.example.com', root.cert);
      try {
        await sleep(50);
        let id = 1;
        for (let round = 0; round < 30 && !raw.closed; round++) {
          const frames: Buffer[] = [];
          // An uppercase field name makes the request malformed: padlock (nghttp2) must reset the stream.
          for (let i = 0; i < 50; i++, id += 2) frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, requestBlock('app.example.com', `/made?${id}`, [['X-Bad', '1']])));
          raw.write(Buffer.concat(frames));
          await sleep(10);
        }
        assert.ok(await raw.closedWithin(3_000), 'the connection was closed');
        assert.notEqual(raw.goaway, undefined);
        assert.ok(raw.resets.length >= 100, `padlock reset the malformed streams first (${raw.resets.length})`);
        assert.deepEqual(app.seen.slice(before).filter((u) => u.startsWith('/made')), []);
        assert.equal((await h2.request(port, { host: 'app.example.com', path: '/after-made' })).status, 200);
      } finally {
        raw.destroy();
      }
    });

    it('does not trip on a browser that cancels every request of a page on each of four quick navigations', async () => {
      const { port } = await start();
      const session = connect(port, 'app.example.com');
      let goaway: number | undefined;
      session.on('goaway', (code: number) => (goaway = code));
      try {
        for (let page = 0; page < 4; page++) {
          // 200 images in flight (slow), then the user clicks away: all of them are cancelled.
          const streams = Array.from({ length: 200 }, (_, i) => {
            const s = session.request({ ':path': `/img-${page}-${i}?delay=2000`, ':authority': 'app.example.com' });
            s.on('error', () => undefined);
            s.resume();
            return s;
          });
          await sleep(100);
          for (const s of streams) s.close(NGHTTP2_CANCEL);
          await sleep(50);
        }
        assert.equal(await ask(session, 'app.example.com', '/next-page'), '200');
        assert.equal(goaway, undefined, '800 cancellations in under a second did not close the connection');
      } finally {
        session.close();
      }
    });

    it('cuts a request whose body does not arrive within the request timeout, and the upstream request with it', async () => {
      const { port } = await start({ timeouts: { requestTimeoutMs: 300 } });
      const session = connect(port, 'app.example.com');
      try {
        const abortedBefore = app.aborted;
        const outcome = await new Promise<string>((resolve) => {
          // The upstream waits for the whole body (it never answers /hang), so only padlock's timeout can end this.
          const stream = session.request({ ':method': 'POST', ':path': '/hang?trickle', ':authority': 'app.example.com' });
          stream.write('a little');
          let status = 0;
          stream.on('response', (h) => (status = Number(h[':status'])));
          stream.on('error', () => undefined);
          stream.resume();
          stream.on('close', () => resolve(status ? String(status) : `reset ${stream.rstCode}`));
        });
        assert.match(outcome, /^(408|reset \d+)$/);
        await sleep(200);
        assert.equal(app.aborted - abortedBefore, 1, 'the upstream request was ended too');
        assert.equal(await ask(session, 'app.example.com'), '200');
      } finally {
        session.close();
      }
    });
  });

  it('on close(): sends a GOAWAY at once, lets the request in flight finish, and takes no new request on that connection', async () => {
    const { proxy, port } = await start();
    const session = connect(port, 'app.example.com');
    try {
      assert.equal(await ask(session, 'app.example.com'), '200');
      const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
      const inFlight = ask(session, 'app.example.com', '/drain?delay=400');
      await sleep(100);
      const closing = proxy.close({ drainMs: 5_000 });
      assert.equal(await goaway, NGHTTP2_NO_ERROR, 'GOAWAY before the request in flight ends');
      assert.equal(await inFlight, '200');
      await closing;
      assert.equal(proxy.stats().openConnections, 0);
    } finally {
      session.destroy();
    }
  });
});
