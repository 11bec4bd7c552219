/**
 * One case per WebPKI rule: the clause it enforces, a chain that passes it
 * (the nearest valid variant) and one that breaks it, with the reason code
 * and top-level code padlock reports. The certificates come from
 * test/support/webpki-pki.ts, made in-process for each rule.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PadlockError } from '../../src/errors.js';
import { verifyCertificate, type VerifyInput } from '../../src/tls/verify.js';
import { REASONS, REASON_CODES, type ReasonCode } from '../../src/tls/webpki/reasons.js';
import { requireProgram } from '../support/programs.js';
import { DAY, EKU, KU, anchorsOf, bundle, derSequence, issue, makeKey, toPem, type CertSpec, type TestCertificate, type TestKey } from '../support/webpki-pki.js';

const now = new Date(Math.floor(Date.now() / 1000) * 1000);
const rel = (days: number): Date => new Date(now.getTime() + days * DAY);

interface Scenario {
  leaf: TestCertificate | string;
  chain?: TestCertificate[];
  roots: TestCertificate[];
  names?: string[];
  at?: Date;
  extra?: Partial<VerifyInput>;
}

interface RuleCase {
  rule: ReasonCode;
  /** The clause the case checks, as written in reasons.ts. */
  clause: string;
  /** What the invalid case breaks. */
  breaks: string;
  valid: () => Scenario;
  invalid: () => Scenario;
}

let root: TestCertificate;
let inter: TestCertificate;
let rsa: TestKey;
let rsaRoot: TestCertificate;

before(() => {
  root = issue({ subject: 'CN=Rules Root, O=padlock tests', profile: 'ca', notBefore: rel(-400), notAfter: rel(4000) });
  inter = issue({ subject: 'CN=Rules Intermediate, O=padlock tests', profile: 'ca', issuer: root, notBefore: rel(-300), notAfter: rel(3000) });
  rsa = makeKey('rsa2048');
  rsaRoot = issue({ subject: 'CN=Rules RSA Root', profile: 'ca', key: rsa, notBefore: rel(-400), notAfter: rel(4000) });
});

/** A leaf under the shared intermediate, with `spec` changes. */
const leaf = (spec: Partial<CertSpec> = {}): TestCertificate => issue({ subject: 'CN=app.example.com', issuer: inter, names: ['app.example.com'], ...spec });
const underInter = (spec: Partial<CertSpec> = {}, names?: string[]): Scenario => ({ leaf: leaf(spec), chain: [inter], roots: [root], ...(names ? { names } : {}) });
/** A chain through an intermediate made with `spec` changes. */
function viaInter(interSpec: Partial<CertSpec>, leafSpec: Partial<CertSpec> = {}, names?: string[]): Scenario {
  const ca = issue({ subject: 'CN=Rules Special Intermediate', profile: 'ca', issuer: root, ...interSpec });
  const l = issue({ subject: 'CN=app.example.com', issuer: ca, names: ['app.example.com'], aki: ca.keyId ?? ca.key.keyId, ...leafSpec });
  return { leaf: l, chain: [ca], roots: [root], ...(names ? { names } : {}) };
}
const constrained = (nameConstraints: CertSpec['nameConstraints'], leafSpec: Partial<CertSpec>): Scenario => viaInter({ nameConstraints }, leafSpec);
const mutate = (pem: string, f: (der: Buffer) => Buffer): string => {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, ''), 'base64');
  return toPem(f(der));
};
const ext = (oid: string, critical: boolean, value: number[]) => ({ oid, critical, value: Uint8Array.from(value) });
const dns = (...names: string[]) => names.map((d) => ({ dns: d }));

