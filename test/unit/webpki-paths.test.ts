/**
 * Path building: cross-signed intermediates with a bad path tried before a
 * good one, decoys that must not change the answer, a Let's Encrypt-shaped
 * hierarchy, anchors that are intermediates, loops, and the real Let's
 * Encrypt chains against Node's bundled roots.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { before, describe, it } from 'node:test';
import { PadlockError } from '../../src/errors.js';
import { verifyCertificate, type VerifyResult } from '../../src/tls/verify.js';
import type { ReasonCode } from '../../src/tls/webpki/reasons.js';
import { TAG, children, readWhole } from '../../src/tls/webpki/der.js';
import { DAY, EKU, anchorsOf, bundle, issue, makeKey, type CertSpec, type TestCertificate, type TestKey } from '../support/webpki-pki.js';
import { makeDecoys } from '../support/webpki-decoys.js';

const now = new Date(Math.floor(Date.now() / 1000) * 1000);
const rel = (days: number): Date => new Date(now.getTime() + days * DAY);
const long = { notBefore: rel(-400), notAfter: rel(4000) };

async function verify(leaf: TestCertificate, chain: TestCertificate[], roots: TestCertificate[], at = now): Promise<VerifyResult> {
  return verifyCertificate({ cert: leaf.pem, chain: bundle(...chain), roots: anchorsOf(...roots), at });
}

async function failure(leaf: TestCertificate, chain: TestCertificate[], roots: TestCertificate[], at = now): Promise<PadlockError> {
  try {
    await verify(leaf, chain, roots, at);
  } catch (err) {
    assert.ok(err instanceof PadlockError, String(err));
    return err;
  }
  assert.fail('expected a rejection');
}

const subjects = (r: VerifyResult): string[] => r.path.map((p) => p.subject);

describe('path building: a bad path is tried first, then the good one is found', () => {
  let rootA: TestCertificate;
  let rootB: TestCertificate;
  let interKey: TestKey;
  before(() => {
    rootA = issue({ subject: 'CN=Root A', profile: 'ca', ...long });
    rootB = issue({ subject: 'CN=Root B', profile: 'ca', ...long });
    interKey = makeKey();
  });

  /** The same intermediate (name and key) under Root B, older: the good path. */
  const good = (): TestCertificate => issue({ subject: 'CN=Cross Intermediate', profile: 'ca', key: interKey, issuer: rootB, notBefore: rel(-200), notAfter: rel(2000) });
  /** Under Root A, newer (so tried first), with `spec` making it bad. */
  const bad = (spec: Partial<CertSpec> = {}, issuer?: TestCertificate): TestCertificate =>
    issue({ subject: 'CN=Cross Intermediate', profile: 'ca', key: interKey, issuer: issuer ?? rootA, notBefore: rel(-10), notAfter: rel(2000), ...spec });

  const kinds: { desc: string; reason: ReasonCode; make: () => TestCertificate[] }[] = [
    {
      desc: 'expired (a cross-sign above the intermediate has expired)',
      reason: 'expired',
      make: () => {
        const oldCross = issue({ subject: 'CN=Old Cross', profile: 'ca', issuer: rootA, notBefore: rel(-900), notAfter: rel(-30) });
        return [bad({}, oldCross), oldCross];
      },
    },
    { desc: 'bad EKU (clientAuth only)', reason: 'ca-eku-no-server-auth', make: () => [bad({ eku: [EKU.clientAuth] })] },
    { desc: 'name constraints (permits only other.example)', reason: 'name-constraints-violated', make: () => [bad({ nameConstraints: { permitted: [{ dns: 'other.example' }] } })] },
    { desc: 'not a CA (CA:FALSE)', reason: 'ca-not-ca', make: () => [bad({ basicConstraints: { ca: false } })] },
    { desc: 'SHA-1 signature', reason: 'signature-algorithm-not-allowed', make: () => [bad({ signature: 'sha1' })] },
    { desc: 'missing basicConstraints', reason: 'ca-basic-constraints-missing', make: () => [bad({ basicConstraints: null })] },
  ];

  for (const k of kinds) {
    it(`backtracks past a path that fails on ${k.desc} and ends at the other root`, async () => {
      const leaf = issue({ subject: 'CN=app.example.com', issuer: good(), aki: interKey.keyId });
      const badPath = k.make();
      const res = await verify(leaf, [...badPath, good()], [rootA, rootB]);
      assert.deepEqual(subjects(res), ['app.example.com', 'Cross Intermediate', 'Root B']);
      assert.equal(res.tried[0]?.reasonCode, k.reason, JSON.stringify(res.tried));
      assert.equal(res.tried.at(-1)?.reasonCode, undefined, 'the last path tried is the valid one');
    });
  }

  it('reports the bad path\'s reason when there is no good path', async () => {
    const leaf = issue({ subject: 'CN=app.example.com', issuer: good(), aki: interKey.keyId });
    const err = await failure(leaf, [bad({ eku: [EKU.clientAuth] })], [rootA, rootB]);
    assert.equal(err.code, 'CHAIN_INVALID_PURPOSE');
    assert.equal(err.details['reasonCode'], 'ca-eku-no-server-auth');
    assert.match(err.message, /CA certificate "Cross Intermediate" in the chain for app\.example\.com does not allow TLS server authentication \(extendedKeyUsage: clientAuth\)/);
  });
});

