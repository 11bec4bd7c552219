import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { PadlockError } from '../../src/errors.js';
import { fixedClock } from '../../src/clock.js';
import { loadTrustAnchors, type TrustAnchors } from '../../src/tls/roots.js';
import { verifyCertificate, type VerifyInput } from '../../src/tls/verify.js';
import { DAY, TestPki, newKey, withBadSignature, type TestCert } from '../support/certs.js';

// One PKI for the whole file: a trusted root and intermediate, a second
// (untrusted) hierarchy, and CA certificates with each kind of defect.
const now = new Date(Math.floor(Date.now() / 1000) * 1000);
const rel = (days: number): Date => new Date(now.getTime() + days * DAY);

let pki: TestPki;
let roots: TrustAnchors;
const c: Record<string, TestCert> = {};

before(async () => {
  pki = await TestPki.create();
  const long = { notBefore: rel(-365), notAfter: rel(3650) };
  c.root = await pki.issue({ cn: 'Padlock Test Root', kind: 'ca', ...long });
  c.inter = await pki.issue({ cn: 'Padlock Test Intermediate', kind: 'ca', issuer: c.root, ...long });
  const leaf = (cn: string, issuer: TestCert, extra: Partial<Parameters<TestPki['issue']>[0]> = {}) =>
    pki.issue({ cn, kind: 'leaf', issuer, names: [cn], notBefore: rel(-1), notAfter: rel(90), ...extra });
  c.leaf = await leaf('app.example.com', c.inter, { names: ['app.example.com', 'www.example.com', '*.apps.example.com'] });
  c.expired = await leaf('old.example.com', c.inter, { notBefore: rel(-100), notAfter: rel(-10) });
  c.future = await leaf('soon.example.com', c.inter, { notBefore: rel(10), notAfter: rel(100) });
  c.clientOnly = await leaf('client.example.com', c.inter, { eku: ['clientAuth'] });

  c.otherRoot = await pki.issue({ cn: 'Stranger Root', kind: 'ca', ...long });
  c.otherInter = await pki.issue({ cn: 'Stranger Intermediate', kind: 'ca', issuer: c.otherRoot, ...long });
  c.strangerLeaf = await leaf('stranger.example.com', c.otherInter);

  c.notCa = await pki.issue({ cn: 'Not A CA Intermediate', kind: 'ca-false', issuer: c.root, ...long });
  c.underNotCa = await leaf('notca.example.com', c.notCa);

  c.pathLen0 = await pki.issue({ cn: 'PathLen0 Intermediate', kind: 'ca', pathLen: 0, issuer: c.root, ...long });
  c.deeper = await pki.issue({ cn: 'Too Deep Intermediate', kind: 'ca', issuer: c.pathLen0, ...long });
  c.tooDeep = await leaf('deep.example.com', c.deeper);

  c.oldInter = await pki.issue({ cn: 'Expired Intermediate', kind: 'ca', issuer: c.root, notBefore: rel(-400), notAfter: rel(-5) });
  c.underOldInter = await leaf('lapsed.example.com', c.oldInter, { notBefore: rel(-30) });

  c.clientCa = await pki.issue({ cn: 'ClientAuth Only Intermediate', kind: 'ca', eku: ['clientAuth'], issuer: c.root, ...long });
  c.underClientCa = await leaf('eku.example.com', c.clientCa);

  roots = await loadTrustAnchors({ only: [c.root.certFile] });
});

after(async () => {
  await pki?.cleanup();
});

interface Case {
  desc: string;
  input: () => Omit<VerifyInput, 'roots'> & { roots?: TrustAnchors };
  /** Expected error code, or undefined for a valid chain. */
  code?: string;
  /** Substrings the message must contain (the certificate named, the reason). */
  message?: (string | RegExp)[];
  /** Expected CNs along the built path on success. */
  path?: string[];
}

