import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkOrder, record, emptyLedger, prune, type Ledger, type LedgerEvent } from '../../src/certificates/governor.js';

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
