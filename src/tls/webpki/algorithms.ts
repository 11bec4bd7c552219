/**
 * Which signature algorithms and public keys the WebPKI accepts, and the
 * signature check itself (node:crypto).
 *
 * Signature algorithms are matched on the exact DER of the AlgorithmIdentifier,
 * as the Baseline Requirements section 7.1.3.2 lists them and as Chromium and
 * rustls-webpki compare them: RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256,
 * SHA-384 or SHA-512, ECDSA with SHA-256, SHA-384 or SHA-512, and Ed25519.
 * MD5, SHA-1 and anything else are refused before any signature is checked.
 *
 * Keys (section 6.1.5 and 7.1.3.1): RSA (rsaEncryption) of 2048 to 8192 bits
 * (the upper bound, Chromium's too, keeps a hostile key from costing seconds),
 * ECDSA on P-256, P-384 or P-521, and Ed25519.
 */
import { constants, verify } from 'node:crypto';
import type { KeyInfo } from './certificate.js';
import { TAG, children, oidText, readWhole, valueOf } from './der.js';

export interface SignatureScheme {
  /** For messages: `ecdsa-with-SHA256`, ... */
  name: string;
  keyType: 'rsa' | 'ec' | 'ed25519';
  /** The digest node:crypto is given; null for Ed25519. */
  hash: string | null;
  pss?: { saltLength: number };
}

const RSA_NULL = (oidHex: string, name: string, hash: string): [string, SignatureScheme] => [`300d0609${oidHex}0500`, { name, keyType: 'rsa', hash }];
// Chromium also takes these with the NULL parameters left out; some old CAs did.
const RSA_ABSENT = (oidHex: string, name: string, hash: string): [string, SignatureScheme] => [`300b0609${oidHex}`, { name, keyType: 'rsa', hash }];
const PSS = (hashOid: string, saltHex: string, name: string, hash: string, saltLength: number): [string, SignatureScheme] => [
  `304106092a864886f70d01010a3034a00f300d0609${hashOid}0500a11c301a06092a864886f70d010108300d0609${hashOid}0500a2030201${saltHex}`,
  { name, keyType: 'rsa', hash, pss: { saltLength } },
];

const ALLOWED = new Map<string, SignatureScheme>([
  RSA_NULL('2a864886f70d01010b', 'sha256WithRSAEncryption', 'sha256'),
  RSA_NULL('2a864886f70d01010c', 'sha384WithRSAEncryption', 'sha384'),
  RSA_NULL('2a864886f70d01010d', 'sha512WithRSAEncryption', 'sha512'),
  RSA_ABSENT('2a864886f70d01010b', 'sha256WithRSAEncryption', 'sha256'),
  RSA_ABSENT('2a864886f70d01010c', 'sha384WithRSAEncryption', 'sha384'),
  RSA_ABSENT('2a864886f70d01010d', 'sha512WithRSAEncryption', 'sha512'),
  PSS('608648016503040201', '20', 'RSASSA-PSS with SHA-256', 'sha256', 32),
  PSS('608648016503040202', '30', 'RSASSA-PSS with SHA-384', 'sha384', 48),
  PSS('608648016503040203', '40', 'RSASSA-PSS with SHA-512', 'sha512', 64),
  ['300a06082a8648ce3d040302', { name: 'ecdsa-with-SHA256', keyType: 'ec', hash: 'sha256' }],
  ['300a06082a8648ce3d040303', { name: 'ecdsa-with-SHA384', keyType: 'ec', hash: 'sha384' }],
  ['300a06082a8648ce3d040304', { name: 'ecdsa-with-SHA512', keyType: 'ec', hash: 'sha512' }],
  ['300506032b6570', { name: 'Ed25519', keyType: 'ed25519', hash: null }],
]);

const KNOWN_NAMES: Record<string, string> = {
  '1.2.840.113549.1.1.2': 'md2WithRSAEncryption',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.14': 'sha224WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10045.4.3.1': 'ecdsa-with-SHA224',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.3.101.112': 'Ed25519',
  '1.2.840.10040.4.3': 'dsa-with-sha1',
  '2.16.840.1.101.3.4.3.2': 'dsa-with-sha256',
  '1.3.101.113': 'Ed448',
};

