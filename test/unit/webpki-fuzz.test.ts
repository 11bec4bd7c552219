/**
 * Fuzzing the verifier with a few thousand mutated certificates: bit flips,
 * truncation, corrupted length fields, spliced extensions (raw, and
 * re-signed so the checks behind the parser run too), and broken PEM. Every
 * input must end in a valid result or a PadlockError with a reason code,
 * never a TypeError and never a hang. The PRNG is seeded: a failure prints
 * the seed and the case number, and reproduces.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { PadlockError } from '../../src/errors.js';
import { verifyCertificate } from '../../src/tls/verify.js';
import { DerError, readTlv } from '../../src/tls/webpki/der.js';
import { REASON_CODES } from '../../src/tls/webpki/reasons.js';
import { EKU, anchorsOf, issue, makeKey, toPem, type TestCertificate } from '../support/webpki-pki.js';
import { seededRandom } from '../support/seeded.js';

const SEED = Number(process.env.PADLOCK_FUZZ_SEED ?? 0x5eed);
const MUTATIONS_PER_SEED_CERT = 400;
/** A single verification taking longer than this counts as a hang. */
const MAX_MS_PER_INPUT = 1000;

/** Offsets of every TLV header in `der` (walking into constructed values and into OCTET STRINGs that hold DER). */
function headerOffsets(der: Uint8Array): number[] {
  const out: number[] = [];
  const stack: [number, number][] = [[0, der.length]];
  while (stack.length > 0) {
    const [start, end] = stack.pop()!;
    let pos = start;
    while (pos < end) {
      let tlv;
      try {
        tlv = readTlv(der, pos, end);
      } catch (err) {
        if (err instanceof DerError) break;
        throw err;
      }
      out.push(pos);
      if ((tlv.tag & 0x20) !== 0 || tlv.tag === 0x04) stack.push([tlv.valueStart, tlv.end]);
      pos = tlv.end;
    }
  }
  return out;
}

/** Every complete TLV span in `der` (for splicing). */
function spans(der: Uint8Array): Uint8Array[] {
  return headerOffsets(der).flatMap((pos) => {
    try {
      const tlv = readTlv(der, pos, der.length);
      return [der.subarray(tlv.start, tlv.end)];
    } catch {
      return [];
    }
  });
}

