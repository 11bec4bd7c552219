/**
 * The certificate manager when another replica writes the shared store while
 * this one plans and runs jobs for the same names. Both cases were found by
 * bench/fleet (three replicas, one Redis): a queued job ordered a second
 * certificate for a name another replica had just stored, and a replica
 * whose job found the lock busy missed the other replica's write for up to a
 * minute. Local CA and a memory store, so no CA is involved; the issuer is
 * wrapped to count and hold issuances.
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
import type { LineageState, LockOptions, Unlock } from '../../src/store/store.js';

const FIRST = 'a.localhost';
const OTHER = 'b.localhost';

/** A memory store with hooks: slow state reads of one name, and a step run before this process takes a lock. */
class HookedStore extends MemoryStore {
  slowState: string | undefined;
  beforeLock: ((name: string) => Promise<void>) | undefined;
  override async readState(name: string): Promise<LineageState | null> {
    if (name === this.slowState) await new Promise((r) => setTimeout(r, 300));
    return super.readState(name);
  }
  override async lock(name: string, options?: LockOptions): Promise<Unlock> {
    const hook = this.beforeLock;
    this.beforeLock = undefined;
    await hook?.(name);
    return super.lock(name, options);
  }
}

const until = async (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'local' });

/** One replica's manager over `store` (one order at a time, no periodic re-read during a test), and another replica's writer. */
async function setup(hosts: string[]) {
  const store = new HookedStore();
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
      if (request.spec.name === FIRST) await gate;
      return real.issue(request);
    };
    return wrapped;
  };
  const engine = new CertificateEngine({ store, clock: systemClock, logger: silentLogger, events: new EngineEventBus(), issuerFor, solversFor: () => [] });
  const snapshots: CertificateSnapshot[] = [];
  const manager = new CertificateManager({
    engine, clock: systemClock, logger: silentLogger, server: 'https://127.0.0.1:1/dir', account: { agreeTos: true },
    challenge: { type: 'standalone', port: 80 }, concurrency: 1, renewCron: '0 0 1 1 *', refreshMs: 3_600_000,
    onSnapshot: (s) => void snapshots.push(s),
  });
  manager.setSites(hosts.map(site));
  /** What another replica does: store a certificate for `name` (holding its lock when given). */
  const storeElsewhere = async (name: string, lock?: Unlock): Promise<void> => {
    const bundle = await issueLocalCertificate(root, [name], await generatePrivateKey({ keyType: 'ecdsa' }), systemClock, 90);
    await store.putVersion(name, bundle, {
      name, domains: [name], server: LOCAL_ISSUER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString(),
    }, lock ? { lock } : {});
  };
  const serves = (name: string): boolean => snapshots.at(-1)?.has(name) ?? false;
  const close = async (): Promise<void> => {
    release();
    await manager.stop();
    issuers.close();
  };
  return { store, manager, issued, release, storeElsewhere, serves, close };
}

describe('certificate manager sharing its store with another replica', () => {
  it('orders nothing for a queued name that another replica stored after the plan was made', async () => {
    const t = await setup([FIRST, OTHER]);
    await t.manager.load();
    t.manager.start();
    try {
      // One order at a time: FIRST runs (held), OTHER waits in the queue.
      await until(`the order for ${FIRST}`, () => t.issued.includes(FIRST));
      t.store.slowState = OTHER;
      await t.storeElsewhere(OTHER);
      await until(`${OTHER} served from the store`, () => t.serves(OTHER));
      // The first job ends while the planning pass that would drop OTHER from the queue is still reading state.
      t.release();
      await t.manager.idle();
    } finally {
      await t.close();
    }
    assert.deepEqual(t.issued, [FIRST], 'no order for the name the other replica stored');
    assert.equal((await t.store.readLineage(OTHER))?.version, 1, 'the other replica\'s certificate is still the current one');
  });

  it('serves, as soon as its job ends, the certificate another replica stored while that job found the lock busy', async () => {
    const t = await setup([OTHER]);
    // The other replica holds the lock, and stores its certificate just as this replica's job asks for the lock.
    const otherLock = await t.store.lock(OTHER);
    let heard = false;
    const unwatch = t.store.watch((name) => void (heard ||= name === OTHER));
    t.store.beforeLock = async () => {
      await t.storeElsewhere(OTHER, otherLock);
      await until('the store notification', () => heard);
    };
    await t.manager.load();
    t.manager.start();
    try {
      // Without a look after the job, the name waits for the 30 s hold or the periodic re-read (an hour here).
      await until(`${OTHER} served`, () => t.serves(OTHER), 3_000);
    } finally {
      unwatch();
      await otherLock();
      await t.close();
    }
    assert.deepEqual(t.issued, [], 'this replica ordered nothing');
  });
});