/** The algorithm's name for messages: a known name, else its OID, else "an unreadable AlgorithmIdentifier". */
export function algorithmName(algId: Uint8Array): string {
  const scheme = ALLOWED.get(Buffer.from(algId).toString('hex'));
  if (scheme) return scheme.name;
  try {
    const seq = readWhole(algId, TAG.SEQUENCE, 'AlgorithmIdentifier');
    const oid = children(algId, seq)[0];
    if (oid?.tag !== TAG.OID) return 'an unreadable AlgorithmIdentifier';
    const text = oidText(valueOf(algId, oid));
    const known = KNOWN_NAMES[text];
    if (known === undefined) return `OID ${text}`;
    const allowedOid = [...ALLOWED.values()].some((s) => s.name === known || (known === 'RSASSA-PSS' && s.pss !== undefined));
    return allowedOid ? `${known} with parameters the Baseline Requirements do not allow` : known;
  } catch {
    return 'an unreadable AlgorithmIdentifier';
  }
}

/** The scheme for an allowed AlgorithmIdentifier (whole DER), or undefined when the WebPKI does not allow it. */
export function signatureScheme(algId: Uint8Array): SignatureScheme | undefined {
  return ALLOWED.get(Buffer.from(algId).toString('hex'));
}

/** A key the WebPKI refuses, and why. */
export interface KeyProblem {
  reason: 'key-rsa-too-small' | 'key-rsa-too-large' | 'key-curve-not-allowed' | 'key-type-not-allowed';
  detail: string;
}

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;

/** Why `key` is not allowed in the WebPKI, or undefined when it is. */
export function keyProblem(key: KeyInfo): KeyProblem | undefined {
  switch (key.type) {
    case 'rsa': {
      const bits = key.bits ?? 0;
      if (bits < MIN_RSA_BITS) return { reason: 'key-rsa-too-small', detail: `an RSA key of ${bits} bits (at least ${MIN_RSA_BITS} are required)` };
      if (bits > MAX_RSA_BITS) return { reason: 'key-rsa-too-large', detail: `an RSA key of ${bits} bits (padlock accepts at most ${MAX_RSA_BITS})` };
      return undefined;
    }
    case 'ec': {
      const curve = key.curve;
      return curve !== undefined && CURVES[curve] ? undefined : { reason: 'key-curve-not-allowed', detail: `an ECDSA key on ${curve ?? 'explicit curve parameters'} (only P-256, P-384 and P-521 are allowed)` };
    }
    case 'ed25519':
      return undefined;
    default:
      return { reason: 'key-type-not-allowed', detail: `a key of type ${key.type} (only RSA, ECDSA and Ed25519 are allowed)` };
  }
}

/** A short description of a key for messages: `ecdsa P-256`, `rsa 2048`. */
export function keyLabel(key: KeyInfo): string {
  if (key.type === 'ec') return `ecdsa ${CURVES[key.curve ?? ''] ?? key.curve ?? 'unknown curve'}`;
  if (key.type === 'rsa' || key.type === 'rsa-pss') return `${key.type} ${key.bits ?? '?'}`;
  return key.type;
}

/**
 * Whether `signature` over `data` verifies with `key` under `scheme`. False,
 * never a throw, for a key of the wrong type or a signature that is not even
 * well-formed.
 */
export function verifySignature(scheme: SignatureScheme, info: KeyInfo, data: Uint8Array, signature: Uint8Array): boolean {
  if (info.type !== scheme.keyType) return false;
  const key = info.key;
  try {
    // A bare KeyObject where the defaults fit (PKCS #1 v1.5 padding, DER ECDSA signatures): node:crypto takes it measurably faster than an options object.
    if (scheme.pss) return verify(scheme.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pss.saltLength }, signature);
    return verify(scheme.hash, data, key, signature);
  } catch {
    return false;
  }
}
