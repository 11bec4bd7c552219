/**
 * The CertStore contract (src/store/store.ts), as one suite every store
 * implementation runs: `runStoreContract('fs', makeFsStore)`.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PadlockError } from '../../src/errors.js';
import type { AccountRecord, CertBundle, CertStore, LineageMeta, Unlock } from '../../src/store/store.js';

export interface StoreUnderTest {
  store: CertStore;
  cleanup(): Promise<void>;
  /**
   * Makes the lock that some taking holds on `name` lost to it the way that
   * happens in production (fs: its heartbeat looks stopped and another taker
   * reclaims it as stale; Redis: its key expires), without calling its
   * Unlock. Absent for stores where a held lock cannot be lost (memory).
   */
  loseLock?(name: string): Promise<void>;
}

/** A bundle whose four parts are distinguishable and tied to `tag`, so a mix of versions is visible. */
export function fakeBundle(tag: string): CertBundle {
  const cert = `-----BEGIN CERTIFICATE-----\nleaf ${tag}\n-----END CERTIFICATE-----\n`;
  const chain = `-----BEGIN CERTIFICATE-----\nintermediate for ${tag}\n-----END CERTIFICATE-----\n`;
  return {
    cert,
    chain,
    fullchain: cert + chain,
    privkey: `-----BEGIN PRIVATE KEY-----\nkey ${tag}\n-----END PRIVATE KEY-----\n`,
  };
}

export function fakeMeta(name: string, domains: string[] = [name], updatedAt = '2026-01-01T00:00:00.000Z'): LineageMeta {
  return {
    name,
    domains,
    server: 'https://acme.test/directory',
    keyType: 'ecdsa',
    ellipticCurve: 'P-256',
    challenge: { type: 'standalone', port: 80 },
    email: 'ops@example.test',
    updatedAt,
  };
}

