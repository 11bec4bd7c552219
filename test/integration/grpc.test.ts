/**
 * gRPC behind padlock: a real gRPC client (@grpc/grpc-js, TLS, ALPN h2) to
 * padlock's :443, and a real gRPC server (@grpc/grpc-js, cleartext HTTP/2)
 * behind it on an h2c route. Plus a plain node:http2 h2c upstream for what
 * gRPC clients cannot show (request trailers, HTTP/1.1 clients).
 *
 * Everything runs on 127.0.0.1 with port 0; clients name the server with
 * `servername` / `grpc.ssl_target_name_override`, never through DNS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { TokenMap } from '../../src/acme/http01.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { ProxyServer } from '../../src/proxy/server.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import { CertificateRegistry } from '../../src/tls/contexts.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { httpsClient } from '../support/https-client.js';
import { freePort } from '../support/pebble.js';

const NAME = 'grpc.example.com';
const site = (url: string, extra: Partial<SiteSpec> = {}): SiteSpec => ({ host: NAME, upstreams: [{ url }], https: true, redirect: true, issuer: 'acme', ...extra });

/** Messages are raw bytes: no protobuf, no proto-loader. */
const bytes = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const SERVICE = {
  echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, ...bytes },
  watch: { path: '/test.Echo/Watch', requestStream: false, responseStream: true, ...bytes },
  collect: { path: '/test.Echo/Collect', requestStream: true, responseStream: false, ...bytes },
  chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, ...bytes },
} satisfies grpc.ServiceDefinition;
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type EchoClient = InstanceType<typeof Client> & Record<keyof typeof SERVICE, (...args: any[]) => any>;

interface GrpcApp {
  url: string;
  /** The metadata of the last call, as the server saw it. */
  lastMetadata: () => Record<string, unknown>;
  /** Lets the running Watch call send its second message and end. */
  releaseWatch: () => void;
  /** Resolves when a Watch call is cancelled at the server. */
  watchCancelled: () => Promise<void>;
  close(): Promise<void>;
}

/**
 * The gRPC app: Echo answers its request (NOT_FOUND with a message for
 * `missing`) with trailing metadata; Watch sends `first`, then `second`
 * once released; Collect joins what it got; Chat echoes each message at once.
 */
async function startGrpcApp(port = 0): Promise<GrpcApp> {
  let metadata: Record<string, unknown> = {};
  let release: () => void = () => undefined;
  let cancelled: Promise<void> = new Promise(() => undefined);
  const server = new grpc.Server();
  server.addService(SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      metadata = call.metadata.getMap();
      if (call.request.toString() === 'missing') return callback({ code: grpc.status.NOT_FOUND, details: 'no such thing: missing' });
      const trailer = new grpc.Metadata();
      trailer.set('x-served-by', 'grpc-app');
      callback(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
    },
    watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      cancelled = new Promise((resolve) => call.once('cancelled', () => resolve()));
      call.write(Buffer.from('first'));
      release = () => {
        call.write(Buffer.from('second'));
        call.end();
      };
    },
    collect: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const parts: string[] = [];
      call.on('data', (b: Buffer) => parts.push(b.toString()));
      call.on('end', () => callback(null, Buffer.from(parts.join('+'))));
    },
    chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), b])));
      call.on('end', () => call.end());
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    url: `h2c://127.0.0.1:${bound}`,
    lastMetadata: () => metadata,
    releaseWatch: () => release(),
    watchCancelled: () => cancelled,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}

interface RawH2c {
  url: string;
  /** What the last request brought: its head and its trailers. */
  last: { headers?: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders; body?: string };
  /** Sessions open now, from padlock. */
  sessions: () => number;
  /** The most streams open at once so far. */
  maxActive: () => number;
  close(): Promise<void>;
}

