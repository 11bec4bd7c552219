/**
 * A test PKI made in-process with node:crypto (keys, signatures) and
 * @peculiar/x509 / @peculiar/asn1-x509 (certificate structure), so a test can
 * make any certificate a rule needs: missing or extra extensions, a SHA-1 or
 * MD5 signature, a P-192 key, exact validity seconds, cross-signs. Nothing is
 * written to disk and no program is run.
 */
import { createHash, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import type { TrustAnchors } from '../../src/tls/roots.js';

export const DAY = 86_400_000;

export type KeyKind = 'p256' | 'p384' | 'p521' | 'p192' | 'secp256k1' | 'rsa1024' | 'rsa2048' | 'ed25519' | 'x25519';

export interface TestKey {
  kind: KeyKind;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The subjectKeyIdentifier certificates for this key carry by default. */
  keyId: Uint8Array;
}

const CURVES: Partial<Record<KeyKind, string>> = { p256: 'P-256', p384: 'P-384', p521: 'P-521', p192: 'prime192v1', secp256k1: 'secp256k1' };

/** A new key pair of `kind` (RSA keys take a moment; reuse them). */
export function makeKey(kind: KeyKind = 'p256'): TestKey {
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (kind === 'rsa1024' || kind === 'rsa2048') pair = generateKeyPairSync('rsa', { modulusLength: kind === 'rsa1024' ? 1024 : 2048 });
  else if (kind === 'ed25519') pair = generateKeyPairSync('ed25519');
  else if (kind === 'x25519') pair = generateKeyPairSync('x25519');
  else pair = generateKeyPairSync('ec', { namedCurve: CURVES[kind]! });
  const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
  return { kind, ...pair, keyId: createHash('sha1').update(spki).digest().subarray(0, 20) };
}

/** A GeneralName for subjectAltName or a name constraint. `ip` takes an address, or `addr/prefix` in a constraint; `ipRaw` any bytes. */
export type NameSpec = { dns: string } | { ip: string } | { ipRaw: Uint8Array } | { email: string } | { uri: string } | { dirname: string } | { registeredId: string };

/** The hash (or scheme) the issuer signs with. */
export type SignatureKind = 'sha256' | 'sha384' | 'sha512' | 'sha1' | 'md5' | 'pss-sha256';

export interface CertSpec {
  /** `CN=..., O=...`. */
  subject: string;
  /** The signer; self-signed when left out. */
  issuer?: TestCertificate;
  key?: TestKey;
  notBefore?: Date;
  notAfter?: Date;
  /** `null` leaves the extension out. Defaults depend on `profile`. */
  basicConstraints?: { ca: boolean; pathLen?: number; critical?: boolean } | null;
  keyUsage?: { flags: number; critical?: boolean } | null;
  eku?: string[] | null;
  san?: NameSpec[] | null;
  nameConstraints?: { permitted?: NameSpec[]; excluded?: NameSpec[]; critical?: boolean } | { raw: Uint8Array; critical?: boolean } | null;
  /** `null` leaves it out; bytes override the key's ID. */
  ski?: Uint8Array | null;
  aki?: Uint8Array | null;
  /** More extensions, encoded as given (duplicates allowed). */
  extra?: { oid: string; critical: boolean; value: Uint8Array }[];
  signature?: SignatureKind;
  /** Replace the AlgorithmIdentifier inside tbsCertificate (hex DER), to make it disagree with the outer one. */
  tbsAlgorithmHex?: string;
  /** `leaf` (default): CA:FALSE, digitalSignature, serverAuth, SAN from `names`; `ca`: CA:TRUE critical, keyCertSign+cRLSign. */
  profile?: 'leaf' | 'ca';
  /** Shorthand for `san` DNS names. */
  names?: string[];
  serial?: Uint8Array;
  /** Use these bytes as the SubjectPublicKeyInfo (a broken key). */
  spki?: Uint8Array;
}

export interface TestCertificate {
  subject: string;
  der: Uint8Array;
  pem: string;
  key: TestKey;
  /** The SKI it carries (for issuing under it). */
  keyId: Uint8Array | undefined;
}

export const KU = x509.KeyUsageFlags;
export const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', any: '2.5.29.37.0', codeSigning: '1.3.6.1.5.5.7.3.3' } as const;

const SIG_OIDS: Record<string, Record<string, string>> = {
  ec: { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3', sha512: '1.2.840.10045.4.3.4', sha1: '1.2.840.10045.4.1' },
  rsa: { sha256: '1.2.840.113549.1.1.11', sha384: '1.2.840.113549.1.1.12', sha512: '1.2.840.113549.1.1.13', sha1: '1.2.840.113549.1.1.5', md5: '1.2.840.113549.1.1.4' },
};
const PSS_SHA256 = '304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120';

function algorithm(key: TestKey, kind: SignatureKind): asn.AlgorithmIdentifier {
  const type = key.privateKey.asymmetricKeyType!;
  if (type === 'ed25519') return new asn.AlgorithmIdentifier({ algorithm: '1.3.101.112' });
  if (kind === 'pss-sha256') return AsnConvert.parse(Buffer.from(PSS_SHA256, 'hex'), asn.AlgorithmIdentifier);
  const oid = SIG_OIDS[type]?.[kind];
  if (!oid) throw new Error(`no ${kind} signature for a ${type} key`);
  return new asn.AlgorithmIdentifier({ algorithm: oid, ...(type === 'rsa' ? { parameters: null } : {}) });
}

function signWith(key: TestKey, kind: SignatureKind, data: Uint8Array): Buffer {
  const type = key.privateKey.asymmetricKeyType;
  if (type === 'ed25519') return sign(null, data, key.privateKey);
  if (kind === 'pss-sha256') return sign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return sign(kind, data, key.privateKey);
}

function generalName(n: NameSpec): asn.GeneralName {
  if ('dns' in n) return new asn.GeneralName({ dNSName: n.dns });
  if ('ip' in n) return new asn.GeneralName({ iPAddress: n.ip });
  if ('email' in n) return new asn.GeneralName({ rfc822Name: n.email });
  if ('uri' in n) return new asn.GeneralName({ uniformResourceIdentifier: n.uri });
  if ('dirname' in n) return new asn.GeneralName({ directoryName: AsnConvert.parse(new x509.Name(n.dirname).toArrayBuffer(), asn.Name) });
  if ('registeredId' in n) return new asn.GeneralName({ registeredID: n.registeredId });
  throw new Error('ipRaw is encoded by rawGeneralName');
}

/** DER of one GeneralName; iPAddress from raw bytes is built by hand (the library would normalise it). */
function generalNameDer(n: NameSpec): Uint8Array {
  if ('ipRaw' in n) return Uint8Array.from([0x87, n.ipRaw.length, ...n.ipRaw]);
  return new Uint8Array(AsnConvert.serialize(generalName(n)));
}

/** A DER TLV with `tag` around already-encoded parts (short and long lengths). */
export function derSequence(tag: number, parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Uint8Array.from([tag, ...len, ...body]);
}

function nameConstraintsDer(nc: { permitted?: NameSpec[]; excluded?: NameSpec[] }): Uint8Array {
  const subtrees = (tag: number, names: NameSpec[]): Uint8Array => derSequence(tag, names.map((n) => derSequence(0x30, [generalNameDer(n)])));
  const parts: Uint8Array[] = [];
  if (nc.permitted) parts.push(subtrees(0xa0, nc.permitted));
  if (nc.excluded) parts.push(subtrees(0xa1, nc.excluded));
  return derSequence(0x30, parts);
}

function extension(oid: string, critical: boolean, value: Uint8Array | ArrayBuffer): asn.Extension {
  return new asn.Extension({ extnID: oid, critical, extnValue: new OctetString(value) });
}

/** Issues one certificate per `spec`. Synchronous and in-process. */
export function issue(spec: CertSpec): TestCertificate {
  const key = spec.key ?? makeKey('p256');
  const issuerKey = spec.issuer?.key ?? key;
  const profile = spec.profile ?? 'leaf';
  const now = Date.now();
  const exts: asn.Extension[] = [];
  const bc = spec.basicConstraints === undefined ? (profile === 'ca' ? { ca: true, critical: true } : { ca: false, critical: true }) : spec.basicConstraints;
  if (bc) exts.push(AsnConvert.parse(new x509.BasicConstraintsExtension(bc.ca, bc.pathLen, bc.critical ?? true).rawData, asn.Extension));
  const ku = spec.keyUsage === undefined ? { flags: profile === 'ca' ? KU.keyCertSign | KU.cRLSign : KU.digitalSignature, critical: true } : spec.keyUsage;
  if (ku) exts.push(AsnConvert.parse(new x509.KeyUsagesExtension(ku.flags, ku.critical ?? true).rawData, asn.Extension));
  const eku = spec.eku === undefined ? (profile === 'leaf' ? [EKU.serverAuth] : null) : spec.eku;
  if (eku) exts.push(extension('2.5.29.37', false, AsnConvert.serialize(new asn.ExtendedKeyUsage(eku))));
  const san = spec.san === undefined ? (spec.names ?? (profile === 'leaf' ? ['app.example.com'] : null))?.map((dns) => ({ dns }) as NameSpec) ?? null : spec.san;
  if (san) exts.push(extension('2.5.29.17', false, derSequence(0x30, san.map(generalNameDer))));
  if (spec.nameConstraints) {
    const nc = spec.nameConstraints;
    exts.push(extension('2.5.29.30', nc.critical ?? true, 'raw' in nc ? nc.raw : nameConstraintsDer(nc)));
  }
  const ski = spec.ski === undefined ? key.keyId : spec.ski;
  if (ski) exts.push(extension('2.5.29.14', false, AsnConvert.serialize(new asn.SubjectKeyIdentifier(ski))));
  const aki = spec.aki === undefined ? (spec.issuer ? spec.issuer.keyId : undefined) : spec.aki;
  if (aki) exts.push(extension('2.5.29.35', false, AsnConvert.serialize(new asn.AuthorityKeyIdentifier({ keyIdentifier: new asn.KeyIdentifier(aki) }))));
  for (const e of spec.extra ?? []) exts.push(extension(e.oid, e.critical, e.value));

  const sigKind = spec.signature ?? 'sha256';
  const alg = algorithm(issuerKey, sigKind);
  const name = (dn: string): asn.Name => AsnConvert.parse(new x509.Name(dn).toArrayBuffer(), asn.Name);
  const serial = spec.serial ?? Uint8Array.from([0x01, ...createHash('sha256').update(`${spec.subject}${Math.random()}`).digest().subarray(0, 15)]);
  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: serial.buffer.slice(serial.byteOffset, serial.byteOffset + serial.byteLength) as ArrayBuffer,
    signature: spec.tbsAlgorithmHex ? AsnConvert.parse(Buffer.from(spec.tbsAlgorithmHex, 'hex'), asn.AlgorithmIdentifier) : alg,
    issuer: name(spec.issuer?.subject ?? spec.subject),
    validity: new asn.Validity({ notBefore: spec.notBefore ?? new Date(now - DAY), notAfter: spec.notAfter ?? new Date(now + 90 * DAY) }),
    subject: name(spec.subject),
    subjectPublicKeyInfo: AsnConvert.parse(spec.spki ?? key.publicKey.export({ type: 'spki', format: 'der' }), asn.SubjectPublicKeyInfo),
    ...(exts.length ? { extensions: new asn.Extensions(exts) } : {}),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const signature = signWith(issuerKey, sigKind, tbsDer);
  const cert = new asn.Certificate({ tbsCertificate: tbs, signatureAlgorithm: alg, signatureValue: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength) as ArrayBuffer });
  const der = new Uint8Array(AsnConvert.serialize(cert));
  return { subject: spec.subject, der, pem: toPem(der), key, keyId: ski ?? undefined };
}

/** DER as one PEM CERTIFICATE block. */
export function toPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** Trust anchors made of exactly these certificates. */
export function anchorsOf(...certs: TestCertificate[]): TrustAnchors {
  return { pem: certs.map((c) => c.pem).join(''), count: certs.length, sources: ['test'] };
}

/** PEM of several certificates, in the order given. */
export function bundle(...certs: TestCertificate[]): string {
  return certs.map((c) => c.pem).join('');
}
