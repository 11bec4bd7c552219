/**
 * The certificate manager's queue when another process writes the store: a
 * job waiting in the queue must not order a certificate that another replica
 * stored after the plan that queued it was made. Found by bench/fleet (three
 * replicas, 30 names: 3 to 4 names got a second certificate each round).
 * Local CA and a memory store, so no CA is involved; the issuer is wrapped to
 * count and hold issuances.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CertificateManager, type CertificateSnapshot } from '../../src/certificates/manager.js';
import { CertificateEngine } from '../../src/certificates/engine.js';
import { IssuerSet } from '../../src/certificates/issuers.js';
import { AriSources } from '../../src/certificates/ari-poller.js';
import type { Issuer } from '../../src/certificates/issuer.js';
import { EngineEventBus } from '../../src/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { ensureLocalRoot, issueLocalCertificate, LOCAL_ISSUER } from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import type { LineageState } from '../../src/store/store.js';

const FIRST = 'a.localhost';
const QUEUED = 'b.localhost';

/** A memory store whose state reads of one name are slow, so a planning pass is still running when a job ends. */
class SlowStateStore extends MemoryStore {
  slowName: string | undefined;
  override async readState(name: string): Promise<LineageState | null> {
    if (name === this.slowName) await new Promise((r) => setTimeout(r, 300));
    return super.readState(name);
  }
}

const until = async (what: string, check: () => boolean): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('certificate manager queue with a shared store', () => {
  it('orders nothing for a queued name that another replica stored after the plan was made', async () => {
    const store = new SlowStateStore();
    const root = await ensureLocalRoot(store, systemClock);
    const issued: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const issuers = new IssuerSet({ clock: systemClock, logger: silentLogger, ari: new AriSources(), serverCa: async () => undefined, roots: async () => ({ pem: '', count: 0, sources: [] }) });
    const issuerFor = (spec: Parameters<IssuerSet['for']>[0]): Issuer => {
      const real = issuers.for(spec);
      const wrapped: Issuer = Object.create(real) as Issuer;
      wrapped.issue = async (request) => {
        issued.push(request.spec.name);
        if (request.spec.name === FIRST) await gate; // the first job is busy while the other replica stores QUEUED
        return real.issue(request);
      };
      return wrapped;
    };
    const engine = new CertificateEngine({ store, clock: systemClock, logger: silentLogger, events: new EngineEventBus(), issuerFor, solversFor: () => [] });
    const snapshots: CertificateSnapshot[] = [];
    const manager = new CertificateManager({
      engine, clock: systemClock, logger: silentLogger, server: 'https://127.0.0.1:1/dir', account: { agreeTos: true },
      challenge: { type: 'standalone', port: 80 }, concurrency: 1, renewCron: '0 0 1 1 *',
      onSnapshot: (s) => void snapshots.push(s),
    });
    const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'local' });
    manager.setSites([site(FIRST), site(QUEUED)]);
    await manager.load();
    manager.start();
    try {
      // One order at a time: FIRST runs, QUEUED waits in the queue.
      await until(`the order for ${FIRST}`, () => issued.includes(FIRST));
      // Another replica stores QUEUED meanwhile; this manager hears of it and serves it.
      store.slowName = QUEUED;
      const bundle = await issueLocalCertificate(root, [QUEUED], await generatePrivateKey({ keyType: 'ecdsa' }), systemClock, 90);
      await store.putVersion(QUEUED, bundle, {
        name: QUEUED, domains: [QUEUED], server: LOCAL_ISSUER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString(),
      });
      await until(`${QUEUED} served from the store`, () => snapshots.some((s) => s.has(QUEUED)));
      // The first job ends while the planning pass that would drop QUEUED from the queue is still reading state.
      release();
      await manager.idle();
    } finally {
      release();
      await manager.stop();
      issuers.close();
    }
    assert.deepEqual(issued, [FIRST], 'no order for the name the other replica stored');
    assert.equal((await store.readLineage(QUEUED))?.version, 1, 'the other replica\'s certificate is still the current one');
  });
});