const cases: Case[] = [
  {
    desc: 'accepts a leaf with its intermediate up to a trusted root',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, key: c.leaf!.key, names: ['app.example.com'], at: now }),
    path: ['app.example.com', 'Padlock Test Intermediate', 'Padlock Test Root'],
  },
  {
    desc: 'accepts an intermediate given after the leaf in the certificate input',
    input: () => ({ cert: c.leaf!.cert + c.inter!.cert, at: now }),
    path: ['app.example.com', 'Padlock Test Intermediate', 'Padlock Test Root'],
  },
  {
    desc: 'accepts an unordered pool with an unrelated certificate in it',
    input: () => ({ cert: c.leaf!.cert, chain: c.otherInter!.cert + c.clientCa!.cert + c.inter!.cert + c.otherRoot!.cert, at: now }),
    path: ['app.example.com', 'Padlock Test Intermediate', 'Padlock Test Root'],
  },
  {
    desc: 'accepts a name matched by a one-label wildcard, case-insensitively',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, names: ['WWW.example.com', 'api.apps.example.com'], at: now }),
  },
  {
    desc: 'reads the clock when no time is given',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, clock: fixedClock(rel(200)) }),
    code: 'CERT_EXPIRED',
    message: ['app.example.com'],
  },
  {
    desc: 'rejects an expired leaf and says when it expired',
    input: () => ({ cert: c.expired!.cert, chain: c.inter!.cert, at: now }),
    code: 'CERT_EXPIRED',
    message: ['certificate for old.example.com expired on', rel(-10).toISOString().replace(/\.\d{3}Z$/, 'Z')],
  },
  {
    desc: 'rejects a leaf that is not valid yet and says from when',
    input: () => ({ cert: c.future!.cert, chain: c.inter!.cert, at: now }),
    code: 'CERT_NOT_YET_VALID',
    message: ['soon.example.com', rel(10).toISOString().replace(/\.\d{3}Z$/, 'Z')],
  },
  {
    desc: 'rejects a chain whose intermediate has expired, naming the intermediate',
    input: () => ({ cert: c.underOldInter!.cert, chain: c.oldInter!.cert, at: now }),
    code: 'CERT_EXPIRED',
    message: ['CA certificate "Expired Intermediate" in the chain for lapsed.example.com expired on', rel(-5).toISOString().replace(/\.\d{3}Z$/, 'Z')],
  },
  {
    desc: 'accepts an expired leaf when verified at a time inside its validity (--at in the past)',
    input: () => ({ cert: c.expired!.cert, chain: c.inter!.cert, at: rel(-50) }),
    path: ['old.example.com', 'Padlock Test Intermediate', 'Padlock Test Root'],
  },
  {
    desc: 'rejects a currently valid leaf when verified after its notAfter (--at in the future)',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, at: rel(120) }),
    code: 'CERT_EXPIRED',
    message: ['certificate for app.example.com expired on'],
  },
  {
    desc: 'rejects a currently valid leaf when verified before its notBefore',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, at: rel(-30) }),
    code: 'CERT_NOT_YET_VALID',
    message: ['app.example.com'],
  },
  {
    desc: 'rejects a name the leaf does not cover and lists it',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, names: ['app.example.com', 'other.example.com'], at: now }),
    code: 'CERT_NAME_MISMATCH',
    message: ['certificate for app.example.com does not cover other.example.com'],
  },
  {
    desc: 'does not let a wildcard cover two labels',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, names: ['a.b.apps.example.com'], at: now }),
    code: 'CERT_NAME_MISMATCH',
    message: ['app.example.com', 'a.b.apps.example.com'],
  },
  {
    desc: 'rejects a private key that belongs to another certificate',
    input: () => ({ cert: c.leaf!.cert, chain: c.inter!.cert, key: newKey(), at: now }),
    code: 'CERT_KEY_MISMATCH',
    message: ['app.example.com'],
  },
  {
    desc: 'rejects a chain whose root is not trusted, naming the root',
    input: () => ({ cert: c.strangerLeaf!.cert, chain: c.otherInter!.cert + c.otherRoot!.cert, at: now }),
    code: 'CHAIN_UNTRUSTED',
    message: ['stranger.example.com', 'Stranger Root'],
  },
  {
    desc: 'rejects a chain whose root is neither sent nor trusted, naming the root',
    input: () => ({ cert: c.strangerLeaf!.cert, chain: c.otherInter!.cert, at: now }),
    code: 'CHAIN_UNTRUSTED',
    message: ['stranger.example.com', 'Stranger Intermediate', 'Stranger Root'],
  },
  {
    desc: 'rejects a self-signed certificate that is not a trusted root',
    input: () => ({ cert: c.otherRoot!.cert, at: now }),
    code: 'CHAIN_UNTRUSTED',
    message: ['Stranger Root'],
  },
  {
    desc: 'reports a missing intermediate when the pool is empty, naming the issuer',
    input: () => ({ cert: c.leaf!.cert, at: now }),
    code: 'CHAIN_MISSING_INTERMEDIATE',
    message: ['certificate for app.example.com', 'Padlock Test Intermediate'],
  },
  {
    desc: 'rejects an intermediate marked CA:FALSE',
    input: () => ({ cert: c.underNotCa!.cert, chain: c.notCa!.cert, at: now }),
    code: 'CHAIN_INVALID_CA',
    message: ['Not A CA Intermediate', 'notca.example.com'],
  },
  {
    desc: 'rejects a chain longer than an intermediate pathLen allows',
    input: () => ({ cert: c.tooDeep!.cert, chain: c.deeper!.cert + c.pathLen0!.cert, at: now }),
    code: 'CHAIN_PATH_LENGTH',
    message: ['PathLen0 Intermediate', 'deep.example.com'],
  },
  {
    desc: 'rejects a leaf whose extendedKeyUsage is clientAuth only',
    input: () => ({ cert: c.clientOnly!.cert, chain: c.inter!.cert, at: now }),
    code: 'CHAIN_INVALID_PURPOSE',
    message: ['certificate for client.example.com', 'clientAuth'],
  },
  {
    desc: 'rejects an intermediate whose extendedKeyUsage is clientAuth only',
    input: () => ({ cert: c.underClientCa!.cert, chain: c.clientCa!.cert, at: now }),
    code: 'CHAIN_INVALID_PURPOSE',
    message: ['ClientAuth Only Intermediate', 'eku.example.com'],
  },
  {
    desc: 'rejects a leaf whose signature was tampered with',
    input: () => ({ cert: withBadSignature(c.leaf!.cert), chain: c.inter!.cert, at: now }),
    code: 'CHAIN_BAD_SIGNATURE',
    message: ['app.example.com', 'Padlock Test Intermediate'],
  },
  {
    desc: 'rejects input that is not a certificate',
    input: () => ({ cert: 'hello, I am not a certificate', at: now }),
    code: 'CERT_UNPARSEABLE',
    message: ['no PEM CERTIFICATE block'],
  },
  {
    desc: 'rejects a PEM block whose body is not a certificate',
    input: () => ({ cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', at: now }),
    code: 'CERT_UNPARSEABLE',
    message: ['leaf certificate'],
  },
];

describe('verifyCertificate', () => {
  for (const tc of cases) {
    it(tc.desc, async () => {
      const input = { roots, ...tc.input() };
      if (tc.code === undefined) {
        const res = await verifyCertificate(input);
        if (tc.path) assert.deepEqual(res.path.map((p) => p.subject), tc.path);
        assert.equal(res.leaf.subject, res.path[0]?.subject);
        return;
      }
      await assert.rejects(verifyCertificate(input), (err: unknown) => {
        assert.ok(err instanceof PadlockError, `expected a PadlockError, got ${String(err)}`);
        assert.equal(err.code, tc.code, `code for: ${err.message}`);
        assert.doesNotMatch(err.message, /\n/, 'the message is one line');
        for (const m of tc.message ?? []) {
          if (typeof m === 'string') assert.ok(err.message.includes(m), `"${err.message}" should mention "${m}"`);
          else assert.match(err.message, m);
        }
        return true;
      });
    });
  }

  it('runs concurrent verifications independently', async () => {
    const results = await Promise.allSettled([
      verifyCertificate({ roots, cert: c.leaf!.cert, chain: c.inter!.cert, at: now }),
      verifyCertificate({ roots, cert: c.expired!.cert, chain: c.inter!.cert, at: now }),
      verifyCertificate({ roots, cert: c.leaf!.cert, at: now }),
    ]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as PadlockError).code)),
      ['ok', 'CERT_EXPIRED', 'CHAIN_MISSING_INTERMEDIATE'],
    );
  });
});

