/**
 * The proxy in two cluster workers (`--workers 2`) and names whose
 * certificate is not in memory yet: a worker's handshake for such a name asks
 * the primary, which reads it (here a stub in place of the manager's
 * `certificateFor`), and the handshake is served with it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ProxyCluster } from '../../src/proxy/cluster.js';
import type { CertificateEntry } from '../../src/tls/contexts.js';
import { silentLogger } from '../../src/log.js';
import { TestPki, DAY, type TestCert } from '../support/certs.js';

describe('padlock run --workers 2 with certificates not read yet', () => {
  let pki: TestPki;
  let root: TestCert;
  let first: TestCert;
  let renewed: TestCert;
  let cluster: ProxyCluster;
  let port: number;
  const asked: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const entry = (c: TestCert, version: string): CertificateEntry => ({ certPem: c.cert, keyPem: c.key, version });
  const serialOf = (c: TestCert) => new X509Certificate(c.cert).serialNumber.toUpperCase();

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    const leaf = { issuer: root, kind: 'leaf' as const, notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY), names: ['app.example.com'] };
    first = await pki.issue({ ...leaf, cn: 'app.example.com' });
    renewed = await pki.issue({ ...leaf, cn: 'app.example.com' });
    cluster = new ProxyCluster({
      workers: 2, httpPort: 0, httpsPort: 0, bind: '127.0.0.1', logger: silentLogger, logLevel: 'error', pretty: false,
      certificateFor: async (name) => {
        asked.push(name);
        await gate;
        return name === 'app.example.com' ? entry(first, 'v1') : undefined;
      },
    });
    cluster.setSites([{ host: 'app.example.com', upstreams: [{ url: 'http://127.0.0.1:9' }], https: true, redirect: true, issuer: 'acme' }]);
    cluster.replace(new Map(), ['app.example.com']);
    port = (await cluster.listen()).httpsPort;
  });
  after(async () => {
    await cluster?.close({ drainMs: 0 });
    await pki?.cleanup();
  });

  /** One handshake for `name` trusting only the test root: the served serial, or the error code. */
  const handshake = (name: string) => new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: name, ca: root.cert });
    s.once('secureConnect', () => {
      resolve(s.getPeerCertificate().serialNumber.toUpperCase());
      s.destroy();
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });

  it('serves handshakes that arrive on both workers before the certificate was read, with one read per worker at most', async () => {
    const waiting = Array.from({ length: 8 }, () => handshake('app.example.com'));
    // The kernel spreads the connections over both workers; give their requests time to reach the primary.
    const until = Date.now() + 10_000;
    while (asked.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    release();
    assert.deepEqual(await Promise.all(waiting), Array(8).fill(serialOf(first)));
    assert.ok(asked.length >= 1 && asked.length <= 2, `the primary was asked ${asked.length} times for 8 handshakes on 2 workers`);
    assert.deepEqual([...new Set(asked)], ['app.example.com']);
  });

  it('refuses a name that is neither in memory nor pending, without asking the primary', async () => {
    const before = asked.length;
    assert.notEqual(await handshake('other.example.com'), serialOf(first));
    assert.equal(asked.length, before);
  });

  it('serves a renewed certificate on every worker once the primary publishes it', async () => {
    cluster.replace(new Map([['app.example.com', entry(renewed, 'v2')]]), []);
    const until = Date.now() + 10_000;
    let served: string[] = [];
    while (Date.now() < until) {
      served = await Promise.all(Array.from({ length: 6 }, () => handshake('app.example.com')));
      if (served.every((s) => s === serialOf(renewed))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(served, Array(6).fill(serialOf(renewed)));
  });
});