function fakeAccount(directoryUrl: string, tag: string): AccountRecord {
  return {
    directoryUrl,
    accountUrl: `${directoryUrl}/acct/${tag}`,
    keyPem: `-----BEGIN PRIVATE KEY-----\naccount ${tag}\n-----END PRIVATE KEY-----\n`,
    email: `${tag}@example.test`,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

/** Resolves once `ready()` holds, polling; rejects with `what` after `timeoutMs`. */
export async function waitUntil(ready: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Subscribes a listener to `store.watch` that records every name it is called with. */
export function recordChanges(store: CertStore): { names: string[]; unsubscribe: () => void } {
  const names: string[] = [];
  const unsubscribe = store.watch((name) => {
    names.push(name);
  });
  return { names, unsubscribe };
}

function isCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PadlockError, `expected a PadlockError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/**
 * Registers the suite. `withLoseLock`: the store can lose a held lock
 * (StoreUnderTest.loseLock is set), so the fenced-write test for that case runs.
 */
export function runStoreContract(label: string, make: () => Promise<StoreUnderTest>, { withLoseLock = false }: { withLoseLock?: boolean } = {}): void {
  describe(`CertStore contract: ${label}`, () => {
    let sut: StoreUnderTest;
    let store: CertStore;
    beforeEach(async () => {
      sut = await make();
      store = sut.store;
    });
    afterEach(async () => {
      await sut.cleanup();
    });

    describe('missing items', () => {
      it('resolves null for a lineage, meta, state and account that were never written', async () => {
        assert.equal(await store.readLineage('never.example.test'), null);
        assert.equal(await store.readMeta('never.example.test'), null);
        assert.equal(await store.readState('never.example.test'), null);
        assert.equal(await store.readAccount('https://never.test/directory'), null);
      });

      it('lists no lineages in an empty store', async () => {
        assert.deepEqual(await store.listLineages(), []);
      });

      it('has a location to name in messages', () => {
        assert.equal(typeof store.location, 'string');
        assert.ok(store.location.length > 0);
      });
    });

    describe('versions', () => {
      it('reads back exactly the bundle and meta that putVersion stored, as version 1', async () => {
        const v = await store.putVersion('a.example.test', fakeBundle('a1'), fakeMeta('a.example.test'));
        assert.equal(v, 1);
        const l = await store.readLineage('a.example.test');
        assert.ok(l);
        assert.equal(l.version, 1);
        assert.deepEqual(l.bundle, fakeBundle('a1'));
        assert.deepEqual(l.meta, fakeMeta('a.example.test'));
        assert.deepEqual(await store.readMeta('a.example.test'), fakeMeta('a.example.test'));
      });

      it('increments the version on each putVersion and makes the newest current with its own meta', async () => {
        const name = 'b.example.test';
        assert.equal(await store.putVersion(name, fakeBundle('b1'), fakeMeta(name, [name])), 1);
        assert.equal(await store.putVersion(name, fakeBundle('b2'), fakeMeta(name, [name, 'www.b.example.test'])), 2);
        assert.equal(await store.putVersion(name, fakeBundle('b3'), fakeMeta(name, ['www.b.example.test'])), 3);
        const l = await store.readLineage(name);
        assert.ok(l);
        assert.equal(l.version, 3);
        assert.deepEqual(l.bundle, fakeBundle('b3'));
        assert.deepEqual(l.meta.domains, ['www.b.example.test']);
      });

      it('keeps lineages apart', async () => {
        await store.putVersion('one.example.test', fakeBundle('one'), fakeMeta('one.example.test'));
        await store.putVersion('two.example.test', fakeBundle('two'), fakeMeta('two.example.test'));
        assert.deepEqual((await store.readLineage('one.example.test'))?.bundle, fakeBundle('one'));
        assert.deepEqual((await store.readLineage('two.example.test'))?.bundle, fakeBundle('two'));
        assert.equal(await store.readLineage('three.example.test'), null);
      });

      it('lists lineages sorted by name', async () => {
        for (const n of ['c.example.test', 'a.example.test', 'b.example.test']) await store.putVersion(n, fakeBundle(n), fakeMeta(n));
        assert.deepEqual(await store.listLineages(), ['a.example.test', 'b.example.test', 'c.example.test']);
      });
    });

    describe('serving read', () => {
      it('readServing resolves null for a lineage never written, one with only meta, and one deleted', async () => {
        assert.equal(await store.readServing('never.example.test'), null);
        await store.writeMeta('meta-only.example.test', fakeMeta('meta-only.example.test'));
        assert.equal(await store.readServing('meta-only.example.test'), null);
        await store.putVersion('gone.example.test', fakeBundle('g1'), fakeMeta('gone.example.test'));
        await store.deleteLineage('gone.example.test');
        assert.equal(await store.readServing('gone.example.test'), null);
      });

      it('readServing gives the current version with its fullchain, private key and meta, as readLineage does, and not cert or chain', async () => {
        const name = 'serve.example.test';
        await store.putVersion(name, fakeBundle('s1'), fakeMeta(name));
        await store.putVersion(name, fakeBundle('s2'), fakeMeta(name, [name, 'www.serve.example.test']));
        const later = { ...fakeMeta(name, [name, 'www.serve.example.test'], '2026-03-03T00:00:00.000Z'), deployHook: 'true' };
        await store.writeMeta(name, later);
        const served = await store.readServing(name);
        const full = await store.readLineage(name);
        assert.ok(served && full);
        assert.equal(served.version, 2);
        assert.deepEqual(served.bundle, { fullchain: fakeBundle('s2').fullchain, privkey: fakeBundle('s2').privkey });
        assert.deepEqual(served.meta, later, 'the meta as last written, like readLineage');
        assert.deepEqual({ version: served.version, meta: served.meta }, { version: full.version, meta: full.meta });
        assert.deepEqual(Object.keys(served.bundle).sort(), ['fullchain', 'privkey']);
      });

      it('readServing never mixes two versions while putVersion switches between them', async () => {
        const name = 'switching.example.test';
        await store.putVersion(name, fakeBundle('x0'), fakeMeta(name));
        const reads: Promise<unknown>[] = [];
        for (let i = 1; i <= 5; i++) {
          const write = store.putVersion(name, fakeBundle(`x${i}`), fakeMeta(name));
          for (let r = 0; r < 10; r++) reads.push(store.readServing(name));
          await write;
        }
        for (const read of await Promise.all(reads)) {
          const served = read as { version: number; bundle: { fullchain: string; privkey: string } };
          const tag = `x${served.version - 1}`;
          assert.deepEqual(served.bundle, { fullchain: fakeBundle(tag).fullchain, privkey: fakeBundle(tag).privkey }, `version ${served.version} reads as ${tag}`);
        }
      });
    });

    describe('meta, state and accounts', () => {
      it('replaces meta whole on writeMeta, without changing the certificate', async () => {
        const name = 'm.example.test';
        await store.putVersion(name, fakeBundle('m1'), { ...fakeMeta(name), deployHook: 'systemctl reload nginx' });
        const next = fakeMeta(name, [name], '2026-02-02T00:00:00.000Z');
        await store.writeMeta(name, next);
        assert.deepEqual(await store.readMeta(name), next, 'deployHook must be gone: the write replaced the whole meta');
        const l = await store.readLineage(name);
        assert.deepEqual(l?.meta, next);
        assert.deepEqual(l?.bundle, fakeBundle('m1'));
        assert.equal(l?.version, 1);
      });

      it('keeps meta written before the first version', async () => {
        await store.writeMeta('early.example.test', fakeMeta('early.example.test'));
        assert.deepEqual(await store.readMeta('early.example.test'), fakeMeta('early.example.test'));
        assert.equal(await store.readLineage('early.example.test'), null);
      });

      it('round-trips state and replaces it whole, also before any version exists', async () => {
        const name = 's.example.test';
        await store.writeState(name, { failures: 2, nextAttempt: '2026-01-02T00:00:00.000Z', ari: { start: 'x' } });
        assert.deepEqual(await store.readState(name), { failures: 2, nextAttempt: '2026-01-02T00:00:00.000Z', ari: { start: 'x' } });
        await store.writeState(name, { failures: 0 });
        assert.deepEqual(await store.readState(name), { failures: 0 });
      });

      it('updateState loses no update when many read-modify-writes of one state race', async () => {
        const name = 'u.example.test';
        await store.writeState(name, { kept: 'yes' });
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          store.updateState(name, (state) => ({ ...state, [`k${i}`]: i, count: Number(state?.['count'] ?? 0) + 1 }))));
        const final = await store.readState(name);
        assert.equal(final?.['count'], 20, 'every update saw the one before it');
        for (let i = 0; i < 20; i++) assert.equal(final?.[`k${i}`], i);
        assert.equal(final?.['kept'], 'yes');
        assert.deepEqual(results.map((r) => r['count']).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 20 }, (_, i) => i + 1));
      });

      it('updateState starts from null, and works while the caller holds lock(name)', async () => {
        const name = 'held.example.test';
        const unlock = await store.lock(name);
        try {
          let seen: unknown = 'not called';
          const written = await store.updateState(name, (state) => {
            seen = state;
            return { failure: null };
          });
          assert.equal(seen, null);
          assert.deepEqual(written, { failure: null });
          assert.deepEqual(await store.readState(name), { failure: null });
        } finally {
          await unlock();
        }
      });

      it('updateState writes nothing when the change throws, and rejects with its error', async () => {
        const name = 'throws.example.test';
        await store.writeState(name, { before: true });
        await assert.rejects(store.updateState(name, () => {
          throw new Error('no change');
        }), /no change/);
        assert.deepEqual(await store.readState(name), { before: true });
        assert.deepEqual(await store.updateState(name, (state) => ({ ...state, after: true })), { before: true, after: true }, 'the name is not left locked');
      });

      it('round-trips accounts per directory URL and replaces them whole', async () => {
        const le = 'https://acme-v02.api.letsencrypt.org/directory';
        const staging = 'https://acme-staging-v02.api.letsencrypt.org/directory';
        await store.writeAccount(fakeAccount(le, 'prod'));
        await store.writeAccount(fakeAccount(staging, 'staging'));
        assert.deepEqual(await store.readAccount(le), fakeAccount(le, 'prod'));
        assert.deepEqual(await store.readAccount(staging), fakeAccount(staging, 'staging'));
        const { accountUrl: _dropped, ...withoutUrl } = fakeAccount(le, 'again');
        await store.writeAccount(withoutUrl);
        assert.deepEqual(await store.readAccount(le), withoutUrl);
      });

      it('lists every account (keys readable) and every state, a lineage\'s and one without a lineage, for a copy', async () => {
        const le = 'https://acme-v02.api.letsencrypt.org/directory';
        const other = 'https://ca.example/dir';
        assert.deepEqual(await store.listAccounts(), []);
        assert.deepEqual(await store.listStates(), []);
        await store.writeAccount(fakeAccount(other, 'b'));
        await store.writeAccount(fakeAccount(le, 'a'));
        assert.deepEqual(await store.listAccounts(), [fakeAccount(other, 'b'), fakeAccount(le, 'a')].sort((x, y) => x.directoryUrl.localeCompare(y.directoryUrl)));
        await store.writeState('padlock-governor', { ledgers: {} });
        await store.updateState('s.example.test', () => ({ failure: null }));
        assert.deepEqual(await store.listStates(), ['padlock-governor', 's.example.test']);
        await store.putVersion('s.example.test', fakeBundle('s'), fakeMeta('s.example.test'));
        await store.deleteLineage('s.example.test');
        assert.deepEqual(await store.listStates(), ['padlock-governor'], 'a deleted lineage takes its state with it');
      });
    });

    describe('deleteLineage', () => {
      it('removes the lineage, every version, its meta and its state', async () => {
        const name = 'd.example.test';
        await store.putVersion(name, fakeBundle('d1'), fakeMeta(name));
        await store.putVersion(name, fakeBundle('d2'), fakeMeta(name));
        await store.writeState(name, { failures: 1 });
        await store.putVersion('keep.example.test', fakeBundle('keep'), fakeMeta('keep.example.test'));
        await store.deleteLineage(name);
        assert.equal(await store.readLineage(name), null);
        assert.equal(await store.readMeta(name), null);
        assert.equal(await store.readState(name), null);
        assert.deepEqual(await store.listLineages(), ['keep.example.test']);
        assert.deepEqual((await store.readLineage('keep.example.test'))?.bundle, fakeBundle('keep'));
      });

      it('is not an error for a missing lineage, or when repeated', async () => {
        await store.deleteLineage('ghost.example.test');
        await store.putVersion('twice.example.test', fakeBundle('t'), fakeMeta('twice.example.test'));
        await store.deleteLineage('twice.example.test');
        await store.deleteLineage('twice.example.test');
        assert.equal(await store.readLineage('twice.example.test'), null);
      });

      it('starts a deleted name over cleanly', async () => {
        const name = 'again.example.test';
        await store.putVersion(name, fakeBundle('old'), fakeMeta(name));
        await store.deleteLineage(name);
        const v = await store.putVersion(name, fakeBundle('new'), fakeMeta(name));
        const l = await store.readLineage(name);
        assert.equal(l?.version, v);
        assert.deepEqual(l?.bundle, fakeBundle('new'));
      });
    });

    describe('copies', () => {
      it('returns copies: mutating what a read returned does not change the store', async () => {
        const name = 'copy.example.test';
        await store.putVersion(name, fakeBundle('c1'), fakeMeta(name));
        await store.writeState(name, { nested: { n: 1 } });
        await store.writeAccount(fakeAccount('https://copy.test/dir', 'c'));
        const l = await store.readLineage(name);
        assert.ok(l);
        l.bundle.privkey = 'tampered';
        l.meta.domains.push('evil.test');
        const meta = await store.readMeta(name);
        meta?.domains.push('evil.test');
        const state = await store.readState(name);
        (state?.nested as { n: number }).n = 99;
        const acct = await store.readAccount('https://copy.test/dir');
        if (acct) acct.keyPem = 'tampered';
        const again = await store.readLineage(name);
        assert.deepEqual(again?.bundle, fakeBundle('c1'));
        assert.deepEqual(again?.meta, fakeMeta(name));
        assert.deepEqual(await store.readState(name), { nested: { n: 1 } });
        assert.deepEqual(await store.readAccount('https://copy.test/dir'), fakeAccount('https://copy.test/dir', 'c'));
      });

      it('stores copies: mutating what was written afterwards does not change the store', async () => {
        const name = 'copyin.example.test';
        const bundle = fakeBundle('in');
        const meta = fakeMeta(name);
        const state = { list: [1, 2] };
        await store.putVersion(name, bundle, meta);
        await store.writeState(name, state);
        bundle.cert = 'tampered';
        meta.domains.push('evil.test');
        state.list.push(3);
        assert.deepEqual((await store.readLineage(name))?.bundle, fakeBundle('in'));
        assert.deepEqual(await store.readMeta(name), fakeMeta(name));
        assert.deepEqual(await store.readState(name), { list: [1, 2] });
      });
    });

    describe('names', () => {
      const badNames = ['../etc', '../x', 'a/b', '', '..', 'UPPER', 'UPPER.example.test', '.hidden', 'a..b', 'a'.repeat(300)];
      for (const bad of badNames) {
        const shown = bad.length > 40 ? `of ${bad.length} characters` : JSON.stringify(bad);
        it(`rejects the name ${shown} with NAME_INVALID on every name-taking method`, async () => {
          let changeCalled = false;
          await assert.rejects(store.readLineage(bad), isCode('NAME_INVALID'));
          await assert.rejects(store.readServing(bad), isCode('NAME_INVALID'));
          await assert.rejects(store.putVersion(bad, fakeBundle('x'), fakeMeta('x')), isCode('NAME_INVALID'));
          await assert.rejects(store.deleteLineage(bad), isCode('NAME_INVALID'));
          await assert.rejects(store.readMeta(bad), isCode('NAME_INVALID'));
          await assert.rejects(store.writeMeta(bad, fakeMeta('x')), isCode('NAME_INVALID'));
          await assert.rejects(store.readState(bad), isCode('NAME_INVALID'));
          await assert.rejects(store.writeState(bad, {}), isCode('NAME_INVALID'));
          await assert.rejects(store.updateState(bad, () => {
            changeCalled = true;
            return {};
          }), isCode('NAME_INVALID'));
          await assert.rejects(store.lock(bad), isCode('NAME_INVALID'));
          assert.equal(changeCalled, false, 'updateState must not run the change for a rejected name');
        });
      }

      it('stores nothing under a rejected name', async () => {
        await assert.rejects(store.putVersion('../escape', fakeBundle('x'), fakeMeta('x')));
        assert.deepEqual(await store.listLineages(), []);
      });
    });

    describe('change notification', () => {
      it('currentVersions is empty for an empty store, follows putVersion and leaves out deleted and version-less lineages', async () => {
        assert.deepEqual([...(await store.currentVersions())], []);
        await store.putVersion('b.example.test', fakeBundle('b1'), fakeMeta('b.example.test'));
        await store.putVersion('a.example.test', fakeBundle('a1'), fakeMeta('a.example.test'));
        await store.putVersion('a.example.test', fakeBundle('a2'), fakeMeta('a.example.test'));
        await store.writeMeta('meta-only.example.test', fakeMeta('meta-only.example.test'));
        await store.writeState('state-only.example.test', { failures: 1 });
        assert.deepEqual([...(await store.currentVersions())], [['a.example.test', 2], ['b.example.test', 1]]);
        await store.deleteLineage('a.example.test');
        assert.deepEqual([...(await store.currentVersions())], [['b.example.test', 1]]);
      });

      it('watch calls the listener with the name after putVersion, once or twice, and the listener reads the new version', async () => {
        const name = 'watched.example.test';
        const calls: string[] = [];
        const reads: Promise<number | undefined>[] = [];
        const unsubscribe = store.watch((changed) => {
          calls.push(changed);
          reads.push(store.readLineage(changed).then((l) => l?.version));
        });
        try {
          await store.putVersion(name, fakeBundle('w1'), fakeMeta(name));
          await waitUntil(() => calls.length > 0, 'a call after putVersion');
          await sleep(300);
          assert.ok(calls.length <= 2, `one putVersion gave ${calls.length} calls: ${calls.join(', ')}`);
          assert.deepEqual(new Set(calls), new Set([name]), 'only the lineage name, never README or temp names');
          assert.deepEqual(await Promise.all(reads), reads.map(() => 1));

          const before = calls.length;
          await store.putVersion(name, fakeBundle('w2'), fakeMeta(name));
          await waitUntil(() => calls.length > before, 'a call after the second putVersion');
          assert.equal(await reads.at(-1), 2, 'a listener called after the second putVersion reads version 2');
        } finally {
          unsubscribe();
        }
      });

      it('watch calls the listener with the name after deleteLineage, and the listener reads nothing', async () => {
        const name = 'deleted.example.test';
        await store.putVersion(name, fakeBundle('d1'), fakeMeta(name));
        await store.putVersion('other.example.test', fakeBundle('o1'), fakeMeta('other.example.test'));
        const calls: string[] = [];
        const reads: Promise<unknown>[] = [];
        const unsubscribe = store.watch((changed) => {
          calls.push(changed);
          reads.push(store.readLineage(changed));
        });
        try {
          await store.deleteLineage(name);
          await waitUntil(() => calls.includes(name), 'a call after deleteLineage');
          assert.deepEqual(new Set(calls), new Set([name]));
          assert.deepEqual(await Promise.all(reads), reads.map(() => null));
        } finally {
          unsubscribe();
        }
      });

      it('stops calling a listener once its unsubscribe returned, even for a change already reported, and keeps calling the others', async () => {
        const gone = recordChanges(store);
        const kept = recordChanges(store);
        try {
          await store.putVersion('u.example.test', fakeBundle('u1'), fakeMeta('u.example.test'));
          gone.unsubscribe();
          gone.unsubscribe();
          await waitUntil(() => kept.names.includes('u.example.test'), 'the remaining listener is called');
          await store.putVersion('u.example.test', fakeBundle('u2'), fakeMeta('u.example.test'));
          await sleep(300);
          assert.deepEqual(gone.names, []);
        } finally {
          kept.unsubscribe();
        }
      });

      it('does not call a listener that another listener unsubscribed during the same round of calls', async () => {
        const calls: string[] = [];
        let unsubscribeSecond: () => void = () => undefined;
        const unsubscribeFirst = store.watch(() => {
          calls.push('first');
          unsubscribeSecond();
        });
        unsubscribeSecond = store.watch(() => calls.push('second'));
        try {
          await store.putVersion('r.example.test', fakeBundle('r1'), fakeMeta('r.example.test'));
          await waitUntil(() => calls.length > 0, 'the first listener is called');
          await sleep(300);
          assert.deepEqual(new Set(calls), new Set(['first']));
        } finally {
          unsubscribeFirst();
        }
      });

      it('watches again when a listener subscribes after every listener was gone', async () => {
        recordChanges(store).unsubscribe();
        const again = recordChanges(store);
        try {
          await store.putVersion('re.example.test', fakeBundle('r1'), fakeMeta('re.example.test'));
          await waitUntil(() => again.names.includes('re.example.test'), 'a call to the new subscription');
        } finally {
          again.unsubscribe();
        }
      });

      it('keeps a listener that throws or rejects subscribed, and neither the store nor other listeners notice', async () => {
        const name = 'throwing.example.test';
        let thrown = 0;
        let rejected = 0;
        const unsubscribeThrower = store.watch(() => {
          thrown += 1;
          throw new Error('listener bug');
        });
        const unsubscribeRejecter = store.watch(async () => {
          rejected += 1;
          throw new Error('async listener bug');
        });
        const good = recordChanges(store);
        try {
          await store.putVersion(name, fakeBundle('t1'), fakeMeta(name));
          await waitUntil(() => good.names.length > 0 && thrown > 0 && rejected > 0, 'every listener called once');
          const before = good.names.length;
          const thrownBefore = thrown;
          await store.putVersion(name, fakeBundle('t2'), fakeMeta(name));
          await waitUntil(() => good.names.length > before && thrown > thrownBefore, 'every listener called again');
          assert.equal((await store.readLineage(name))?.version, 2);
          assert.deepEqual([...(await store.currentVersions())], [[name, 2]]);
        } finally {
          unsubscribeThrower();
          unsubscribeRejecter();
          good.unsubscribe();
        }
      });
    });

    describe('fenced writes', () => {
      const name = 'fenced.example.test';

      /** putVersion with `lock` must reject STORE_LOCK_LOST and leave version 1 of `name` as it was. */
      async function assertLostAndUnchanged(lock: Unlock): Promise<void> {
        const before = await store.currentVersions();
        await assert.rejects(store.putVersion(name, fakeBundle('late'), fakeMeta(name, ['late.test']), { lock }), (err: unknown) => {
          isCode('STORE_LOCK_LOST')(err);
          const message = (err as Error).message;
          assert.ok(message.includes(name), message);
          assert.match(message, /another process may hold it now/);
          assert.match(message, /nothing was written/);
          return true;
        });
        const l = await store.readLineage(name);
        assert.equal(l?.version, 1);
        assert.deepEqual(l?.bundle, fakeBundle('f1'));
        assert.deepEqual(l?.meta, fakeMeta(name));
        assert.deepEqual(await store.readMeta(name), fakeMeta(name));
        assert.deepEqual([...(await store.currentVersions())], [...before]);
      }

      it('stores a version written with the lock its writer still holds', async () => {
        const unlock = await store.lock(name);
        try {
          assert.equal(typeof unlock.fence, 'string');
          assert.equal(await store.putVersion(name, fakeBundle('f1'), fakeMeta(name), { lock: unlock }), 1);
          assert.equal(await store.putVersion(name, fakeBundle('f2'), fakeMeta(name), { lock: unlock }), 2);
          assert.deepEqual((await store.readLineage(name))?.bundle, fakeBundle('f2'));
        } finally {
          await unlock();
        }
      });

      it('gives every taking of a lock its own fence', async () => {
        const first = await store.lock(name);
        await first();
        const second = await store.lock(name);
        await second();
        assert.notEqual(first.fence, second.fence);
      });

      it('rejects STORE_LOCK_LOST and changes nothing when the lock was released and another taker holds it now', async () => {
        await store.putVersion(name, fakeBundle('f1'), fakeMeta(name));
        const old = await store.lock(name);
        await old();
        const other = await store.lock(name);
        try {
          await assertLostAndUnchanged(old);
          assert.equal(await store.putVersion(name, fakeBundle('f2'), fakeMeta(name), { lock: other }), 2, "the new holder's fenced write goes through");
        } finally {
          await other();
        }
      });

      it('rejects STORE_LOCK_LOST for a released lock that nobody took since', async () => {
        await store.putVersion(name, fakeBundle('f1'), fakeMeta(name));
        const old = await store.lock(name);
        await old();
        await assertLostAndUnchanged(old);
      });

      it("rejects STORE_LOCK_LOST for another name's lock, and for an Unlock without a fence", async () => {
        await store.putVersion(name, fakeBundle('f1'), fakeMeta(name));
        const mine = await store.lock(name);
        const elsewhere = await store.lock('elsewhere.example.test');
        try {
          await assertLostAndUnchanged(elsewhere);
          const wrapper: Unlock = async () => mine();
          await assertLostAndUnchanged(wrapper);
        } finally {
          await elsewhere();
          await mine();
        }
      });

      // Memory locks cannot be lost while held, so that store has no loseLock.
      if (withLoseLock) it('rejects STORE_LOCK_LOST and changes nothing when the lock was lost while its taker still held it (stale or expired)', async () => {
        assert.ok(sut.loseLock, `${label}: runStoreContract was told the store can lose a held lock, but StoreUnderTest has no loseLock`);
        await store.putVersion(name, fakeBundle('f1'), fakeMeta(name));
        const held = await store.lock(name);
        try {
          await sut.loseLock(name);
          await assertLostAndUnchanged(held);
        } finally {
          await held();
        }
      });
    });

    describe('health and close', () => {
      it('reports itself reachable, synchronously, with no error, since a time not in the future', () => {
        const h = store.health();
        assert.equal(h.reachable, true);
        assert.equal(h.error, undefined);
        assert.ok(h.since instanceof Date);
        assert.ok(h.since.getTime() <= Date.now());
      });

      it('closes, and closing twice is harmless', async () => {
        await store.close();
        await store.close();
      });
    });

    describe('locks', () => {
      it('fails at once with STORE_LOCKED when the name is held and waitMs is 0', async () => {
        const unlock = await store.lock('l.example.test');
        try {
          await assert.rejects(store.lock('l.example.test'), isCode('STORE_LOCKED'));
          await assert.rejects(store.lock('l.example.test', { waitMs: 0 }), isCode('STORE_LOCKED'));
        } finally {
          await unlock();
        }
      });

      it('locks names independently', async () => {
        const a = await store.lock('a.example.test');
        const b = await store.lock('b.example.test');
        await a();
        await b();
      });

      it('gives the lock to a waiter once the holder releases it', async () => {
        const unlock = await store.lock('w.example.test');
        const waiting = store.lock('w.example.test', { waitMs: 5_000 });
        let got = false;
        void waiting.then(() => (got = true), () => undefined);
        await new Promise((r) => setTimeout(r, 150));
        assert.equal(got, false, 'the waiter must not get a held lock');
        await unlock();
        const unlock2 = await waiting;
        await unlock2();
      });

      it('rejects with STORE_LOCKED after waitMs when the holder keeps the lock', async () => {
        const unlock = await store.lock('slow.example.test');
        try {
          const started = Date.now();
          await assert.rejects(store.lock('slow.example.test', { waitMs: 200 }), isCode('STORE_LOCKED'));
          const took = Date.now() - started;
          assert.ok(took >= 180, `gave up after ${took} ms, before waitMs`);
          assert.ok(took < 2_000, `gave up after ${took} ms, long after waitMs`);
        } finally {
          await unlock();
        }
      });

      it('can be taken again after release, and a double unlock is harmless', async () => {
        const unlock = await store.lock('again.example.test');
        await unlock();
        await unlock();
        const second = await store.lock('again.example.test');
        // The first holder's stray unlock must not release the second holder's lock.
        await unlock();
        await assert.rejects(store.lock('again.example.test'), isCode('STORE_LOCKED'));
        await second();
      });

      it('rejects a waiting lock promptly with the abort reason when the signal aborts', async () => {
        const unlock = await store.lock('abort.example.test');
        try {
          const ac = new AbortController();
          const reason = new Error('shutting down');
          const started = Date.now();
          const waiting = store.lock('abort.example.test', { waitMs: 30_000, signal: ac.signal });
          setTimeout(() => ac.abort(reason), 50);
          await assert.rejects(waiting, (err) => err === reason);
          assert.ok(Date.now() - started < 1_000, 'abort must not wait for waitMs');
        } finally {
          await unlock();
        }
      });

      it('rejects at once when the signal is already aborted', async () => {
        const reason = new Error('already gone');
        await assert.rejects(store.lock('pre.example.test', { signal: AbortSignal.abort(reason) }), (err) => err === reason);
        // and it did not take the lock
        const unlock = await store.lock('pre.example.test');
        await unlock();
      });
    });
  });
}