describe('path building: decoys in the pool do not change the answer', () => {
  let root: TestCertificate;
  let inter: TestCertificate;
  let leaf: TestCertificate;
  let decoys: TestCertificate[];
  before(() => {
    root = issue({ subject: 'CN=Decoy Test Root', profile: 'ca', ...long });
    inter = issue({ subject: 'CN=Decoy Test Intermediate', profile: 'ca', issuer: root, ...long });
    leaf = issue({ subject: 'CN=app.example.com', issuer: inter });
    decoys = makeDecoys(root, inter, 50);
  });

  it('builds the same path with 50 decoys as without', async () => {
    const plain = await verify(leaf, [inter], [root]);
    const noisy = await verify(leaf, [...decoys, inter], [root]);
    assert.deepEqual(noisy.path.map((p) => p.fingerprint256), plain.path.map((p) => p.fingerprint256));
  });

  for (const [desc, at, roots] of [
    ['an expired leaf', rel(200), 'trusted'],
    ['an untrusted root', now, 'other'],
  ] as const) {
    it(`gives the same error code and reason with 50 decoys as without, for ${desc}`, async () => {
      const anchors = roots === 'trusted' ? [root] : [issue({ subject: 'CN=Someone Else', profile: 'ca' })];
      const plain = await failure(leaf, [inter], anchors, at);
      const noisy = await failure(leaf, [...decoys, inter], anchors, at);
      assert.deepEqual([noisy.code, noisy.details['reasonCode']], [plain.code, plain.details['reasonCode']]);
    });
  }

  it('stops within its signature budget on a pool of 50 look-alikes with the same name and key ID', async () => {
    const spoofs = Array.from({ length: 50 }, () => issue({ subject: 'CN=Decoy Test Intermediate', profile: 'ca', issuer: root, ski: inter.keyId! }));
    const started = performance.now();
    const res = await verify(leaf, [...spoofs, inter], [root]);
    assert.equal(res.path[1]?.fingerprint256, (await verify(leaf, [inter], [root])).path[1]?.fingerprint256);
    assert.ok(performance.now() - started < 2000, 'finishes quickly');
  });
});

