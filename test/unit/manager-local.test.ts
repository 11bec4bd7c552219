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
import { ensureLocalRoot, issueLocalCertificate, LOCAL_ISSUER } from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import type { CertStore } from '../../src/store/store.js';

const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'local' });

/** `count` stored local-CA certificates, valid 90 days, as a daemon restarting over its store finds them. */
async function storeWithLocalCertificates(count: number): Promise<{ store: MemoryStore; names: string[] }> {
  const store = new MemoryStore();
  const root = await ensureLocalRoot(store, systemClock);
  const keyPem = await generatePrivateKey({ keyType: 'ecdsa' });
  const names = Array.from({ length: count }, (_, i) => `app${i}.localhost`);
  for (const name of names) {
    const bundle = await issueLocalCertificate(root, [name], keyPem, systemClock, 90);
    await store.putVersion(name, bundle, {
      name, domains: [name], server: LOCAL_ISSUER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString(),
    });
  }
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
});