describe('loadTrustAnchors', () => {
  it('trusts exactly the --roots files, deduplicated', async () => {
    const twice = await pki.file('twice.pem', c.root!.cert + c.root!.cert + c.otherRoot!.cert);
    const anchors = await loadTrustAnchors({ only: [twice, c.root!.certFile] });
    assert.equal(anchors.count, 2);
    assert.deepEqual(anchors.sources, [twice, c.root!.certFile]);
  });

  it('adds --trusted-roots files to the system and Node bundles', async () => {
    const empty = await pki.file('empty-bundle.pem', '');
    const anchors = await loadTrustAnchors({ extraFiles: [c.otherRoot!.certFile], env: { SSL_CERT_FILE: empty } });
    assert.ok(anchors.sources.includes('node:tls.rootCertificates'));
    assert.equal(anchors.sources.at(-1), c.otherRoot!.certFile);
    assert.ok(anchors.count > 100, `expected Node's bundle plus one, got ${anchors.count}`);
    const res = await verifyCertificate({ roots: anchors, cert: c.strangerLeaf!.cert, chain: c.otherInter!.cert, at: now });
    assert.equal(res.path.at(-1)?.subject, 'Stranger Root');
  });

  it('reads *.pem and *.crt files from SSL_CERT_DIR and ignores other files', async () => {
    const empty = await pki.file('empty-system.pem', '');
    const dir = `${pki.dir}/certdir`;
    await mkdir(dir);
    await writeFile(`${dir}/stranger.crt`, c.otherRoot!.cert);
    await writeFile(`${dir}/root.pem`, c.root!.cert);
    await writeFile(`${dir}/README`, c.inter!.cert);
    const base = await loadTrustAnchors({ env: { SSL_CERT_FILE: empty } });
    const anchors = await loadTrustAnchors({ env: { SSL_CERT_FILE: empty, SSL_CERT_DIR: dir } });
    assert.equal(anchors.count, base.count + 2);
    assert.deepEqual(anchors.sources.slice(0, 2), [`${dir}/root.pem`, `${dir}/stranger.crt`]);
  });

  it('names an unreadable extra file in a CONFIG_INVALID error', async () => {
    const missing = `${pki.dir}/does-not-exist.pem`;
    await assert.rejects(loadTrustAnchors({ extraFiles: [missing] }), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.ok(err.message.includes(missing), err.message);
      return true;
    });
  });

  it('rejects a --roots file without certificates', async () => {
    const junk = await pki.file('junk.pem', 'not a bundle');
    await assert.rejects(loadTrustAnchors({ only: [junk] }), { code: 'CONFIG_INVALID' });
  });
});