describe('path building: a Let\'s Encrypt-shaped hierarchy ends at whichever root is trusted', () => {
  let x1: TestCertificate;
  let x2: TestCertificate;
  let x2Cross: TestCertificate;
  let e1: TestCertificate;
  let r1: TestCertificate;
  let ecdsaLeaf: TestCertificate;
  let rsaLeaf: TestCertificate;
  before(() => {
    x1 = issue({ subject: 'CN=Shape Root X1, O=Shape Research Group', profile: 'ca', key: makeKey('p384'), notBefore: rel(-3000), notAfter: rel(4000) });
    const x2Key = makeKey('p384');
    x2 = issue({ subject: 'CN=Shape Root X2, O=Shape Research Group', profile: 'ca', key: x2Key, notBefore: rel(-1000), notAfter: rel(5000) });
    x2Cross = issue({ subject: 'CN=Shape Root X2, O=Shape Research Group', profile: 'ca', key: x2Key, issuer: x1, notBefore: rel(-900), notAfter: rel(1000) });
    e1 = issue({ subject: 'CN=E1, O=Shape', profile: 'ca', basicConstraints: { ca: true, pathLen: 0 }, issuer: x2, notBefore: rel(-300), notAfter: rel(700) });
    r1 = issue({ subject: 'CN=R1, O=Shape', profile: 'ca', basicConstraints: { ca: true, pathLen: 0 }, issuer: x1, notBefore: rel(-300), notAfter: rel(700) });
    ecdsaLeaf = issue({ subject: 'CN=app.example.com', issuer: e1 });
    rsaLeaf = issue({ subject: 'CN=app.example.com', issuer: r1 });
  });

  const cases: { desc: string; leaf: () => TestCertificate; chain: () => TestCertificate[]; roots: () => TestCertificate[]; path: string[] }[] = [
    { desc: 'trusting only the old root: through the cross-signed new root', leaf: () => ecdsaLeaf, chain: () => [e1, x2Cross], roots: () => [x1], path: ['app.example.com', 'E1', 'Shape Root X2', 'Shape Root X1'] },
    { desc: 'trusting only the new root: the cross-sign is not needed', leaf: () => ecdsaLeaf, chain: () => [e1, x2Cross], roots: () => [x2], path: ['app.example.com', 'E1', 'Shape Root X2'] },
    { desc: 'trusting both: the shorter path to the new root', leaf: () => ecdsaLeaf, chain: () => [x2Cross, e1], roots: () => [x1, x2], path: ['app.example.com', 'E1', 'Shape Root X2'] },
    { desc: 'an intermediate under the old root, trusting the old root', leaf: () => rsaLeaf, chain: () => [r1, x2Cross], roots: () => [x1, x2], path: ['app.example.com', 'R1', 'Shape Root X1'] },
    { desc: 'trusting the intermediate itself as the anchor', leaf: () => ecdsaLeaf, chain: () => [x2Cross], roots: () => [e1], path: ['app.example.com', 'E1'] },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await verify(c.leaf(), c.chain(), c.roots());
      assert.deepEqual(subjects(res), c.path);
    });
  }

  it('after the cross-sign expires, still reaches the new root when it is trusted, and says "expired" when only the old one is', async () => {
    const after = rel(1100);
    const leaf = issue({ subject: 'CN=app.example.com', issuer: e1, notAfter: rel(1200) });
    const e1Later = issue({ subject: 'CN=E1, O=Shape', profile: 'ca', key: e1.key, issuer: x2, notBefore: rel(-300), notAfter: rel(2000) });
    assert.deepEqual(subjects(await verify(leaf, [e1Later, x2Cross], [x2], after)), ['app.example.com', 'E1', 'Shape Root X2']);
    const err = await failure(leaf, [e1Later, x2Cross], [x1], after);
    assert.equal(err.code, 'CERT_EXPIRED');
    assert.match(err.message, /CA certificate "Shape Root X2" in the chain for app\.example\.com expired on/);
  });

  it('an anchor\'s constraints apply: an intermediate trusted as an anchor limited to clientAuth is refused', async () => {
    const clientCa = issue({ subject: 'CN=Client CA', profile: 'ca', eku: [EKU.clientAuth], issuer: x1 });
    const leaf = issue({ subject: 'CN=app.example.com', issuer: clientCa });
    const err = await failure(leaf, [], [clientCa]);
    assert.equal(err.details['reasonCode'], 'ca-eku-no-server-auth');
  });

  it('an anchor\'s name constraints apply to the leaf', async () => {
    const nc = issue({ subject: 'CN=Constrained Anchor', profile: 'ca', nameConstraints: { permitted: [{ dns: 'internal' }] } });
    const ok = issue({ subject: 'CN=db.internal', names: ['db.internal'], issuer: nc });
    const no = issue({ subject: 'CN=db.example.com', names: ['db.example.com'], issuer: nc });
    assert.deepEqual(subjects(await verify(ok, [], [nc])), ['db.internal', 'Constrained Anchor']);
    assert.equal((await failure(no, [], [nc])).details['reasonCode'], 'name-constraints-violated');
  });

  it('an anchor that does not parse is left out (only once it is looked up) and the path ends at a good anchor of the same name', async () => {
    // The same subject as X2, readable up to its subject, then broken: its signature BIT STRING claims unused bits.
    const der = Buffer.from(issue({ subject: 'CN=Shape Root X2, O=Shape Research Group', profile: 'ca', key: makeKey('p384') }).der);
    const signature = children(der, readWhole(der, TAG.SEQUENCE, 'Certificate'))[2]!;
    assert.equal(signature.tag, TAG.BIT_STRING);
    const broken = Buffer.from(der);
    broken[signature.valueStart] = 1;
    const brokenPem = `-----BEGIN CERTIFICATE-----\n${broken.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    const res = await verifyCertificate({ cert: ecdsaLeaf.pem, chain: bundle(e1), roots: { pem: brokenPem + x2.pem, count: 2, sources: ['test'] }, at: now });
    assert.deepEqual(subjects(res), ['app.example.com', 'E1', 'Shape Root X2']);
  });

  it('terminates on two CAs that sign each other, none trusted', async () => {
    const [a, b] = makeDecoys(x1, e1, 6).slice(4, 6) as [TestCertificate, TestCertificate];
    const leaf = issue({ subject: 'CN=app.example.com', issuer: a });
    const err = await failure(leaf, [a, b], [x1]);
    assert.equal(err.code, 'CHAIN_UNTRUSTED');
  });
});

describe('real Let\'s Encrypt chains against Node\'s bundled roots', () => {
  const roots = { pem: rootCertificates.join('\n'), count: rootCertificates.length, sources: ['node:tls.rootCertificates'] };
  const fixture = (name: string): string => readFileSync(new URL(`../fixtures/letsencrypt/${name}`, import.meta.url), 'utf8');
  const cases = [
    // Served by wikipedia.com in November 2024: P-256 leaf, E5 (P-384) under ISRG Root X1.
    { desc: 'an ECDSA leaf under E5', file: 'ecdsa-wikipedia-chain.pem', at: '2024-12-01T00:00:00Z', names: ['wikipedia.com', 'en.wikipedia.com'], path: ['wikipedia.com', 'E5', 'ISRG Root X1'] },
    // Served in May 2023 with R3 and ISRG Root X1 cross-signed by the expired DST Root CA X3: the self-signed X1 in the store wins.
    { desc: 'an RSA leaf under R3, with the old DST cross-sign in the chain', file: 'rsa-tracker-chain.pem', at: '2023-06-01T00:00:00Z', names: ['tracker.mywaifu.best'], path: ['tracker.mywaifu.best', 'R3', 'ISRG Root X1'] },
  ];
  for (const c of cases) {
    it(`accepts ${c.desc}`, async () => {
      const res = await verifyCertificate({ cert: fixture(c.file), roots, at: new Date(c.at), names: c.names });
      assert.deepEqual(res.path.map((p) => p.subject), c.path);
    });
  }

  it('rejects the ECDSA chain for a name it does not cover, and after its notAfter', async () => {
    await assert.rejects(verifyCertificate({ cert: fixture('ecdsa-wikipedia-chain.pem'), roots, at: new Date('2024-12-01T00:00:00Z'), names: ['a.b.wikipedia.com'] }), { code: 'CERT_NAME_MISMATCH' });
    await assert.rejects(verifyCertificate({ cert: fixture('ecdsa-wikipedia-chain.pem'), roots, at: new Date('2025-01-29T23:18:47Z') }), { code: 'CERT_EXPIRED' });
  });
});