type Mutation = (der: Uint8Array, rnd: () => number, donors: Uint8Array[][]) => Uint8Array;
const pick = <T,>(rnd: () => number, list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

const MUTATIONS: Record<string, Mutation> = {
  'bit flips': (der, rnd) => {
    const out = Uint8Array.from(der);
    const flips = 1 + Math.floor(rnd() * 8);
    for (let i = 0; i < flips; i++) out[Math.floor(rnd() * out.length)]! ^= 1 << Math.floor(rnd() * 8);
    return out;
  },
  truncation: (der, rnd) => der.subarray(0, Math.floor(rnd() * der.length)),
  'length fields': (der, rnd) => {
    const out = Uint8Array.from(der);
    const at = pick(rnd, headerOffsets(der)) + 1;
    out[at] = pick(rnd, [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, out[at]! + 1, out[at]! - 1]) & 0xff;
    return out;
  },
  'extension splicing (raw)': (der, rnd, donors) => {
    const mine = spans(der);
    const target = pick(rnd, mine);
    const donor = pick(rnd, pick(rnd, donors));
    const start = target.byteOffset - der.byteOffset;
    return Uint8Array.from([...der.subarray(0, start), ...donor, ...der.subarray(start + target.length)]);
  },
};

interface Tally {
  inputs: number;
  valid: number;
  reasons: Map<string, number>;
  slowestMs: number;
}

async function judge(tally: Tally, label: string, run: () => Promise<unknown>): Promise<void> {
  tally.inputs++;
  const started = performance.now();
  try {
    await run();
    tally.valid++;
  } catch (err) {
    if (!(err instanceof PadlockError)) assert.fail(`${label}: threw ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`);
    const reason = err.details['reasonCode'];
    assert.ok(typeof reason === 'string' && (REASON_CODES as string[]).includes(reason), `${label}: ${err.code} without a reason code: ${err.message}`);
    tally.reasons.set(reason, (tally.reasons.get(reason) ?? 0) + 1);
  }
  const ms = performance.now() - started;
  tally.slowestMs = Math.max(tally.slowestMs, ms);
  assert.ok(ms < MAX_MS_PER_INPUT, `${label}: took ${ms.toFixed(0)} ms`);
}

describe(`fuzzing the verifier (seed ${SEED}; PADLOCK_FUZZ_SEED to change)`, () => {
  let root: TestCertificate;
  let inter: TestCertificate;
  let seeds: TestCertificate[];
  let donors: Uint8Array[][];
  const tally: Tally = { inputs: 0, valid: 0, reasons: new Map(), slowestMs: 0 };

  before(() => {
    root = issue({ subject: 'CN=Fuzz Root, O=padlock', profile: 'ca' });
    inter = issue({
      subject: 'CN=Fuzz Intermediate, O=padlock',
      profile: 'ca',
      issuer: root,
      basicConstraints: { ca: true, pathLen: 0 },
      eku: [EKU.serverAuth],
      nameConstraints: { permitted: [{ dns: 'example.com' }, { ip: '10.0.0.0/8' }, { email: '.example.com' }, { uri: '.example.com' }, { dirname: 'O=padlock' }], excluded: [{ dns: 'bad.example.com' }, { ip: '::/0' }] },
    });
    const leafSan = [{ dns: 'app.example.com' }, { dns: '*.apps.example.com' }, { ip: '10.1.2.3' }, { email: 'ops@mail.example.com' }, { uri: 'https://app.example.com/' }];
    seeds = [
      issue({ subject: 'O=padlock, CN=app.example.com', issuer: inter, san: leafSan, extra: [{ oid: '2.5.29.32', critical: false, value: Uint8Array.from([0x30, 0x0a, 0x30, 0x08, 0x06, 0x06, 0x67, 0x81, 0x0c, 0x01, 0x02, 0x01]) }] }),
      issue({ subject: 'O=padlock, CN=rsa.example.com', issuer: inter, key: makeKey('rsa2048'), names: ['rsa.example.com'] }),
      issue({ subject: 'O=padlock, CN=ed.example.com', issuer: inter, key: makeKey('ed25519'), names: ['ed.example.com'] }),
      inter,
    ];
    donors = seeds.map((s) => spans(s.der));
  });

  for (const [name, mutate] of Object.entries(MUTATIONS)) {
    it(`${name}: every mutated leaf and intermediate ends in a result or a reason code`, async () => {
      const rnd = seededRandom(SEED ^ name.length * 7919);
      for (const [s, seed] of seeds.entries()) {
        for (let i = 0; i < MUTATIONS_PER_SEED_CERT / 2; i++) {
          const pem = toPem(mutate(seed.der, rnd, donors));
          const label = `${name} seed cert ${s} case ${i} (seed ${SEED})`;
          if (seed === inter) {
            const leaf = seeds[0]!;
            await judge(tally, label, () => verifyCertificate({ cert: leaf.pem, chain: pem, roots: anchorsOf(root), names: ['app.example.com'] }));
          } else {
            await judge(tally, label, () => verifyCertificate({ cert: pem, chain: inter.pem, roots: anchorsOf(root), names: ['app.example.com'] }));
          }
          // The same bytes as a trust anchor.
          await judge(tally, `${label} as anchor`, () => verifyCertificate({ cert: seeds[0]!.pem, chain: inter.pem, roots: { pem: pem + root.pem, count: 2, sources: ['fuzz'] } }));
        }
      }
    });
  }

  it('extension splicing (re-signed): certificates with mutated extension values, properly signed, end in a result or a reason code', async () => {
    const rnd = seededRandom(SEED ^ 0xe87);
    const oids = ['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.30', '2.5.29.35', '2.5.29.14', '2.5.29.32', '1.3.6.1.4.1.11129.2.4.3'];
    const values = donors.flat().filter((d) => d.length < 300);
    const leafKey = makeKey();
    for (let i = 0; i < 300; i++) {
      let value = Uint8Array.from(pick(rnd, values));
      if (rnd() < 0.5 && value.length > 0) value[Math.floor(rnd() * value.length)]! ^= 1 << Math.floor(rnd() * 8);
      const extra = [{ oid: pick(rnd, oids), critical: rnd() < 0.5, value }];
      const asCa = rnd() < 0.3;
      const label = `re-signed splice case ${i} (seed ${SEED})`;
      if (asCa) {
        const ca = issue({ subject: 'CN=Spliced CA', profile: 'ca', issuer: root, extra, ski: null });
        const leaf = issue({ subject: 'CN=app.example.com', issuer: ca, key: leafKey, aki: ca.key.keyId });
        await judge(tally, label, () => verifyCertificate({ cert: leaf.pem, chain: ca.pem, roots: anchorsOf(root), names: ['app.example.com'] }));
      } else {
        const leaf = issue({ subject: 'CN=app.example.com', issuer: inter, key: leafKey, san: null, eku: null, keyUsage: null, extra });
        await judge(tally, label, () => verifyCertificate({ cert: leaf.pem, chain: inter.pem, roots: anchorsOf(root), names: ['app.example.com'] }));
      }
    }
  });

  it('broken PEM (bad base64, cut blocks, stray headers) ends in a reason code', async () => {
    const rnd = seededRandom(SEED ^ 0x9e3);
    const pem = seeds[0]!.pem;
    for (let i = 0; i < 200; i++) {
      const chars = pem.split('');
      const edits = 1 + Math.floor(rnd() * 5);
      for (let e = 0; e < edits; e++) chars.splice(Math.floor(rnd() * chars.length), Math.floor(rnd() * 3), pick(rnd, ['', '-', '=', '!', '\n', 'A', '-----END CERTIFICATE-----', '-----BEGIN CERTIFICATE-----']));
      await judge(tally, `pem case ${i} (seed ${SEED})`, () => verifyCertificate({ cert: chars.join(''), chain: inter.pem, roots: anchorsOf(root) }));
    }
  });

  it('saw thousands of inputs, most of them rejected for many different reasons', (t) => {
    const reasons = [...tally.reasons].sort((a, b) => b[1] - a[1]);
    t.diagnostic(`inputs ${tally.inputs}, valid ${tally.valid}, slowest ${tally.slowestMs.toFixed(1)} ms; reasons ${reasons.map(([r, n]) => `${r} ${n}`).join(', ')}`);
    assert.ok(tally.inputs >= 4000, `ran ${tally.inputs} inputs`);
    assert.ok(tally.reasons.size >= 8, `only ${tally.reasons.size} distinct reasons: the mutations are not reaching the checks`);
  });
});
