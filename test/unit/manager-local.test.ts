/**
 * The daemon's certificate manager over certificates from padlock's local CA,
 * with a memory store and the real local issuer: what it does with them
 * without any CA. (test/integration/manager.test.ts covers ACME, with Pebble.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CertificateManager, type CertificateSnapshot } from '../../src/certificates/manager.js';
import { CertificateEngine } from '../../src/certificates/engine.js';
import { IssuerSet } from '../../src/certificates/issuers.js';
import { AriSources } from '../../src/certificates/ari-poller.js';
import { EngineEventBus } from '../../src/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { ensureLocalRoot, issueLocalCertificate, issuedByRoot, LOCAL_ISSUER, LOCAL_ROOT_LINEAGE } from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import type { CertStore } from '../../src/store/store.js';

const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'local' });

/** A memory store that counts reads of each lineage. */
class CountingStore extends MemoryStore {
  readonly reads = new Map<string, number>();
  override async readLineage(name: string): ReturnType<MemoryStore['readLineage']> {
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    return super.readLineage(name);
  }
}

/** Stores a local-CA certificate for `name`, valid 90 days, signed by `root`. */
async function storeLocal(store: CertStore, root: { certPem: string; keyPem: string }, name: string, keyPem: string): Promise<void> {
  const bundle = await issueLocalCertificate(root, [name], keyPem, systemClock, 90);
  await store.putVersion(name, bundle, {
    name, domains: [name], server: LOCAL_ISSUER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString(),
  });
}

/** `count` stored local-CA certificates, as a daemon restarting over its store finds them. */
async function storeWithLocalCertificates(count: number): Promise<{ store: CountingStore; names: string[] }> {
  const store = new CountingStore();
  const root = await ensureLocalRoot(store, systemClock);
  const keyPem = await generatePrivateKey({ keyType: 'ecdsa' });
  const names = Array.from({ length: count }, (_, i) => `app${i}.localhost`);
  for (const name of names) await storeLocal(store, root, name, keyPem);
  return { store, names };
}

function makeManager(store: CertStore, snapshots: CertificateSnapshot[]) {
  const issuers = new IssuerSet({ clock: systemClock, logger: silentLogger, ari: new AriSources(), serverCa: async () => undefined, roots: async () => ({ pem: '', count: 0, sources: [] }) });
  const engine = new CertificateEngine({ store, clock: systemClock, logger: silentLogger, events: new EngineEventBus(), issuerFor: (spec) => issuers.for(spec), solversFor: () => [] });
  const manager = new CertificateManager({
    engine, clock: systemClock, logger: silentLogger, server: 'https://127.0.0.1:1/dir', account: { agreeTos: true },
    challenge: { type: 'standalone', port: 80 }, concurrency: 4,
    // Never fires during a test: planning runs through start() and checkNow().
    renewCron: '0 0 1 1 *',
    onSnapshot: (s) => void snapshots.push(s),
  });
  return { engine, manager, issuers };
}

describe('certificate manager with local-CA certificates', () => {
  it('serves the stored local certificates and never hands them to the renewal-information (ARI) poller', async () => {
    const { store, names } = await storeWithLocalCertificates(5);
    const snapshots: CertificateSnapshot[] = [];
    const { engine, manager, issuers } = makeManager(store, snapshots);
    const polled: string[] = [];
    const poller = engine.ariPoller;
    const pollDue = poller.pollDue.bind(poller);
    poller.pollDue = async (items, signal) => {
      polled.push(...items.map((i) => i.name));
      return pollDue(items, signal);
    };
    manager.setSites(names.map(site));
    await manager.load();
    manager.start();
    await manager.checkNow();
    await manager.idle();
    await manager.stop();
    issuers.close();
    assert.deepEqual([...(snapshots.at(-1)?.keys() ?? [])].sort(), [...names].sort(), 'every stored certificate is served');
    assert.equal(manager.status().filter((s) => s.state === 'valid').length, names.length);
    assert.deepEqual(polled, [], 'the local CA has no renewal information to poll');
  });

  it('reads the local root once for a batch of certificates being loaded, not once per certificate', async () => {
    const { store, names } = await storeWithLocalCertificates(40);
    const { manager, issuers } = makeManager(store, []);
    manager.setSites(names.map(site));
    store.reads.clear();
    await manager.load();
    await manager.stop();
    issuers.close();
    assert.equal(names.filter((n) => store.reads.get(n) === 1).length, names.length, 'each certificate is read once');
    const rootReads = store.reads.get(LOCAL_ROOT_LINEAGE) ?? 0;
    assert.ok(rootReads >= 1 && rootReads <= 4, `the root was read ${rootReads} times for ${names.length} certificates`);
  });

  it('reissues at once the local certificate a replaced root signed, and keeps the one the current root signed', async () => {
    const store = new MemoryStore();
    const keyPem = await generatePrivateKey({ keyType: 'ecdsa' });
    const old = await ensureLocalRoot(store, systemClock, ['localhost']);
    await storeLocal(store, old, 'old.localhost', keyPem);
    // A wider suffix list replaces the root (new key); leaves the old one signed must go.
    const fresh = await ensureLocalRoot(store, systemClock, ['localhost', 'test']);
    assert.equal(fresh.replaced, true);
    await storeLocal(store, fresh, 'new.localhost', keyPem);
    const { manager, issuers } = makeManager(store, []);
    manager.setSites([site('old.localhost'), site('new.localhost')]);
    await manager.load();
    await manager.obtainLocalNow();
    await manager.stop();
    issuers.close();
    const [oldLineage, newLineage] = await Promise.all([store.readLineage('old.localhost'), store.readLineage('new.localhost')]);
    assert.equal(oldLineage?.version, 2, 'reissued');
    assert.equal(issuedByRoot(oldLineage.bundle.cert, fresh.certPem), true, 'by the current root');
    assert.equal(newLineage?.version, 1, 'kept');
  });
});