/** A plain h2c server: echoes the request body, answers `h2c-ok` with a trailer. */
async function startRawH2c(options: { maxConcurrentStreams?: number; delayMs?: number } = {}): Promise<RawH2c> {
  const last: RawH2c['last'] = {};
  const sessions = new Set<http2.ServerHttp2Session>();
  let active = 0;
  let maxActive = 0;
  const server = http2.createServer(options.maxConcurrentStreams ? { settings: { maxConcurrentStreams: options.maxConcurrentStreams } } : {});
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    maxActive = Math.max(maxActive, ++active);
    stream.once('close', () => active--);
    const chunks: Buffer[] = [];
    last.headers = headers;
    delete last.trailers;
    stream.on('trailers', (t) => void (last.trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => setTimeout(() => {
      if (stream.destroyed) return;
      if (String(headers[':path']).startsWith('/bad')) return void stream.respond({ ':status': 503 }, { endStream: true });
      last.body = Buffer.concat(chunks).toString();
      stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-upstream-trailer': 'done' }));
      stream.end(`h2c-ok ${headers[':method']} ${last.body}`);
    }, options.delayMs ?? 0));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `h2c://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    last,
    sessions: () => sessions.size,
    maxActive: () => maxActive,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('gRPC behind padlock (h2c upstreams)', () => {
  let pki: TestPki;
  let root: TestCert;
  let registry: CertificateRegistry;
  let app: GrpcApp;
  let raw: RawH2c;
  const proxies: ProxyServer[] = [];
  const clients: grpc.Client[] = [];
  const h1 = httpsClient('http/1.1', () => root.cert);
  const h2 = httpsClient('h2', () => root.cert);

  const start = async (sites: SiteSpec[], options: { http2?: false; log?: string[] } = {}) => {
    const logger = options.log ? createLogger({ level: 'warn', write: (l) => options.log!.push(l) }) : silentLogger;
    const proxy = new ProxyServer({
      httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger,
      http2: options.http2 ?? {},
    });
    proxies.push(proxy);
    const { httpsPort } = await proxy.listen();
    proxy.setSites(sites);
    return { proxy, port: httpsPort };
  };
  const client = (port: number): EchoClient => {
    const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(root.cert)), {
      'grpc.ssl_target_name_override': NAME,
      'grpc.default_authority': NAME,
    }) as EchoClient;
    clients.push(c);
    return c;
  };
  const deadline = () => Date.now() + 10_000;
  const unary = (c: EchoClient, text: string) => new Promise<{ err: grpc.ServiceError | null; reply?: Buffer; trailers?: grpc.Metadata }>((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = c.echo(Buffer.from(text), new grpc.Metadata(), { deadline: deadline() }, (err: grpc.ServiceError | null, reply?: Buffer) => {
      // 'status' comes after the callback on success; wait for it so the trailers are known.
      setImmediate(() => resolve({ err, ...(reply ? { reply } : {}), ...(trailers ? { trailers } : {}) }));
    });
    call.on('status', (s: grpc.StatusObject) => void (trailers = s.metadata));
  });

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'gRPC Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const leaf = await pki.issue({ issuer: root, kind: 'leaf', cn: NAME, names: [NAME], notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) });
    registry = new CertificateRegistry();
    registry.replace(new Map([[NAME, { certPem: leaf.cert, keyPem: leaf.key, version: '1' }]]));
    [app, raw] = await Promise.all([startGrpcApp(), startRawH2c()]);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const p of proxies) await p.close({ drainMs: 0 });
    await app?.close();
    await raw?.close();
    await pki?.cleanup();
  });

  it('answers a unary call with the reply, status OK and the server\'s trailing metadata; the app sees te: trailers and the forwarding headers', async () => {
    const { port } = await start([site(app.url)]);
    const r = await unary(client(port), 'hello');
    assert.equal(r.err, null);
    assert.equal(r.reply?.toString(), 'echo:hello');
    assert.deepEqual(r.trailers?.get('x-served-by'), ['grpc-app']);
    const seen = app.lastMetadata();
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-host'], NAME);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['via'], '2 padlock');
  });

  it('passes an error status with its message through intact (NOT_FOUND)', async () => {
    const { port } = await start([site(app.url)]);
    const r = await unary(client(port), 'missing');
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such thing: missing');
  });

  it('delivers a server-streaming message before the server ends the stream', async () => {
    const { port } = await start([site(app.url)]);
    const call = client(port).watch(Buffer.from('go'), new grpc.Metadata(), { deadline: deadline() });
    const got: string[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    const first = await new Promise<string>((resolve, reject) => {
      call.once('data', (b: Buffer) => resolve(b.toString()));
      call.once('error', reject);
    });
    got.push(first);
    assert.equal(first, 'first', 'the first message arrives while the server still holds the stream open');
    call.on('data', (b: Buffer) => got.push(b.toString()));
    app.releaseWatch();
    assert.equal((await ended).code, grpc.status.OK);
    assert.deepEqual(got, ['first', 'second']);
  });

  it('cancels the upstream call when the client cancels its call', async () => {
    const { port } = await start([site(app.url)]);
    const call = client(port).watch(Buffer.from('go'), new grpc.Metadata(), { deadline: deadline() });
    call.on('error', () => undefined);
    await new Promise((resolve) => call.once('data', resolve));
    const cancelled = app.watchCancelled();
    call.cancel();
    await Promise.race([cancelled, new Promise((_, reject) => setTimeout(() => reject(new Error('the app never saw the cancellation')), 5_000))]);
  });

  it('carries a client stream, and a bidirectional stream message by message (each echo arrives before the next message is sent)', async () => {
    const { port } = await start([site(app.url)]);
    const c = client(port);
    const collected = await new Promise<string>((resolve, reject) => {
      const call = c.collect(new grpc.Metadata(), { deadline: deadline() }, (err: grpc.ServiceError | null, reply?: Buffer) => (err ? reject(err) : resolve(reply!.toString())));
      for (const part of ['a', 'b', 'c']) call.write(Buffer.from(part));
      call.end();
    });
    assert.equal(collected, 'a+b+c');

    const chat = c.chat(new grpc.Metadata(), { deadline: deadline() });
    const next = () => new Promise<string>((resolve, reject) => {
      chat.once('data', (b: Buffer) => resolve(b.toString()));
      chat.once('error', reject);
    });
    for (const word of ['one', 'two', 'three']) {
      const echoed = next();
      chat.write(Buffer.from(word));
      assert.equal(await echoed, `re:${word}`);
    }
    const status = new Promise<grpc.StatusObject>((resolve) => chat.on('status', resolve));
    chat.end();
    assert.equal((await status).code, grpc.status.OK);
  });

  it('answers UNAVAILABLE at once, not a hang, when the upstream refuses connections', async () => {
    const dead = await freePort();
    const { port } = await start([site(`h2c://127.0.0.1:${dead}`)]);
    const started = Date.now();
    const r = await unary(client(port), 'anyone?');
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
    assert.match(r.err?.details ?? '', /padlock: 502 Bad Gateway/);
    assert.ok(Date.now() - started < 5_000, 'well before the call deadline');
  });

  it('applies the upstream rules to h2c upstreams: a route to padlock\'s own :443 gets UNAVAILABLE, never a loop', async () => {
    const log: string[] = [];
    const { proxy, port } = await start([], { log });
    proxy.setSites([site(`h2c://127.0.0.1:${port}`)]);
    const r = await unary(client(port), 'loop?');
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
    const refused = log.map((l) => JSON.parse(l)).find((l) => l.msg === 'upstream refused: padlock does not forward there');
    assert.ok(refused, log.join('\n'));
    assert.equal(refused.rule, 'own-listener');
  });

  it('answers UNAVAILABLE when the upstream goes away between calls, and serves again once it is back on the same address', async () => {
    const other = await startGrpcApp();
    const { port } = await start([site(other.url)]);
    const c = client(port);
    assert.equal((await unary(c, 'before')).err, null);
    await other.close();
    const r = await unary(c, 'while gone');
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
    const back = await startGrpcApp(Number(new URL(other.url.replace('h2c:', 'http:')).port));
    try {
      const again = await unary(c, 'after');
      assert.equal(again.err, null);
      assert.equal(again.reply?.toString(), 'echo:after');
    } finally {
      await back.close();
    }
  });

  it('forwards the client\'s request trailers and te: trailers to the upstream, and the upstream\'s trailers back (node:http2 client)', async () => {
    const { port } = await start([site(raw.url)]);
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: NAME, ca: root.cert });
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': NAME, te: 'trailers' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-client-checksum': 'c0ffee' }));
      stream.end('payload');
      let status = 0;
      let trailers: http2.IncomingHttpHeaders = {};
      let body = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('trailers', (t) => (trailers = t));
      stream.setEncoding('utf8').on('data', (d: string) => (body += d));
      await new Promise((r) => stream.on('close', r));
      assert.equal(status, 200);
      assert.equal(body, 'h2c-ok POST payload');
      assert.equal(trailers['x-upstream-trailer'], 'done');
      assert.equal(raw.last.trailers?.['x-client-checksum'], 'c0ffee');
      assert.equal(raw.last.headers?.te, 'trailers');
      assert.equal(raw.last.headers?.[':authority'], NAME);
      assert.equal(raw.last.headers?.['x-forwarded-proto'], 'https');
    } finally {
      session.close();
    }
  });

  it('forwards an HTTPS HTTP/1.1 request to an h2c route over h2c (as Caddy does), trailers included on the chunked answer', async () => {
    const { port } = await start([site(raw.url)]);
    const r = await h1.request(port, { host: NAME, path: '/from-h1', method: 'POST', body: [Buffer.from('via h1')] });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'h2c-ok POST via h1');
    assert.equal(r.trailers['x-upstream-trailer'], 'done');
    assert.equal(raw.last.headers?.[':path'], '/from-h1');
    assert.equal(raw.last.headers?.via, '1.1 padlock');
  });

  it('reuses one upstream session for many requests, and closes it when the route goes away (hot reload)', async () => {
    const own = await startRawH2c();
    try {
      const { proxy, port } = await start([site(own.url)]);
      const conn = h2.connection(port);
      try {
        for (let i = 0; i < 5; i++) assert.equal((await h2.request(port, { host: NAME, path: `/n${i}`, connection: conn })).status, 200);
      } finally {
        conn.close();
      }
      assert.equal(own.sessions(), 1, 'five requests, one h2c session');
      assert.equal(proxy.stats().upstreamConnectionsOpened, 1);
      proxy.setSites([site(raw.url)]);
      const deadline = Date.now() + 5_000;
      while (own.sessions() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(own.sessions(), 0, 'the session of the upstream no route names any more is closed');
    } finally {
      await own.close();
    }
  });

  it('keeps to the upstream\'s SETTINGS_MAX_CONCURRENT_STREAMS: requests over it wait for a free stream instead of failing', async () => {
    const narrow = await startRawH2c({ maxConcurrentStreams: 1, delayMs: 50 });
    try {
      const { port } = await start([site(narrow.url)]);
      const conn = h2.connection(port);
      try {
        const replies = await Promise.all([1, 2, 3, 4].map((i) => h2.request(port, { host: NAME, path: `/q${i}`, method: 'POST', body: `n${i}`, connection: conn })));
        assert.deepEqual(replies.map((r) => `${r.status} ${r.body}`), [1, 2, 3, 4].map((i) => `200 h2c-ok POST n${i}`));
      } finally {
        conn.close();
      }
      assert.equal(narrow.maxActive(), 1, 'never more than one stream at a time on the upstream');
    } finally {
      await narrow.close();
    }
  });

  it('runs padlock.healthcheck on an h2c upstream over h2c (an HTTP/1.1 GET would fail against it): 2xx passes and requests go through, 503 fails', async () => {
    const checked = await startRawH2c();
    try {
      const good: SiteSpec = { ...site(checked.url), upstreams: [{ url: checked.url, containerName: 'good', containerId: 'g', healthcheck: { path: '/healthz', intervalMs: 200 } }] };
      const bad: SiteSpec = { ...site(checked.url), host: 'bad.example.com', upstreams: [{ url: checked.url, containerName: 'bad', containerId: 'b', healthcheck: { path: '/bad-health', intervalMs: 200 } }] };
      const { proxy, port } = await start([good, bad]);
      const checks = async () => Object.fromEntries(proxy.upstreamStatus().map((r) => [r.host, r.upstreams[0]!.check]));
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline && (await checks())[NAME] !== 'passing') await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await checks(), { [NAME]: 'passing', 'bad.example.com': 'failing' });
      assert.equal((await h2.request(port, { host: NAME, path: '/after-check' })).status, 200);
      assert.equal(checked.last.headers?.[':path'], '/after-check');
    } finally {
      await checked.close();
    }
  });

  it('with --http2 false, still forwards HTTP/1.1 requests to an h2c route and warns that gRPC clients cannot reach it', async () => {
    const log: string[] = [];
    const { port } = await start([site(raw.url)], { http2: false, log });
    const r = await h1.request(port, { host: NAME, path: '/h1-only' });
    assert.equal(r.status, 200);
    assert.match(r.body, /^h2c-ok GET/);
    const warning = log.map((l) => JSON.parse(l)).find((l) => /h2c \(gRPC\) routes while --http2 is false/.test(l.msg));
    assert.ok(warning, log.join('\n'));
    assert.deepEqual(warning.hosts, [NAME]);
  });
});
