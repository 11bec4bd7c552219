import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PadlockError } from '../../src/errors.js';
import { certificateValidity, daysLeft, describeCertificate, splitPem } from '../../src/tls/inspect.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';

const notBefore = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
const notAfter = new Date(Date.UTC(2026, 3, 2, 3, 4, 5));

let pki: TestPki;
let root: TestCert;
let ecLeaf: TestCert;
let rsaLeaf: TestCert;

before(async () => {
  pki = await TestPki.create();
  root = await pki.issue({ cn: 'Inspect Root', kind: 'ca', notBefore, notAfter: new Date(notAfter.getTime() + 365 * DAY) });
  ecLeaf = await pki.issue({
    cn: 'App.Example.com',
    kind: 'leaf',
    issuer: root,
    names: ['App.Example.com', '*.Apps.example.com', '127.0.0.1', '2001:DB8:0:0:0:0:0:10'],
    notBefore,
    notAfter,
  });
  rsaLeaf = await pki.issue({ cn: 'rsa.example.com', kind: 'leaf', keyType: 'rsa', issuer: root, names: ['rsa.example.com'], notBefore, notAfter });
});

after(async () => {
  await pki?.cleanup();
});

describe('certificateValidity', () => {
  const cases = [
    { desc: 'reads the validity period of a PEM leaf', cert: () => ecLeaf.cert },
    { desc: 'reads the leaf of a PEM chain, not the root after it', cert: () => rsaLeaf.cert + root.cert },
  ];
  for (const tc of cases) {
    it(tc.desc, () => {
      const v = certificateValidity(tc.cert());
      assert.deepEqual([v.notBefore.toISOString(), v.notAfter.toISOString()], [notBefore.toISOString(), notAfter.toISOString()]);
    });
  }
  it('refuses text that holds no certificate', () => {
    assert.throws(() => certificateValidity('not a certificate'), (err: unknown) => err instanceof PadlockError && err.code === 'CERT_UNPARSEABLE');
  });
});

describe('describeCertificate', () => {
  const cases: { desc: string; cert: () => string; expect: Partial<Record<string, unknown>> }[] = [
    {
      desc: 'describes an ECDSA P-256 leaf: DNS names lowercased, IP addresses in canonical text (padlock certificates lists IP certificates)',
      cert: () => ecLeaf.cert,
      expect: { subject: 'App.Example.com', names: ['app.example.com', '*.apps.example.com', '127.0.0.1', '2001:db8::10'], issuer: 'Inspect Root', keyType: 'ecdsa P-256' },
    },
    {
      desc: 'describes an RSA 2048 leaf',
      cert: () => rsaLeaf.cert,
      expect: { subject: 'rsa.example.com', names: ['rsa.example.com'], issuer: 'Inspect Root', keyType: 'rsa 2048' },
    },
    {
      desc: 'describes a root as issued by itself, without names',
      cert: () => root.cert,
      expect: { subject: 'Inspect Root', names: [], issuer: 'Inspect Root', keyType: 'ecdsa P-256' },
    },
  ];
  for (const tc of cases) {
    it(tc.desc, () => {
      const s = describeCertificate(tc.cert());
      for (const [k, v] of Object.entries(tc.expect)) assert.deepEqual(s[k as keyof typeof s], v, k);
      assert.equal(s.notBefore.toISOString(), notBefore.toISOString());
      assert.match(s.serialNumber, /^[0-9A-F]+$/);
      assert.match(s.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    });
  }

  it('reads notAfter exactly', () => {
    assert.equal(describeCertificate(ecLeaf.cert).notAfter.toISOString(), notAfter.toISOString());
  });

  it('describes the first certificate of a bundle', () => {
    assert.equal(describeCertificate(rsaLeaf.cert + root.cert).subject, 'rsa.example.com');
  });

  for (const [desc, garbage] of [
    ['throws CERT_UNPARSEABLE on text without a PEM block', 'garbage'],
    ['throws CERT_UNPARSEABLE on a PEM block that is not a certificate', '-----BEGIN CERTIFICATE-----\nZm9v\n-----END CERTIFICATE-----'],
  ] as const) {
    it(desc, () => {
      assert.throws(() => describeCertificate(garbage), (err: unknown) => err instanceof PadlockError && err.code === 'CERT_UNPARSEABLE');
    });
  }
});

describe('splitPem', () => {
  it('returns every CERTIFICATE block in order and skips keys and text', () => {
    const bundle = `intro text\n${ecLeaf.cert}${ecLeaf.key}\r\n${root.cert.replace(/\n/g, '\r\n')}trailer`;
    const blocks = splitPem(bundle);
    assert.equal(blocks.length, 2);
    assert.equal(describeCertificate(blocks[0]!).subject, 'App.Example.com');
    assert.equal(blocks[1], root.cert);
  });

  it('returns an empty list when there is no certificate', () => {
    assert.deepEqual(splitPem(ecLeaf.key), []);
  });
});

describe('daysLeft', () => {
  const cases = [
    { desc: 'counts whole days, rounding down', now: new Date(notAfter.getTime() - 5 * DAY - 1000), want: 5 },
    { desc: 'is 0 on the last partial day', now: new Date(notAfter.getTime() - 1000), want: 0 },
    { desc: 'is negative once expired', now: new Date(notAfter.getTime() + 1000), want: -1 },
  ];
  for (const tc of cases) it(tc.desc, () => assert.equal(daysLeft(notAfter, tc.now), tc.want));
});
