/**
 * The leaf facts recorded in a lineage's meta (tls/leaf-facts.ts): used
 * instead of parsing only for the exact fullchain they were recorded for.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { leafFacts, recordedLeaf, servedLeaf } from '../../src/tls/leaf-facts.js';
import { ensureLocalRoot, issueLocalCertificate } from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { systemClock } from '../../src/clock.js';
import type { LeafFacts } from '../../src/store/store.js';

describe('leaf facts in the lineage meta', () => {
  let fullchain: string;
  let other: string;
  let parsed: { notBefore: Date; notAfter: Date; serialNumber: string };
  before(async () => {
    const root = await ensureLocalRoot(new MemoryStore(), systemClock);
    const key = await generatePrivateKey({ keyType: 'ecdsa' });
    fullchain = (await issueLocalCertificate(root, ['a.localhost'], key, systemClock, 30)).fullchain;
    other = (await issueLocalCertificate(root, ['b.localhost'], key, systemClock, 30)).fullchain;
    const x = new X509Certificate(fullchain);
    parsed = { notBefore: x.validFromDate, notAfter: x.validToDate, serialNumber: x.serialNumber.toUpperCase() };
  });

  // Facts that differ from the certificate on purpose: when they are used, nothing was parsed.
  const made = new Date('2030-01-01T00:00:00.000Z');
  const ends = new Date('2030-04-01T00:00:00.000Z');
  const cases: Array<{ desc: string; facts: () => LeafFacts | undefined; served: () => string; usesFacts: boolean }> = [
    { desc: 'facts recorded for these exact bytes are used as they are, without parsing', facts: () => leafFacts(fullchain, { notBefore: made, notAfter: ends, serialNumber: 'abc' }, 'AA:BB'), served: () => fullchain, usesFacts: true },
    { desc: 'facts recorded for another certificate are ignored and the certificate is parsed', facts: () => leafFacts(other, { notBefore: made, notAfter: ends, serialNumber: 'ABC' }), served: () => fullchain, usesFacts: false },
    { desc: 'facts for bytes that differ by one line ending are ignored', facts: () => leafFacts(`${fullchain}\n`, { notBefore: made, notAfter: ends, serialNumber: 'ABC' }), served: () => fullchain, usesFacts: false },
    { desc: 'a meta without facts (an older store) is parsed', facts: () => undefined, served: () => fullchain, usesFacts: false },
    { desc: 'facts whose dates are not dates are ignored', facts: () => ({ ...leafFacts(fullchain, { notBefore: made, notAfter: ends, serialNumber: 'ABC' }), notAfter: 'soon' }), served: () => fullchain, usesFacts: false },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const facts = c.facts();
      const meta = facts ? { leaf: facts } : {};
      const leaf = servedLeaf(meta, c.served());
      if (c.usesFacts) {
        assert.deepEqual(leaf, { notBefore: made, notAfter: ends, serialNumber: 'ABC', anchorFingerprint256: 'AA:BB' });
        assert.ok(recordedLeaf(meta, c.served()));
      } else {
        assert.deepEqual(leaf, parsed);
        assert.equal(recordedLeaf(meta, c.served()), undefined);
      }
    });
  }
});
