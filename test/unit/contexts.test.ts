import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import { CertificateRegistry, UnknownServerNameError, type CertificateEntry } from '../../src/tls/contexts.js';
import { TestPki, DAY, type TestCert } from '../support/certs.js';

describe('CertificateRegistry', () => {
  let pki: TestPki;
  let exact: TestCert;
  let wildcard: TestCert;
  let renewed: TestCert;
  const entry = (c: TestCert, version: string): CertificateEntry => ({ certPem: c.cert, keyPem: c.key, version });

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    const root = await pki.issue({ cn: 'Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const leaf = { issuer: root, kind: 'leaf' as const, notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) };
    exact = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    renewed = await pki.issue({ ...leaf, cn: 'app.example.com', names: ['app.example.com'] });
    wildcard = await pki.issue({ ...leaf, cn: '*.w.example.com', names: ['*.w.example.com'] });
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
});
