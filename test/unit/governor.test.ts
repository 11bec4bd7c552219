import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkOrder, record, emptyLedger, prune, limitsFor, Governor, GOVERNOR_STATE, LETS_ENCRYPT_LIMITS, type Ledger, type LedgerEvent } from '../../src/certificates/governor.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../../src/acme/directories.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { fixedClock } from '../../src/clock.js';

const now = new Date('2026-11-26T12:00:00Z');
const MIN = 60_000;
const at = (msAgo: number) => new Date(now.getTime() - msAgo);
const ledgerOf = (events: Array<[LedgerEvent, number]>): Ledger => events.reduce((l, [e, ago]) => record(l, e, at(ago)), emptyLedger());
const times = <T>(n: number, f: (i: number) => T) => Array.from({ length: n }, (_, i) => f(i));

describe('governor', () => {
  const cases: Array<{ desc: string; events: Array<[LedgerEvent, number]>; names: string[]; limit?: string; untilAgo?: number }> = [
    { desc: 'allows the first order', events: [], names: ['a.example.com'] },
    { desc: 'allows a 5th certificate for the same names within 7 days', events: times(4, (i) => [{ kind: 'issued', names: ['a.example.com'] }, i * 60 * MIN]), names: ['a.example.com'] },
    {
      desc: 'holds a 6th certificate for the same names until the oldest of the last 5 is 7 days old',
      events: times(5, (i) => [{ kind: 'issued', names: ['b.example.com', 'a.example.com'] }, (5 - i) * 60 * MIN]),
      names: ['a.example.com', 'b.example.com'], limit: 'duplicateCertificates', untilAgo: 5 * 60 * MIN - 7 * 24 * 60 * MIN,
    },
    { desc: 'does not count certificates for a different name set as duplicates', events: times(5, () => [{ kind: 'issued', names: ['a.example.com', 'www.a.example.com'] }, MIN]), names: ['a.example.com'] },
    { desc: 'holds a name after 5 failed validations within an hour', events: times(5, (i) => [{ kind: 'failed-validation', name: 'a.example.com' }, (50 - i) * MIN]), names: ['a.example.com'], limit: 'failedValidations', untilAgo: 50 * MIN - 60 * MIN },
    { desc: 'lets failed validations older than an hour go', events: times(5, () => [{ kind: 'failed-validation', name: 'a.example.com' }, 61 * MIN]), names: ['a.example.com'] },
    { desc: 'holds every order after 300 new orders in 3 hours', events: times(300, (i) => [{ kind: 'order' }, (179 - (i % 170)) * MIN]), names: ['z.example.com'], limit: 'newOrders' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const hold = checkOrder(ledgerOf(c.events), c.names, now);
      if (!c.limit) return assert.equal(hold, undefined);
      assert.equal(hold?.limit, c.limit);
      if (c.untilAgo !== undefined) assert.equal(hold?.until.toISOString(), at(c.untilAgo).toISOString());
    });
  }

  it('forgets what no limit counts any more', () => {
    const l = ledgerOf([[{ kind: 'order' }, 4 * 60 * MIN], [{ kind: 'failed-validation', name: 'x.example.com' }, 2 * 60 * MIN], [{ kind: 'issued', names: ['x.example.com'] }, 8 * 24 * 60 * MIN]]);
    assert.deepEqual(prune(l, now), emptyLedger());
  });
});

describe("the governor applies Let's Encrypt's limits to Let's Encrypt only", () => {
  const fiveIssued = ledgerOf(times(5, (i) => [{ kind: 'issued', names: ['a.example.com'] }, (i + 1) * 60 * MIN]));
  it("knows Let's Encrypt's production and staging directories", () => {
    assert.equal(limitsFor(LETSENCRYPT_PRODUCTION), LETS_ENCRYPT_LIMITS);
    assert.equal(limitsFor(LETSENCRYPT_STAGING), LETS_ENCRYPT_LIMITS);
    assert.equal(limitsFor(`${LETSENCRYPT_PRODUCTION}/`), LETS_ENCRYPT_LIMITS);
  });
  for (const server of ['https://ca.internal/acme/directory', 'https://acme.zerossl.com/v2/DV90', 'https://127.0.0.1:14000/dir']) {
    it(`imposes no limits of its own on ${server} (it learns them from the CA's 429s)`, async () => {
      assert.equal(limitsFor(server), undefined);
      const store = new MemoryStore();
      const g = new Governor(store, server, fixedClock(now));
      for (let i = 0; i < 8; i++) await g.record({ kind: 'issued', names: ['a.example.com'] });
      assert.equal(await g.check(['a.example.com']), undefined, 'an eighth certificate for the same names is allowed');
      assert.equal(await store.readState(GOVERNOR_STATE), null, 'and nothing is kept for it');
    });
  }
  it('exempts an ARI-suggested renewal from the duplicate and new-order limits, as Let\'s Encrypt does', () => {
    assert.equal(checkOrder(fiveIssued, ['a.example.com'], now)?.limit, 'duplicateCertificates');
    assert.equal(checkOrder(fiveIssued, ['a.example.com'], now, LETS_ENCRYPT_LIMITS, { ariRenewal: true }), undefined);
    const manyOrders = ledgerOf(times(300, () => [{ kind: 'order' }, MIN]));
    assert.equal(checkOrder(manyOrders, ['z.example.com'], now, LETS_ENCRYPT_LIMITS, { ariRenewal: true }), undefined);
  });
  it('does not count an ARI renewal toward the limits', () => {
    const l = record(record(emptyLedger(), { kind: 'order', ariRenewal: true }, now), { kind: 'issued', names: ['a.example.com'], ariRenewal: true }, now);
    assert.deepEqual(l, emptyLedger());
  });
});

describe('CA-wide holds', () => {
  it("keep a CA's Retry-After for every certificate from it, the later one winning, until it passes", async () => {
    const store = new MemoryStore();
    let t = now.getTime();
    const clock = { now: () => new Date(t) };
    const g = new Governor(store, 'https://ca.example/dir', clock);
    const other = new Governor(store, 'https://other.example/dir', clock);
    assert.equal(await g.hold(), undefined);
    await g.setHold({ until: new Date(t + 600_000), reason: 'HTTP 503' });
    await g.setHold({ until: new Date(t + 60_000), reason: 'HTTP 503 again, sooner' });
    assert.equal((await g.hold())?.until.toISOString(), new Date(t + 600_000).toISOString());
    assert.equal(await other.hold(), undefined, 'another CA is not held');
    t += 601_000;
    assert.equal(await g.hold(), undefined, 'it ends on time');
  });
});
