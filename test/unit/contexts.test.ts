import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { CertificateRegistry, UnknownServerNameError, type CertificateEntry } from '../../src/tls/contexts.js';
import { TestPki, DAY, type TestCert } from '../support/certs.js';

describe('CertificateRegistry', () => {
  let pki: TestPki;
  let rootPem: string;
  let other: TestCert;
  let exact: TestCert;
  let wildcard: TestCert;
  let renewed: TestCert;
  const entry = (c: TestCert, version: string): CertificateEntry => ({ certPem: c.cert, keyPem: c.key, version });

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    const root = await pki.issue({ cn: 'Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    rootPem = root.cert;
    const leaf = { issuer: root, kind: 'leaf' as const, notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) };
    exact = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    renewed = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    wildcard = await pki.issue({ ...leaf, cn: '*.w.example.com', names: ['*.w.example.com'] });
    other = await pki.issue({ ...leaf, cn: 'other.example.com', names: ['other.example.com'] });
  });
  after(async () => pki.cleanup());

  describe('lookup', () => {
    const cases: { desc: string; name: string; want: string | undefined }[] = [
      { desc: 'exact name', name: 'app.example.com', want: 'app.example.com' },
      { desc: 'exact name, any case, trailing dot', name: 'APP.Example.com.', want: 'app.example.com' },
      { desc: 'one label under a wildcard', name: 'x.w.example.com', want: '*.w.example.com' },
      { desc: 'an exact entry wins over the wildcard', name: 'e.w.example.com', want: 'e.w.example.com' },
      { desc: 'a wildcard never covers two labels', name: 'a.b.w.example.com', want: undefined },
      { desc: 'a wildcard never covers its bare parent', name: 'w.example.com', want: undefined },
      { desc: 'unknown name', name: 'other.example.com', want: undefined },
      { desc: 'empty name', name: '', want: undefined },
    ];
    for (const c of cases) {
      it(c.desc, () => {
        const r = new CertificateRegistry();
        r.replace(new Map([
          ['app.example.com', entry(exact, '1')],
          ['*.w.example.com', entry(wildcard, '1')],
          ['e.w.example.com', entry(exact, '1')],
        ]));
        assert.equal(r.resolve(c.name)?.name, c.want);
        assert.equal(r.has(c.name), c.want !== undefined);
      });
    }
  });

  it('builds no context at replace(), one on first use, and reuses it', () => {
    const r = new CertificateRegistry();
    const many = new Map<string, CertificateEntry>();
    for (let i = 0; i < 10_000; i++) many.set(`n${i}.example.com`, entry(exact, '1'));
    many.set('app.example.com', entry(exact, '1'));
    r.replace(many);
    assert.deepEqual(r.stats(), { names: 10_001, cachedContexts: 0, builtContexts: 0 });
    const a = r.contextFor('app.example.com');
    assert.ok(a);
    assert.equal(r.contextFor('APP.example.com'), a, 'second lookup hits the cache');
    assert.deepEqual(r.stats(), { names: 10_001, cachedContexts: 1, builtContexts: 1 });
  });

  it('keys the cache by version: a renewal gets a new context, an unchanged version keeps its own', () => {
    const r = new CertificateRegistry();
    r.replace(new Map([['app.example.com', entry(exact, 'v1')], ['*.w.example.com', entry(wildcard, 'v1')]]));
    const v1 = r.contextFor('app.example.com');
    const w1 = r.contextFor('x.w.example.com');
    assert.equal(r.contextFor('y.w.example.com'), w1, 'all names under one wildcard share its context');
    r.replace(new Map([['app.example.com', entry(renewed, 'v2')], ['*.w.example.com', entry(wildcard, 'v1')]]));
    const v2 = r.contextFor('app.example.com');
    assert.ok(v1 && v2);
    assert.notEqual(v2, v1);
    assert.equal(r.contextFor('x.w.example.com'), w1, 'untouched name keeps its context across replace()');
    assert.equal(r.stats().cachedContexts, 2, 'the v1 context left the cache');
    assert.equal(r.stats().builtContexts, 3);
  });

  it('drops a name that left the snapshot', () => {
    const r = new CertificateRegistry();
    r.replace(new Map([['app.example.com', entry(exact, '1')]]));
    assert.ok(r.contextFor('app.example.com'));
    r.replace(new Map());
    assert.equal(r.contextFor('app.example.com'), undefined);
    assert.equal(r.stats().cachedContexts, 0);
  });

  it('is not changed by mutating the map given to replace()', () => {
    const r = new CertificateRegistry();
    const snap = new Map([['app.example.com', entry(exact, '1')]]);
    r.replace(snap);
    snap.delete('app.example.com');
    assert.equal(r.has('app.example.com'), true);
  });

  it('reports a certificate that cannot be loaded and serves nothing for it', () => {
    const errors: string[] = [];
    const r = new CertificateRegistry({ onContextError: (name) => errors.push(name) });
    r.replace(new Map([['app.example.com', { certPem: exact.cert, keyPem: wildcard.key, version: '1' }]]));
    assert.equal(r.contextFor('app.example.com'), undefined);
    assert.deepEqual(errors, ['app.example.com']);
  });

  it('sniCallback answers a context, or UnknownServerNameError for an unknown name', async () => {
    const r = new CertificateRegistry();
    r.replace(new Map([['app.example.com', entry(exact, '1')]]));
    const call = (name: string) =>
      new Promise<{ err: Error | null; ctx: tls.SecureContext | undefined }>((resolve) => r.sniCallback(name, (err, ctx) => resolve({ err, ctx })));
    const ok = await call('app.example.com');
    assert.equal(ok.err, null);
    assert.equal(ok.ctx, r.contextFor('app.example.com'));
    const unknown = await call('nope.example.com');
    assert.ok(unknown.err instanceof UnknownServerNameError);
    assert.equal((unknown.err as UnknownServerNameError).code, 'TLS_UNKNOWN_SERVER_NAME', 'a stable code like every other padlock error');
    assert.equal(unknown.ctx, undefined);
  });

  describe('over real TLS handshakes', () => {
    /** A TLS echo server on 127.0.0.1 whose certificates come from `r`, closed after the test. */
    async function serve(r: CertificateRegistry): Promise<number> {
      const server = tls.createServer({ SNICallback: r.sniCallback }, (socket) => socket.pipe(socket));
      server.on('tlsClientError', () => {});
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      after(() => {
        server.close();
      });
      return (server.address() as AddressInfo).port;
    }

    /** A handshake for `name` trusting only the test root: the served serial, or the error code; the socket stays open. */
    function connect(port: number, name: string): Promise<{ serial?: string; error?: string; socket: tls.TLSSocket }> {
      return new Promise((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: name, ca: rootPem });
        socket.once('secureConnect', () => resolve({ serial: socket.getPeerCertificate().serialNumber.toUpperCase(), socket }));
        socket.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, socket }));
      });
    }

    async function handshake(port: number, name: string): Promise<string | undefined> {
      const { serial, error, socket } = await connect(port, name);
      socket.destroy();
      return serial ?? error;
    }

    /** Sends a line over an open connection and reads the echo back. */
    function echo(socket: tls.TLSSocket, line: string): Promise<string> {
      return new Promise((resolve, reject) => {
        socket.once('data', (d: Buffer) => resolve(d.toString()));
        socket.once('error', reject);
        socket.write(line);
      });
    }

    const serialOf = (c: TestCert) => new X509Certificate(c.cert).serialNumber.toUpperCase();

    it('keeps at most maxContexts contexts; an evicted name still handshakes, with a rebuilt context, and an open connection evicted meanwhile keeps working', async () => {
      const r = new CertificateRegistry({ maxContexts: 2 });
      r.replace(new Map([['app.example.com', entry(exact, '1')], ['other.example.com', entry(other, '1')], ['x.w.example.com', entry(wildcard, '1')]]));
      const port = await serve(r);
      const open = await connect(port, 'app.example.com');
      assert.equal(open.serial, serialOf(exact));
      assert.equal(await handshake(port, 'other.example.com'), serialOf(other));
      assert.equal(await handshake(port, 'x.w.example.com'), serialOf(wildcard));
      assert.equal(r.stats().cachedContexts, 2, 'the least recently used (app) was evicted');
      assert.equal(await echo(open.socket, 'still here\n'), 'still here\n', 'the connection made with the evicted context is not cut');
      open.socket.destroy();
      assert.equal(await handshake(port, 'app.example.com'), serialOf(exact), 'the evicted name handshakes again');
      assert.deepEqual(r.stats(), { names: 3, cachedContexts: 2, builtContexts: 4 });
    });

    it('uses the most recently used order: a name handshaken again stays cached while others come and go', async () => {
      const r = new CertificateRegistry({ maxContexts: 2 });
      r.replace(new Map([['app.example.com', entry(exact, '1')], ['other.example.com', entry(other, '1')], ['x.w.example.com', entry(wildcard, '1')]]));
      const port = await serve(r);
      await handshake(port, 'app.example.com');
      await handshake(port, 'other.example.com');
      await handshake(port, 'app.example.com');
      await handshake(port, 'x.w.example.com');
      const built = r.stats().builtContexts;
      assert.equal(await handshake(port, 'app.example.com'), serialOf(exact));
      assert.equal(r.stats().builtContexts, built, 'app was still cached: other was the one evicted');
    });

    it('serves the new certificate on the next handshake after replace(), even when the old one was cached, while an open connection keeps the old one', async () => {
      const r = new CertificateRegistry({ maxContexts: 1 });
      r.replace(new Map([['app.example.com', entry(exact, 'v1')]]));
      const port = await serve(r);
      const open = await connect(port, 'app.example.com');
      assert.equal(open.serial, serialOf(exact));
      r.replace(new Map([['app.example.com', entry(renewed, 'v2')]]));
      assert.equal(await handshake(port, 'app.example.com'), serialOf(renewed));
      assert.equal(await echo(open.socket, 'old\n'), 'old\n');
      assert.equal(open.socket.getPeerCertificate().serialNumber.toUpperCase(), serialOf(exact));
      open.socket.destroy();
    });

    it('reads a pending name on its first handshake, once however many handshakes wait for it, then serves it from memory', async () => {
      const loads: string[] = [];
      const r = new CertificateRegistry({
        load: async (name) => {
          loads.push(name);
          await new Promise((res) => setTimeout(res, 100));
          return name === 'app.example.com' ? entry(exact, '1') : undefined;
        },
      });
      r.replace(new Map([['other.example.com', entry(other, '1')]]), ['app.example.com']);
      const port = await serve(r);
      const results = await Promise.all(Array.from({ length: 5 }, () => handshake(port, 'app.example.com')));
      assert.deepEqual(results, Array(5).fill(serialOf(exact)));
      assert.equal(await handshake(port, 'APP.example.com.'), serialOf(exact));
      assert.deepEqual(loads, ['app.example.com'], 'one read for six handshakes');
      assert.notEqual(await handshake(port, 'nope.example.com'), serialOf(exact), 'an unknown name is refused');
      assert.deepEqual(loads, ['app.example.com'], 'a name that is neither in memory nor pending is never read');
    });

    it('refuses a pending name whose read fails or finds nothing, says why, and reads it again on the next handshake', async () => {
      const answers: Array<CertificateEntry | undefined | Error> = [new Error('store unreachable'), undefined, entry(exact, '1')];
      const errors: string[] = [];
      const r = new CertificateRegistry({
        load: async () => {
          const next = answers.shift();
          if (next instanceof Error) throw next;
          return next;
        },
        onLoadError: (name, err) => errors.push(`${name}: ${(err as Error).message}`),
      });
      r.replace(new Map(), ['app.example.com']);
      const port = await serve(r);
      assert.notEqual(await handshake(port, 'app.example.com'), serialOf(exact), 'refused while the store cannot be read');
      assert.deepEqual(errors, ['app.example.com: store unreachable']);
      assert.notEqual(await handshake(port, 'app.example.com'), serialOf(exact), 'refused while there is no certificate');
      assert.equal(await handshake(port, 'app.example.com'), serialOf(exact), 'served once it can be read');
    });

    it('lets a replace() that arrives during a read win over what the read found', async () => {
      let release: () => void = () => {};
      let reading = false;
      const r = new CertificateRegistry({
        load: async () => {
          reading = true;
          await new Promise<void>((res) => (release = res));
          return entry(exact, 'old');
        },
      });
      r.replace(new Map(), ['app.example.com']);
      const port = await serve(r);
      const waiting = handshake(port, 'app.example.com');
      while (!reading) await new Promise((res) => setTimeout(res, 5));
      r.replace(new Map([['app.example.com', entry(renewed, 'new')]]));
      release();
      assert.equal(await waiting, serialOf(renewed));
      assert.equal(await handshake(port, 'app.example.com'), serialOf(renewed));
    });
  });
});