const cases: RuleCase[] = [
  // input
  { rule: 'pem-no-certificate', clause: 'RFC 7468 section 5', breaks: 'text without a CERTIFICATE block', valid: () => underInter(), invalid: () => ({ leaf: 'not a certificate', roots: [root] }) },
  {
    rule: 'der-malformed', clause: 'RFC 5280 section 4.1, X.690 DER', breaks: 'a leaf cut short by one byte',
    valid: () => underInter(),
    invalid: () => ({ leaf: mutate(leaf().pem, (d) => d.subarray(0, d.length - 1)), chain: [inter], roots: [root] }),
  },
  {
    rule: 'key-malformed', clause: 'RFC 5280 section 4.1.2.7', breaks: 'an EC public key whose point is not on the curve',
    valid: () => underInter(),
    invalid: () => {
      const spki = Buffer.from(makeKey('p256').publicKey.export({ type: 'spki', format: 'der' }));
      spki[spki.length - 1]! ^= 0x01;
      return underInter({ spki });
    },
  },
  {
    rule: 'private-key-mismatch', clause: 'padlock', breaks: 'the key of another certificate',
    valid: () => { const l = leaf(); return { leaf: l, chain: [inter], roots: [root], extra: { key: l.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } }; },
    invalid: () => ({ leaf: leaf(), chain: [inter], roots: [root], extra: { key: makeKey().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } }),
  },
  {
    rule: 'private-key-unreadable', clause: 'RFC 5958', breaks: 'a key file that is not a key',
    valid: () => { const l = leaf(); return { leaf: l, chain: [inter], roots: [root], extra: { key: l.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string } }; },
    invalid: () => ({ leaf: leaf(), chain: [inter], roots: [root], extra: { key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' } }),
  },
  {
    rule: 'pool-too-large', clause: 'padlock limit', breaks: '257 certificates in the pool',
    valid: () => ({ leaf: leaf(), chain: Array<TestCertificate>(255).fill(inter), roots: [root] }),
    invalid: () => ({ leaf: leaf(), chain: Array<TestCertificate>(257).fill(inter), roots: [root] }),
  },
  {
    rule: 'extension-malformed', clause: 'RFC 5280 section 4.2', breaks: 'a subjectAltName whose value is not GeneralNames',
    valid: () => underInter({ san: null, extra: [ext('2.5.29.17', false, [0x30, 0x05, 0x82, 0x03, 0x61, 0x2e, 0x62])] }, ['a.b']),
    invalid: () => underInter({ san: null, extra: [ext('2.5.29.17', false, [0x30, 0x05, 0x82, 0x09, 0x61, 0x2e, 0x62])] }),
  },
  {
    rule: 'extension-duplicate', clause: 'RFC 5280 section 4.2', breaks: 'two extendedKeyUsage extensions',
    valid: () => underInter(),
    invalid: () => underInter({ extra: [ext('2.5.29.37', false, [0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01])] }),
  },
  {
    rule: 'extension-unknown-critical', clause: 'RFC 5280 section 4.2', breaks: 'a critical private extension',
    valid: () => underInter({ extra: [ext('1.3.6.1.4.1.55555.1', false, [0x05, 0x00])] }),
    invalid: () => underInter({ extra: [ext('1.3.6.1.4.1.55555.1', true, [0x05, 0x00])] }),
  },
  // signatures and keys
  {
    rule: 'signature-algorithm-mismatch', clause: 'RFC 5280 section 4.1.1.2', breaks: 'ecdsa-with-SHA384 inside, ecdsa-with-SHA256 outside',
    valid: () => underInter({ tbsAlgorithmHex: '300a06082a8648ce3d040302' }),
    invalid: () => underInter({ tbsAlgorithmHex: '300a06082a8648ce3d040303' }),
  },
  {
    rule: 'signature-algorithm-not-allowed', clause: 'BR 7.1.3.2', breaks: 'a SHA-1 signature',
    valid: () => ({ leaf: issue({ subject: 'CN=app.example.com', issuer: rsaRoot, signature: 'pss-sha256' }), roots: [rsaRoot] }),
    invalid: () => ({ leaf: issue({ subject: 'CN=app.example.com', issuer: rsaRoot, signature: 'sha1' }), roots: [rsaRoot] }),
  },
  {
    rule: 'signature-invalid', clause: 'RFC 5280 section 6.1.3 (a)(1)', breaks: 'one flipped bit in the signature',
    valid: () => underInter(),
    invalid: () => ({ leaf: mutate(leaf().pem, (d) => { d[d.length - 1]! ^= 1; return d; }), chain: [inter], roots: [root] }),
  },
  { rule: 'key-rsa-too-small', clause: 'BR 6.1.5', breaks: 'an RSA key of 1024 bits', valid: () => underInter({ key: rsa, keyUsage: { flags: KU.digitalSignature | KU.keyEncipherment } }), invalid: () => underInter({ key: makeKey('rsa1024') }) },
  { rule: 'key-rsa-too-large', clause: 'padlock limit (as Chromium)', breaks: 'an RSA key of 8200 bits', valid: () => underInter({ key: rsa }), invalid: () => underInter({ spki: rsaSpki(8200) }) },
  { rule: 'key-curve-not-allowed', clause: 'BR 6.1.5, 7.1.3.1.2', breaks: 'a P-192 key', valid: () => underInter({ key: makeKey('p384') }), invalid: () => underInter({ key: makeKey('p192') }) },
  { rule: 'key-type-not-allowed', clause: 'BR 7.1.3.1', breaks: 'an X25519 key', valid: () => underInter({ key: makeKey('ed25519') }), invalid: () => underInter({ key: makeKey('x25519') }) },
  // validity
  {
    rule: 'expired', clause: 'RFC 5280 section 4.1.2.5', breaks: 'one second after notAfter (the second of notAfter itself is valid)',
    valid: () => ({ ...underInter({ notAfter: rel(30) }), at: rel(30) }),
    invalid: () => ({ ...underInter({ notAfter: rel(30) }), at: new Date(rel(30).getTime() + 1000) }),
  },
  {
    rule: 'not-yet-valid', clause: 'RFC 5280 section 4.1.2.5', breaks: 'one second before notBefore (the second of notBefore itself is valid)',
    valid: () => ({ ...underInter({ notBefore: rel(5) }), at: rel(5) }),
    invalid: () => ({ ...underInter({ notBefore: rel(5) }), at: new Date(rel(5).getTime() - 1000) }),
  },
  // names
  {
    rule: 'san-missing', clause: 'BR 7.1.2.7.12; RFC 9525 section 2 (no CN-ID fallback)', breaks: 'the name only in the common name of a leaf with no subjectAltName',
    valid: () => underInter({}, ['app.example.com']),
    invalid: () => underInter({ san: null }, ['app.example.com']),
  },
  ...(['a_b.example.com', '.example.com', 'app.example.com.', 'f*.example.com', 'app.*.example.com', '*.com', 'app..example.com', '-app.example.com', '10.0.0.1'] as const).map(
    (bad): RuleCase => ({
      rule: 'san-dns-invalid', clause: 'BR 7.1.2.7.12, RFC 5280 section 4.2.1.6', breaks: `the dNSName "${bad}"`,
      valid: () => underInter({ san: dns('app.example.com', '*.apps.example.com', 'xn--bcher-kva.example') }),
      invalid: () => underInter({ san: dns('app.example.com', bad) }),
    }),
  ),
  {
    rule: 'name-not-covered', clause: 'RFC 9525 section 6.3', breaks: 'a name that is only the common name of a leaf with other subjectAltNames',
    valid: () => underInter({ san: dns('app.example.com', '*.apps.example.com') }, ['APP.example.com.', 'x.apps.example.com']),
    invalid: () => underInter({ subject: 'CN=www.example.com', san: dns('app.example.com') }, ['www.example.com']),
  },
  {
    rule: 'name-not-covered', clause: 'RFC 9525 section 6.3', breaks: 'a wildcard asked to cover two labels',
    valid: () => underInter({ san: dns('*.apps.example.com') }, ['one.apps.example.com']),
    invalid: () => underInter({ san: dns('*.apps.example.com') }, ['one.two.apps.example.com']),
  },
  {
    rule: 'name-not-covered', clause: 'RFC 9525 section 6.3', breaks: 'an IP address asked of a leaf that has it only as a DNS-looking common name',
    valid: () => underInter({ san: [{ ip: '2001:db8::1' }] }, ['[2001:db8:0:0::1]']),
    invalid: () => underInter({ subject: 'CN=192.0.2.7', san: dns('app.example.com') }, ['192.0.2.7']),
  },
  // name constraints
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a DNS name outside the permitted subtree',
    valid: () => constrained({ permitted: dns('example.com') }, { san: dns('app.example.com', 'example.com') }),
    invalid: () => constrained({ permitted: dns('example.com') }, { san: dns('app.example.com', 'bank.com') }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a name that merely ends with the permitted letters',
    valid: () => constrained({ permitted: dns('localhost') }, { subject: 'CN=app.localhost', san: dns('app.localhost') }),
    invalid: () => constrained({ permitted: dns('localhost') }, { subject: 'CN=notlocalhost', san: dns('notlocalhost') }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a wildcard that can match an excluded name',
    valid: () => constrained({ excluded: dns('secret.example.com') }, { san: dns('*.apps.example.com') }),
    invalid: () => constrained({ excluded: dns('secret.example.com') }, { san: dns('*.example.com') }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a host-looking common name outside the permitted subtree',
    valid: () => constrained({ permitted: dns('example.com') }, { subject: 'CN=www.example.com, O=Example', san: dns('www.example.com') }),
    invalid: () => constrained({ permitted: dns('example.com') }, { subject: 'CN=www.bank.com', san: dns('www.example.com') }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'an IP address in an excluded range (0.0.0.0/0, as the local CA excludes)',
    valid: () => constrained({ permitted: dns('localhost'), excluded: [{ ip: '0.0.0.0/0' }, { ip: '::/0' }] }, { subject: 'CN=app.localhost', san: dns('app.localhost') }),
    invalid: () => constrained({ permitted: dns('localhost'), excluded: [{ ip: '0.0.0.0/0' }, { ip: '::/0' }] }, { subject: 'CN=app.localhost', san: [{ dns: 'app.localhost' }, { ip: '127.0.0.1' }] }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'an IPv6 address outside the permitted range',
    valid: () => constrained({ permitted: [{ ip: '2001:db8::/32' }] }, { san: [{ ip: '2001:db8::5' }] }),
    invalid: () => constrained({ permitted: [{ ip: '2001:db8::/32' }] }, { san: [{ ip: '2001:db9::5' }] }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'an email address outside the permitted domain',
    valid: () => constrained({ permitted: [{ email: '.example.com' }] }, { san: [{ dns: 'app.example.com' }, { email: 'ops@mail.example.com' }] }),
    invalid: () => constrained({ permitted: [{ email: '.example.com' }] }, { san: [{ dns: 'app.example.com' }, { email: 'ops@example.org' }] }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a URI whose host is excluded',
    valid: () => constrained({ excluded: [{ uri: '.evil.example' }] }, { san: [{ dns: 'app.example.com' }, { uri: 'https://app.example.com/x' }] }),
    invalid: () => constrained({ excluded: [{ uri: '.evil.example' }] }, { san: [{ dns: 'app.example.com' }, { uri: 'https://www.evil.example/x' }] }),
  },
  {
    rule: 'name-constraints-violated', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', breaks: 'a subject outside the permitted directory name',
    valid: () => constrained({ permitted: [{ dirname: 'O=Example' }] }, { subject: 'O=Example, CN=app.example.com' }),
    invalid: () => constrained({ permitted: [{ dirname: 'O=Example' }] }, { subject: 'O=Other, CN=app.example.com' }),
  },
  {
    rule: 'name-constraints-malformed', clause: 'RFC 5280 section 4.2.1.10', breaks: 'an iPAddress constraint with a non-contiguous mask',
    valid: () => constrained({ excluded: [{ ipRaw: Uint8Array.from([10, 0, 0, 0, 255, 255, 0, 0]) }] }, {}),
    invalid: () => constrained({ excluded: [{ ipRaw: Uint8Array.from([10, 0, 0, 0, 255, 0, 255, 0]) }] }, {}),
  },
  {
    rule: 'name-constraints-malformed', clause: 'RFC 5280 section 4.2.1.10', breaks: 'an empty nameConstraints',
    valid: () => constrained({ permitted: dns('example.com') }, {}),
    invalid: () => constrained({ raw: Uint8Array.from([0x30, 0x00]) }, {}),
  },
  {
    rule: 'name-constraints-unsupported', clause: 'RFC 5280 section 6.1', breaks: 'a registeredID constraint',
    valid: () => constrained({ permitted: dns('example.com') }, {}),
    invalid: () => constrained({ permitted: [{ dns: 'example.com' }, { registeredId: '1.2.3.4' }] }, {}),
  },
  {
    rule: 'name-constraints-in-leaf', clause: 'RFC 5280 section 4.2.1.10', breaks: 'nameConstraints in the leaf',
    valid: () => underInter(),
    invalid: () => underInter({ nameConstraints: { permitted: dns('example.com') } }),
  },
  // CA and usage
  { rule: 'ca-basic-constraints-missing', clause: 'RFC 5280 section 6.1.4 (k)', breaks: 'an intermediate without basicConstraints', valid: () => viaInter({}), invalid: () => viaInter({ basicConstraints: null }) },
  {
    rule: 'ca-basic-constraints-missing', clause: 'RFC 5280 section 6.1.4 (k)', breaks: 'a trusted root without basicConstraints',
    valid: () => underInter(),
    invalid: () => { const r = issue({ subject: 'CN=Root Without BC', profile: 'ca', basicConstraints: null }); return { leaf: issue({ subject: 'CN=app.example.com', issuer: r }), roots: [r] }; },
  },
  { rule: 'ca-not-ca', clause: 'RFC 5280 section 4.2.1.9', breaks: 'an intermediate marked CA:FALSE', valid: () => viaInter({ basicConstraints: { ca: true } }), invalid: () => viaInter({ basicConstraints: { ca: false } }) },
  { rule: 'ca-basic-constraints-not-critical', clause: 'RFC 5280 section 4.2.1.9, BR 7.1.2.10.4', breaks: 'an intermediate whose basicConstraints is not critical', valid: () => viaInter({ basicConstraints: { ca: true, critical: true } }), invalid: () => viaInter({ basicConstraints: { ca: true, critical: false } }) },
  { rule: 'ca-key-usage-no-cert-sign', clause: 'RFC 5280 sections 4.2.1.3, 6.1.4 (n)', breaks: 'an intermediate whose keyUsage lacks keyCertSign', valid: () => viaInter({ keyUsage: { flags: KU.keyCertSign } }), invalid: () => viaInter({ keyUsage: { flags: KU.digitalSignature | KU.cRLSign } }) },
  {
    rule: 'path-length-exceeded', clause: 'RFC 5280 sections 4.2.1.9, 6.1.4 (l)(m)', breaks: 'a root with pathLenConstraint 0 above an intermediate',
    valid: () => pathLenRoot(1),
    invalid: () => pathLenRoot(0),
  },
  { rule: 'ca-eku-no-server-auth', clause: 'BR 7.1.2.10.6; Chromium and Mozilla EKU nesting', breaks: 'an intermediate limited to clientAuth', valid: () => viaInter({ eku: [EKU.serverAuth, EKU.clientAuth] }), invalid: () => viaInter({ eku: [EKU.clientAuth] }) },
  { rule: 'leaf-eku-no-server-auth', clause: 'RFC 5280 section 4.2.1.12, BR 7.1.2.7.10', breaks: 'a leaf limited to codeSigning', valid: () => underInter({ eku: [EKU.clientAuth, EKU.serverAuth] }), invalid: () => underInter({ eku: [EKU.codeSigning] }) },
  { rule: 'leaf-is-ca', clause: 'BR 7.1.2.7.8', breaks: 'a leaf marked CA:TRUE', valid: () => underInter({ basicConstraints: { ca: false } }), invalid: () => underInter({ basicConstraints: { ca: true } }) },
  { rule: 'leaf-key-usage-cert-sign', clause: 'BR 7.1.2.7.11', breaks: 'a leaf that may sign certificates', valid: () => underInter({ keyUsage: { flags: KU.digitalSignature } }), invalid: () => underInter({ keyUsage: { flags: KU.digitalSignature | KU.keyCertSign } }) },
  {
    rule: 'leaf-key-usage-no-digital-signature', clause: 'BR 7.1.2.7.11; RFC 8446 section 4.4.2.2', breaks: 'an RSA leaf allowed only keyEncipherment',
    valid: () => underInter({ key: rsa, keyUsage: { flags: KU.digitalSignature | KU.keyEncipherment } }),
    invalid: () => underInter({ key: rsa, keyUsage: { flags: KU.keyEncipherment } }),
  },
  // key identifiers
  { rule: 'aki-missing', clause: 'RFC 5280 section 4.2.1.1, BR 7.1.2.11.1', breaks: 'a leaf without authorityKeyIdentifier', valid: () => underInter(), invalid: () => underInter({ aki: null }) },
  { rule: 'ski-missing', clause: 'RFC 5280 section 4.2.1.2, BR 7.1.2.11.4', breaks: 'an intermediate without subjectKeyIdentifier', valid: () => viaInter({}), invalid: () => viaInter({ ski: null }) },
  {
    rule: 'aki-ski-mismatch', clause: 'RFC 5280 section 4.2.1.1', breaks: 'a leaf naming another key as its issuer\'s',
    valid: () => underInter(),
    invalid: () => underInter({ aki: Uint8Array.from({ length: 20 }, (_, i) => i) }),
  },
  // path building
  { rule: 'issuer-not-found', clause: 'RFC 5280 section 6.1', breaks: 'no intermediate supplied', valid: () => underInter(), invalid: () => ({ leaf: leaf(), roots: [root] }) },
  { rule: 'untrusted-issuer', clause: 'RFC 5280 section 6.1', breaks: 'an intermediate whose root is not trusted nor sent', valid: () => underInter(), invalid: () => ({ leaf: leaf(), chain: [inter], roots: [rsaRoot] }) },
  { rule: 'untrusted-root', clause: 'RFC 5280 section 6.1', breaks: 'a root that is sent but not trusted', valid: () => underInter(), invalid: () => ({ leaf: leaf(), chain: [inter, root], roots: [rsaRoot] }) },
  { rule: 'path-too-long', clause: 'padlock limit (as rustls-webpki)', breaks: 'seven intermediates', valid: () => ladder(6), invalid: () => ladder(7) },
  {
    rule: 'path-budget-exhausted', clause: 'padlock limit (as rustls-webpki)', breaks: 'a limit of one signature check for a chain that needs two',
    valid: () => ({ ...underInter(), extra: { limits: { maxSignatureChecks: 2 } } }),
    invalid: () => ({ ...underInter(), extra: { limits: { maxSignatureChecks: 1 } } }),
  },
];

/**
 * A SubjectPublicKeyInfo holding an RSA public key of `bits` bits (any odd
 * modulus will do for a key nobody signs with; a real one of 8200 bits takes
 * minutes to make).
 */
function rsaSpki(bits: number): Uint8Array {
  const modulus = Buffer.alloc(bits / 8 + 1, 0xa5);
  modulus[0] = 0x00;
  modulus[1] = 0xc0;
  modulus[modulus.length - 1] = 0x01;
  const int = (b: Uint8Array): Uint8Array => derSequence(0x02, [b]);
  const rsaKey = derSequence(0x30, [int(modulus), int(Uint8Array.from([1, 0, 1]))]);
  const alg = Uint8Array.from([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
  return derSequence(0x30, [alg, derSequence(0x03, [Uint8Array.from([0]), rsaKey])]);
}

function pathLenRoot(pathLen: number): Scenario {
  const r = issue({ subject: `CN=PathLen ${pathLen} Root`, profile: 'ca', basicConstraints: { ca: true, pathLen } });
  const i = issue({ subject: 'CN=Under PathLen Root', profile: 'ca', issuer: r });
  return { leaf: issue({ subject: 'CN=app.example.com', issuer: i }), chain: [i], roots: [r] };
}

/** A chain of `n` intermediates under the shared root. */
function ladder(n: number): Scenario {
  const chain: TestCertificate[] = [];
  let up = root;
  for (let i = 0; i < n; i++) {
    up = issue({ subject: `CN=Rung ${i}`, profile: 'ca', issuer: up });
    chain.push(up);
  }
  return { leaf: issue({ subject: 'CN=app.example.com', issuer: up }), chain, roots: [root] };
}

async function run(s: Scenario): Promise<{ ok: true } | { ok: false; code: string; reasonCode: unknown; message: string }> {
  try {
    await verifyCertificate({
      cert: typeof s.leaf === 'string' ? s.leaf : s.leaf.pem,
      chain: bundle(...(s.chain ?? [])),
      roots: anchorsOf(...s.roots),
      at: s.at ?? now,
      ...(s.names ? { names: s.names } : {}),
      ...s.extra,
    });
    return { ok: true };
  } catch (err) {
    assert.ok(err instanceof PadlockError, `expected a PadlockError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'the message is one line');
    return { ok: false, code: err.code, reasonCode: err.details['reasonCode'], message: err.message };
  }
}

describe('WebPKI rules: each rule accepts its valid case and rejects its invalid one with its reason code', () => {
  for (const c of cases) {
    it(`${c.rule} (${c.clause}): rejects ${c.breaks}`, async () => {
      assert.equal(c.clause, REASONS[c.rule].clause, 'the case names the clause the rule enforces');
      const good = await run(c.valid());
      assert.deepEqual(good, { ok: true }, `the valid case passes: ${JSON.stringify(good)}`);
      const bad = await run(c.invalid());
      assert.equal(bad.ok, false, 'the invalid case is rejected');
      if (bad.ok) return;
      assert.equal(bad.reasonCode, c.rule, bad.message);
      assert.equal(bad.code, REASONS[c.rule].code, bad.message);
    });
  }

  it('has a case for every reason code', () => {
    const covered = new Set(cases.map((c) => c.rule));
    assert.deepEqual(REASON_CODES.filter((r) => !covered.has(r)), []);
  });
});

/**
 * `openssl verify` as a second opinion, in tests only: what OpenSSL's
 * verifier says about a scenario (as a TLS server chain, at its time; names
 * are not given to it).
 */
describe('openssl verify as a second opinion', () => {
  let openssl: string;
  let dir: string;
  let n = 0;
  before(() => {
    openssl = requireProgram('openssl', 'openssl', 'the second opinion on chains');
    dir = mkdtempSync(join(tmpdir(), 'padlock-second-opinion-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function opensslAccepts(s: Scenario): boolean {
    const file = (name: string, text: string): string => {
      const path = join(dir, `${++n}-${name}.pem`);
      writeFileSync(path, text);
      return path;
    };
    const leaf = typeof s.leaf === 'string' ? s.leaf : s.leaf.pem;
    const chain = bundle(...(s.chain ?? []));
    const args = ['verify', '-purpose', 'sslserver', '-no-CApath', '-no-CAstore', '-CAfile', file('roots', bundle(...s.roots)), '-attime', String(Math.floor((s.at ?? now).getTime() / 1000))];
    if (chain) args.push('-untrusted', file('chain', chain));
    return spawnSync(openssl, [...args, file('leaf', leaf)], { encoding: 'utf8' }).status === 0;
  }

  it('accepts every valid case of the rule table, except a certificate at the second of its notAfter, which OpenSSL calls expired', () => {
    const refused = cases.filter((c) => !opensslAccepts(c.valid())).map((c) => `${c.rule}: ${c.breaks}`);
    assert.deepEqual(refused, ['expired: one second after notAfter (the second of notAfter itself is valid)']);
  });

  it('accepts chains that browsers, and padlock, refuse', async () => {
    const stricter: { rule: ReasonCode; scenario: () => Scenario }[] = [
      { rule: 'san-missing', scenario: () => underInter({ san: null }) },
      { rule: 'san-dns-invalid', scenario: () => underInter({ names: ['a_b.example.com'] }) },
      { rule: 'signature-algorithm-not-allowed', scenario: () => ({ leaf: issue({ subject: 'CN=app.example.com', issuer: rsaRoot, signature: 'sha1' }), roots: [rsaRoot] }) },
      { rule: 'signature-algorithm-not-allowed', scenario: () => ({ leaf: issue({ subject: 'CN=app.example.com', issuer: rsaRoot, signature: 'md5' }), roots: [rsaRoot] }) },
      { rule: 'leaf-key-usage-cert-sign', scenario: () => underInter({ keyUsage: { flags: KU.digitalSignature | KU.keyCertSign } }) },
      { rule: 'leaf-is-ca', scenario: () => underInter({ basicConstraints: { ca: true } }) },
      { rule: 'key-curve-not-allowed', scenario: () => underInter({ key: makeKey('p192') }) },
      { rule: 'key-rsa-too-small', scenario: () => underInter({ key: makeKey('rsa1024') }) },
      { rule: 'aki-missing', scenario: () => underInter({ aki: null }) },
      {
        rule: 'ca-basic-constraints-missing',
        scenario: () => { const r = issue({ subject: 'CN=Root Without BC', profile: 'ca', basicConstraints: null }); return { leaf: issue({ subject: 'CN=app.example.com', issuer: r }), roots: [r] }; },
      },
    ];
    for (const s of stricter) {
      const scenario = s.scenario();
      assert.equal(opensslAccepts(scenario), true, `openssl accepts the ${s.rule} case`);
      const padlock = await run(scenario);
      assert.equal(padlock.ok ? 'accepted' : padlock.reasonCode, s.rule);
    }
  });
});
