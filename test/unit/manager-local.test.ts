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
  /** While set, every read waits for it. */
  gate: Promise<void> | undefined;
  override async readLineage(name: string): ReturnType<MemoryStore['readLineage']> {
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    await this.gate;
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

function makeManager(store: CertStore, snapshots: CertificateSnapshot[], onPending?: (snapshot: CertificateSnapshot, pending: ReadonlySet<string>) => void) {
  const issuers = new IssuerSet({ clock: systemClock, logger: silentLogger, ari: new AriSources(), serverCa: async () => undefined, roots: async () => ({ pem: '', count: 0, sources: [] }) });
  const engine = new CertificateEngine({ store, clock: systemClock, logger: silentLogger, events: new EngineEventBus(), issuerFor: (spec) => issuers.for(spec), solversFor: () => [] });
  const manager = new CertificateManager({
    engine, clock: systemClock, logger: silentLogger, server: 'https://127.0.0.1:1/dir', account: { agreeTos: true },
    challenge: { type: 'standalone', port: 80 }, concurrency: 4,
    // Never fires during a test: planning runs through start() and checkNow().
    renewCron: '0 0 1 1 *',
    onSnapshot: (s, p) => {
      snapshots.push(s);
      onPending?.(s, p);
    },
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
    await manager.idle();
    await manager.stop();
    issuers.close();
    assert.equal(names.filter((n) => store.reads.get(n) === 1).length, names.length, 'each certificate is read once');
    const rootReads = store.reads.get(LOCAL_ROOT_LINEAGE) ?? 0;
    assert.ok(rootReads >= 1 && rootReads <= 4, `the root was read ${rootReads} times for ${names.length} certificates`);
  });

  it('reissues, on the first handshake, the local certificate a replaced root signed, and keeps the one the current root signed', async () => {
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
    const [servedOld, servedNew] = await Promise.all([manager.certificateFor('old.localhost'), manager.certificateFor('new.localhost')]);
    await manager.stop();
    issuers.close();
    const [oldLineage, newLineage] = await Promise.all([store.readLineage('old.localhost'), store.readLineage('new.localhost')]);
    assert.equal(oldLineage?.version, 2, 'reissued');
    assert.equal(issuedByRoot(oldLineage.bundle.cert, fresh.certPem), true, 'by the current root');
    assert.equal(servedOld?.certPem, oldLineage.bundle.fullchain, 'and that handshake got the new one');
    assert.equal(newLineage?.version, 1, 'kept');
    assert.equal(servedNew?.certPem, newLineage.bundle.fullchain);
  });

  it('issues a local name with no stored certificate on its first handshake, once for handshakes that arrive together, and serves it from then on', async () => {
    const store = new MemoryStore();
    await ensureLocalRoot(store, systemClock);
    const snapshots: Array<{ served: string[]; pending: string[] }> = [];
    const { manager, issuers } = makeManager(store, [], (s, p) => snapshots.push({ served: [...s.keys()], pending: [...p] }));
    manager.setSites([site('fresh.localhost')]);
    await manager.load();
    assert.deepEqual(snapshots.at(-1), { served: [], pending: ['fresh.localhost'] }, 'not read yet: a handshake will ask');
    const answers = await Promise.all(Array.from({ length: 5 }, () => manager.certificateFor('fresh.localhost')));
    const lineage = await store.readLineage('fresh.localhost');
    assert.equal(lineage?.version, 1, 'one certificate for five handshakes');
    for (const a of answers) assert.equal(a?.certPem, lineage.bundle.fullchain);
    assert.equal(await manager.certificateFor('unrouted.localhost'), undefined, 'a name no site routes gets nothing, and nothing is issued for it');
    assert.equal(await store.readLineage('unrouted.localhost'), null);
    await manager.idle();
    assert.deepEqual(snapshots.at(-1), { served: ['fresh.localhost'], pending: [] }, 'then served from memory');
    await manager.stop();
    issuers.close();
  });

  it('serves before reading: load() waits for no read, the background reads every routed certificate, and a handshake reads its own first', async () => {
    const { store, names } = await storeWithLocalCertificates(30);
    const snapshots: CertificateSnapshot[] = [];
    const pendings: Array<ReadonlySet<string>> = [];
    const { manager, issuers } = makeManager(store, snapshots, (_s, p) => pendings.push(p));
    manager.setSites(names.map(site));
    store.reads.clear();
    const last = names.at(-1)!;
    // The store answers nothing until the test opens the gate: load() must not wait for it.
    let open: () => void = () => {};
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const loaded = await Promise.race([manager.load().then(() => true), new Promise((r) => setTimeout(() => r(false), 2_000))]);
    assert.equal(loaded, true, 'load() resolved while no certificate read had been answered');
    const handshake = manager.certificateFor(last);
    open();
    const first = await handshake;
    assert.equal(first?.certPem, (await store.readLineage(last))?.bundle.fullchain, 'the handshake got its certificate');
    await manager.idle();
    await manager.stop();
    issuers.close();
    assert.deepEqual([...(snapshots.at(-1)?.keys() ?? [])].sort(), [...names].sort(), 'every stored certificate is in memory once the background read is done');
    assert.equal(pendings.at(-1)?.size, 0);
    assert.equal(names.filter((n) => (store.reads.get(n) ?? 0) === 1).length, names.length - 1, 'every certificate read once by the background or the handshake...');
    assert.equal(store.reads.get(last), 2, '...and the one the test read itself once more');
  });
});
