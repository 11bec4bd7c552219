import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory-store.js';
import { ensureLocalRoot, issueLocalCertificate, LOCAL_ROOT_LINEAGE } from '../../src/tls/local-ca.js';
import { isLocalName } from '../../src/config/names.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { verifyCertificate } from '../../src/tls/verify.js';
import { fixedClock, systemClock } from '../../src/clock.js';
import { PadlockError } from '../../src/errors.js';

const anchors = (pem: string) => ({ pem, count: 1, sources: ['local root'] });

describe('local CA', () => {
  it('creates its root once, stores it with a private key, and returns the same root afterwards', async () => {
    const store = new MemoryStore();
    const a = await ensureLocalRoot(store, systemClock);
    const b = await ensureLocalRoot(store, systemClock);
    assert.equal(a.certPem, b.certPem);
    const root = new X509Certificate(a.certPem);
    assert.equal(root.ca, true);
    assert.match(root.subject, /padlock local CA/);
    assert.ok((await store.readLineage(LOCAL_ROOT_LINEAGE))?.bundle.privkey.includes('PRIVATE KEY'));
  });

  it('issues leaves for localhost names that OpenSSL verifies against the root alone, for TLS server use', async () => {
    const store = new MemoryStore();
    const root = await ensureLocalRoot(store, systemClock);
    const key = await generatePrivateKey({ keyType: 'ecdsa' });
    const names = ['app.localhost', 'api.app.localhost'];
    const bundle = await issueLocalCertificate(root, names, key, systemClock);
    const result = await verifyCertificate({ cert: bundle.cert, chain: bundle.chain, key, names, roots: anchors(root.certPem) });
    assert.deepEqual(result.leaf.names.sort(), [...names].sort());
    const days = (result.leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `valid for ${days} days`);
  });

  it('is not trusted by anyone who has not installed its root', async () => {
    const store = new MemoryStore();
    const root = await ensureLocalRoot(store, systemClock);
    const otherRoot = await ensureLocalRoot(new MemoryStore(), systemClock);
    const key = await generatePrivateKey({ keyType: 'ecdsa' });
    const bundle = await issueLocalCertificate(root, ['x.localhost'], key, systemClock);
    await assert.rejects(verifyCertificate({ cert: bundle.cert, roots: anchors(otherRoot.certPem) }), (e: unknown) => e instanceof PadlockError && e.code.startsWith('CHAIN_'));
  });

  it('dates leaves from the injected clock', async () => {
    const at = new Date('2030-06-01T00:00:00Z');
    const root = await ensureLocalRoot(new MemoryStore(), fixedClock(at));
    const key = await generatePrivateKey({ keyType: 'ecdsa' });
    const leaf = new X509Certificate((await issueLocalCertificate(root, ['a.internal'], key, fixedClock(at), 3)).cert);
    assert.equal(new Date(leaf.validTo).toISOString(), '2030-06-04T00:00:00.000Z');
  });

  const localCases = [
    { desc: 'localhost itself', name: 'localhost', local: true },
    { desc: 'a subdomain of localhost', name: 'app.localhost', local: true },
    { desc: 'an .internal name', name: 'db.corp.internal', local: true },
    { desc: 'a home.arpa name', name: 'nas.home.arpa', local: true },
    { desc: 'a public name', name: 'example.com', local: false },
    { desc: 'a name merely ending in the same letters', name: 'notlocalhost.com', local: false },
  ];
  for (const c of localCases) {
    it(`treats ${c.desc} as ${c.local ? 'local' : 'public'}`, () => {
      assert.equal(isLocalName(c.name, ['localhost', 'internal', 'home.arpa']), c.local);
    });
  }
});
