/**
 * One X.509 certificate, parsed defensively into plain values (RFC 5280
 * section 4.1), for the path builder and the checks.
 *
 * The outer structure (Certificate, TBSCertificate, names, validity, the list
 * of extensions, and GeneralNames) is read with the strict DER reader in
 * der.ts, which keeps the exact bytes that signatures and name chaining need.
 * The bodies of basicConstraints, keyUsage, extendedKeyUsage and the key
 * identifiers are decoded with @peculiar/asn1-x509; GeneralNames by
 * general-names.ts. Whatever fails there is never thrown: a broken
 * certificate throws {@link CertificateParseError} (the caller turns it into
 * CERT_UNPARSEABLE), and a broken extension becomes a `defect` on an
 * otherwise usable certificate, which rejects any path through it.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier } from '@peculiar/asn1-x509';
import { DerError, TAG, children, contextTag, encodingOf, oidText, readBoolean, readSmallInteger, readTime, readTlv, readWhole, valueOf, type Tlv } from './der.js';
import { readGeneralNames, readNameConstraints, type GeneralName, type NameConstraintsValue } from './general-names.js';

export type { GeneralName, NameConstraintsValue, Subtree } from './general-names.js';

/** The largest certificate accepted, in bytes of DER (a limit against hostile input; real ones are under 10 KiB). */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  authorityKeyIdentifier: '2.5.29.35',
  subjectKeyIdentifier: '2.5.29.14',
  certificatePolicies: '2.5.29.32',
  commonName: '2.5.4.3',
  emailAddress: '1.2.840.113549.1.9.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

/** keyUsage bits (RFC 5280 section 4.2.1.3), as flags. */
export const KU = { digitalSignature: 1, keyEncipherment: 4, keyCertSign: 32 } as const;

export interface RawExtension {
  critical: boolean;
  value: Uint8Array;
}

/** A problem found while decoding an otherwise readable certificate. */
export interface CertificateDefect {
  /** The extension at fault. */
  oid: string;
  reason: 'extension-malformed' | 'extension-duplicate' | 'name-constraints-malformed' | 'name-constraints-unsupported';
  detail: string;
}

/** A certificate's fields as values. Byte fields are views into `der`. */
export interface CertificateFields {
  der: Uint8Array;
  /** SHA-256 of the DER, lowercase hex: the certificate's identity. */
  fingerprint: string;
  version: number;
  tbs: Uint8Array;
  /** The whole AlgorithmIdentifier inside tbsCertificate. */
  tbsSignatureAlgorithm: Uint8Array;
  /** The whole outer AlgorithmIdentifier. */
  signatureAlgorithm: Uint8Array;
  /** The signature value (BIT STRING content after its unused-bits octet). */
  signature: Uint8Array;
  /** The whole encoded issuer Name. */
  issuer: Uint8Array;
  /** The whole encoded subject Name. */
  subject: Uint8Array;
  /** `issuer`/`subject` as hex, for indexes. */
  issuerKey: string;
  subjectKey: string;
  /** Each RDN (SET) of the subject, encoded, in order: directoryName constraints compare these. */
  subjectRdns: Uint8Array[];
  commonNames: string[];
  organizations: string[];
  /** emailAddress attributes of the subject (RFC 5280 section 4.2.1.10 constrains them as rfc822Name). */
  subjectEmails: string[];
  issuerCommonNames: string[];
  issuerOrganizations: string[];
  /** The serialNumber INTEGER's value octets. */
  serial: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** The whole SubjectPublicKeyInfo. */
  spki: Uint8Array;
  extensions: ReadonlyMap<string, RawExtension>;
  /** Extensions that appear more than once (RFC 5280 section 4.2 forbids it); only the first is kept. */
  duplicateExtensions: string[];
}

/** A public key with its type and size read once. */
export interface KeyInfo {
  key: KeyObject;
  /** node:crypto's asymmetricKeyType: `rsa`, `ec`, `ed25519`, ... */
  type: string;
  /** The OpenSSL curve name, for EC keys. */
  curve?: string;
  /** The modulus length, for RSA keys. */
  bits?: number;
}

export interface BasicConstraintsValue {
  ca: boolean;
  pathLen?: number;
  critical: boolean;
}

export interface ParsedCertificate extends CertificateFields {}

/**
 * A parsed certificate. Extension bodies are decoded on first use, so a
 * decoy that never becomes a candidate costs only the structure parse; a
 * body that does not decode reads as absent and is listed in `defects`.
 */
export class ParsedCertificate {
  private readonly decoded = new Map<string, { value: unknown; defects: CertificateDefect[] }>();
  private key: KeyInfo | null | undefined;

  constructor(fields: CertificateFields) {
    Object.assign(this, fields);
  }

  get basicConstraints(): BasicConstraintsValue | undefined {
    return this.decode(OID.basicConstraints) as BasicConstraintsValue | undefined;
  }
  /** keyUsage bits as {@link KU} flags. */
  get keyUsage(): number | undefined {
    return this.decode(OID.keyUsage) as number | undefined;
  }
  get extKeyUsage(): string[] | undefined {
    return this.decode(OID.extKeyUsage) as string[] | undefined;
  }
  get subjectAltName(): GeneralName[] | undefined {
    return this.decode(OID.subjectAltName) as GeneralName[] | undefined;
  }
  get nameConstraints(): NameConstraintsValue | undefined {
    return this.decode(OID.nameConstraints) as NameConstraintsValue | undefined;
  }
  /** Present when the authorityKeyIdentifier extension is; `keyId` only when it carries one. */
  get authorityKeyId(): { keyId?: Uint8Array } | undefined {
    return this.decode(OID.authorityKeyIdentifier) as { keyId?: Uint8Array } | undefined;
  }
  get subjectKeyId(): Uint8Array | undefined {
    return this.decode(OID.subjectKeyIdentifier) as Uint8Array | undefined;
  }
  /**
   * The public key and what node:crypto says about it, read once (its
   * getters call into C++ on every access); undefined when node:crypto
   * cannot read the SubjectPublicKeyInfo.
   */
  keyInfo(): KeyInfo | undefined {
    if (this.key === undefined) {
      try {
        const key = createPublicKey({ key: Buffer.from(this.spki), format: 'der', type: 'spki' });
        const details = key.asymmetricKeyDetails ?? {};
        this.key = {
          key,
          type: key.asymmetricKeyType ?? 'unknown',
          ...(details.namedCurve !== undefined ? { curve: details.namedCurve } : {}),
          ...(details.modulusLength !== undefined ? { bits: details.modulusLength } : {}),
        };
      } catch {
        this.key = null;
      }
    }
    return this.key ?? undefined;
  }

  /** Whether issuer and subject are the same bytes (RFC 5280 "self-issued"). */
  get selfIssued(): boolean {
    return this.issuerKey === this.subjectKey;
  }

  /** Every problem in the extensions: decodes all of them. */
  get defects(): CertificateDefect[] {
    const out: CertificateDefect[] = this.duplicateExtensions.map((oid) => ({
      oid,
      reason: 'extension-duplicate' as const,
      detail: `extension ${EXTENSION_NAMES[oid] ?? oid} appears more than once (RFC 5280 section 4.2)`,
    }));
    for (const oid of Object.keys(EXTENSION_NAMES)) {
      this.decode(oid);
      out.push(...(this.decoded.get(oid)?.defects ?? []));
    }
    return out;
  }

  private decode(oid: string): unknown {
    const raw = this.extensions.get(oid);
    if (raw === undefined) return undefined;
    let hit = this.decoded.get(oid);
    if (hit === undefined) {
      try {
        hit = decodeExtension(oid, raw.value, raw.critical);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        hit = { value: undefined, defects: [{ oid, reason: 'extension-malformed', detail: `extension ${EXTENSION_NAMES[oid] ?? oid} does not decode (${why.slice(0, 200)})` }] };
      }
      this.decoded.set(oid, hit);
    }
    return hit.value;
  }
}

/** Why a certificate cannot be read at all. */
export class CertificateParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateParseError';
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Bytes (or lowercase hex) as `AB:12:...`, the way OpenSSL and `CertSummary.fingerprint256` print them. */
export function colonHex(value: Uint8Array | string): string {
  const text = typeof value === 'string' ? value : hex(value);
  return text.toUpperCase().replace(/(..)(?=.)/g, '$1:');
}

/**
 * Parses one DER certificate.
 * @throws CertificateParseError when it is not a DER X.509 certificate (never another error).
 */
/**
 * The subject's bytes (as `ParsedCertificate.subjectKey`) read without
 * parsing the rest: what an index of trust anchors needs for each of its
 * ~300 certificates, of which one path uses one or two.
 * @throws DerError when the structure up to the subject is not DER X.509.
 */
export function peekSubjectKey(der: Uint8Array): string {
  if (der.length > MAX_CERTIFICATE_BYTES) throw new DerError(`it is larger than ${MAX_CERTIFICATE_BYTES / 1024} KiB`);
  const cert = readWhole(der, TAG.SEQUENCE, 'Certificate');
  const tbs = readTlv(der, cert.valueStart, cert.end);
  if (tbs.tag !== TAG.SEQUENCE) throw new DerError('tbsCertificate is not a SEQUENCE');
  let pos = tbs.valueStart;
  let field = readTlv(der, pos, tbs.end);
  if (field.tag === contextTag(0, true)) field = readTlv(der, (pos = field.end), tbs.end);
  // serialNumber, signature, issuer, validity, then subject.
  for (let skip = 0; skip < 4; skip++) field = readTlv(der, (pos = field.end), tbs.end);
  if (field.tag !== TAG.SEQUENCE) throw new DerError('tbsCertificate: subject missing or of the wrong type');
  return hex(encodingOf(der, field));
}

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  if (der.length > MAX_CERTIFICATE_BYTES) throw new CertificateParseError(`it is larger than ${MAX_CERTIFICATE_BYTES / 1024} KiB`);
  try {
    return parseStructure(der);
  } catch (err) {
    if (err instanceof DerError) throw new CertificateParseError(`it is not DER X.509 (${err.message})`);
    if (err instanceof CertificateParseError) throw err;
    // Anything else is a bug on an input nobody anticipated: still a rejection, never a crash.
    throw new CertificateParseError(`it could not be read (${err instanceof Error ? err.message : String(err)})`);
  }
}

function parseStructure(der: Uint8Array): ParsedCertificate {
  const cert = readWhole(der, TAG.SEQUENCE, 'Certificate');
  const parts = children(der, cert);
  if (parts.length !== 3) throw new DerError('Certificate must have 3 fields');
  const [tbsTlv, algTlv, sigTlv] = parts as [Tlv, Tlv, Tlv];
  if (tbsTlv.tag !== TAG.SEQUENCE || algTlv.tag !== TAG.SEQUENCE || sigTlv.tag !== TAG.BIT_STRING) throw new DerError('Certificate fields have the wrong types');
  const sigBits = valueOf(der, sigTlv);
  if (sigBits.length < 1 || sigBits[0] !== 0) throw new DerError('signature BIT STRING has unused bits');

  const tbsFields = children(der, tbsTlv);
  let i = 0;
  let version = 1;
  if (tbsFields[i]?.tag === contextTag(0, true)) {
    const inner = valueOf(der, tbsFields[i]!);
    const v = readSmallInteger(inner, readWhole(inner, TAG.INTEGER, 'version'));
    if (v > 2) throw new DerError(`unknown version ${v}`);
    version = v + 1;
    i++;
  }
  const next = (tag: number, what: string): Tlv => {
    const f = tbsFields[i++];
    if (f === undefined || f.tag !== tag) throw new DerError(`tbsCertificate: ${what} missing or of the wrong type`);
    return f;
  };
  const serial = next(TAG.INTEGER, 'serialNumber');
  if (serial.end - serial.valueStart > 21) throw new DerError('serialNumber longer than 20 octets');
  const tbsAlg = next(TAG.SEQUENCE, 'signature');
  const issuer = next(TAG.SEQUENCE, 'issuer');
  const validity = next(TAG.SEQUENCE, 'validity');
  const subject = next(TAG.SEQUENCE, 'subject');
  const spki = next(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  let extsTlv: Tlv | undefined;
  for (const optional of [contextTag(1, false), contextTag(2, false), contextTag(3, true)]) {
    if (tbsFields[i]?.tag === optional) {
      if (optional === contextTag(3, true)) extsTlv = tbsFields[i];
      i++;
    }
  }
  if (i !== tbsFields.length) throw new DerError('tbsCertificate has unexpected fields');
  if (extsTlv !== undefined && version !== 3) throw new DerError('extensions in a certificate that is not version 3');

  const times = children(der, validity);
  if (times.length !== 2) throw new DerError('validity must have 2 times');
  const subjectInfo = readName(der, subject, 'subject');
  const issuerInfo = readName(der, issuer, 'issuer');

  const fields: CertificateFields = {
    der,
    fingerprint: createHash('sha256').update(der).digest('hex'),
    version,
    tbs: encodingOf(der, tbsTlv),
    tbsSignatureAlgorithm: encodingOf(der, tbsAlg),
    signatureAlgorithm: encodingOf(der, algTlv),
    signature: sigBits.subarray(1),
    issuer: encodingOf(der, issuer),
    subject: encodingOf(der, subject),
    issuerKey: hex(encodingOf(der, issuer)),
    subjectKey: hex(encodingOf(der, subject)),
    serial: valueOf(der, serial),
    subjectRdns: subjectInfo.rdns,
    commonNames: subjectInfo.commonNames,
    organizations: subjectInfo.organizations,
    subjectEmails: subjectInfo.emails,
    issuerCommonNames: issuerInfo.commonNames,
    issuerOrganizations: issuerInfo.organizations,
    notBefore: readTime(der, times[0]!),
    notAfter: readTime(der, times[1]!),
    spki: encodingOf(der, spki),
    extensions: new Map(),
    duplicateExtensions: [],
  };
  if (extsTlv !== undefined) readExtensions(der, extsTlv, fields);
  return new ParsedCertificate(fields);
}

// The value octets of the attribute types padlock reads.
const CN_OID = '550403';
const O_OID = '55040a';
const EMAIL_OID = '2a864886f70d010901';

interface NameInfo {
  rdns: Uint8Array[];
  commonNames: string[];
  organizations: string[];
  emails: string[];
}

/** A Name's RDNs (encoded) and the attributes padlock reads. @throws DerError when it is not a Name. */
function readName(der: Uint8Array, name: Tlv, what: string): NameInfo {
  const info: NameInfo = { rdns: [], commonNames: [], organizations: [], emails: [] };
  for (const rdn of children(der, name)) {
    if (rdn.tag !== TAG.SET) throw new DerError(`${what} RDN is not a SET`);
    info.rdns.push(encodingOf(der, rdn));
    for (const atv of children(der, rdn)) {
      if (atv.tag !== TAG.SEQUENCE) throw new DerError(`${what} attribute is not a SEQUENCE`);
      const parts = children(der, atv);
      const [type, value] = parts;
      if (parts.length !== 2 || type!.tag !== TAG.OID) throw new DerError(`${what} attribute is not a type and a value`);
      const oid = hex(valueOf(der, type!));
      if (oid === CN_OID) info.commonNames.push(directoryString(der, value!));
      else if (oid === O_OID) info.organizations.push(directoryString(der, value!));
      else if (oid === EMAIL_OID) info.emails.push(directoryString(der, value!));
    }
  }
  return info;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A DirectoryString (or the IA5String of emailAddress) as text. @throws DerError for another type or bad encoding. */
function directoryString(der: Uint8Array, tlv: Tlv): string {
  const v = valueOf(der, tlv);
  switch (tlv.tag) {
    case TAG.UTF8_STRING:
      try {
        return utf8.decode(v);
      } catch {
        throw new DerError('UTF8String is not UTF-8');
      }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
      for (const b of v) if (b > 0x7f) throw new DerError('PrintableString or IA5String with a byte above 0x7f');
      return Buffer.from(v).toString('latin1');
    case TAG.TELETEX_STRING:
      return Buffer.from(v).toString('latin1');
    case TAG.BMP_STRING: {
      if (v.length % 2 !== 0) throw new DerError('BMPString of odd length');
      const swapped = Buffer.from(v);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    case TAG.UNIVERSAL_STRING: {
      if (v.length % 4 !== 0) throw new DerError('UniversalString length is not a multiple of 4');
      let out = '';
      for (let i = 0; i < v.length; i += 4) {
        const cp = ((v[i]! << 24) | (v[i + 1]! << 16) | (v[i + 2]! << 8) | v[i + 3]!) >>> 0;
        if (cp > 0x10ffff) throw new DerError('UniversalString code point out of range');
        out += String.fromCodePoint(cp);
      }
      return out;
    }
    default:
      throw new DerError(`attribute value of tag 0x${tlv.tag.toString(16)} is not a string`);
  }
}

function readExtensions(der: Uint8Array, extsTlv: Tlv, fields: CertificateFields): void {
  const body = valueOf(der, extsTlv);
  const list = readWhole(body, TAG.SEQUENCE, 'extensions');
  const extensions = fields.extensions as Map<string, RawExtension>;
  const entries = children(body, list);
  if (entries.length === 0) throw new DerError('extensions is an empty SEQUENCE');
  for (const ext of entries) {
    if (ext.tag !== TAG.SEQUENCE) throw new DerError('extension is not a SEQUENCE');
    const f = children(body, ext);
    const oidTlv = f[0];
    const valueTlv = f[f.length - 1];
    if (f.length < 2 || f.length > 3 || oidTlv?.tag !== TAG.OID || valueTlv?.tag !== TAG.OCTET_STRING) {
      throw new DerError('extension is not OID, critical, OCTET STRING');
    }
    const critical = f.length === 3 ? readBoolean(body, f[1]!) : false;
    const oid = oidText(valueOf(body, oidTlv));
    if (extensions.has(oid)) fields.duplicateExtensions.push(oid);
    else extensions.set(oid, { critical, value: valueOf(body, valueTlv) });
  }
}

/** Names for messages. */
export const EXTENSION_NAMES: Record<string, string> = {
  [OID.basicConstraints]: 'basicConstraints',
  [OID.keyUsage]: 'keyUsage',
  [OID.extKeyUsage]: 'extendedKeyUsage',
  [OID.subjectAltName]: 'subjectAltName',
  [OID.nameConstraints]: 'nameConstraints',
  [OID.authorityKeyIdentifier]: 'authorityKeyIdentifier',
  [OID.subjectKeyIdentifier]: 'subjectKeyIdentifier',
  [OID.certificatePolicies]: 'certificatePolicies',
};

type Decoded = { value: unknown; defects: CertificateDefect[] };
const ok = (value: unknown): Decoded => ({ value, defects: [] });

/** Decodes one extension's value. Throws on a malformed value; the caller records it as a defect. */
function decodeExtension(oid: string, value: Uint8Array, critical: boolean): Decoded {
  switch (oid) {
    case OID.basicConstraints: {
      readWhole(value, TAG.SEQUENCE, 'basicConstraints');
      const bc = AsnConvert.parse(value, BasicConstraints);
      const pathLen = bc.pathLenConstraint;
      if (pathLen !== undefined && (!Number.isSafeInteger(pathLen) || pathLen < 0)) throw new Error('pathLenConstraint is not a non-negative integer');
      return ok({ ca: bc.cA === true, critical, ...(pathLen !== undefined ? { pathLen } : {}) } satisfies BasicConstraintsValue);
    }
    case OID.keyUsage: {
      readWhole(value, TAG.BIT_STRING, 'keyUsage');
      const bits = AsnConvert.parse(value, KeyUsage).toNumber();
      if (!Number.isFinite(bits) || bits === 0) throw new Error('keyUsage has no bit set (RFC 5280 section 4.2.1.3)');
      return ok(bits);
    }
    case OID.extKeyUsage: {
      readWhole(value, TAG.SEQUENCE, 'extendedKeyUsage');
      const usages = Array.from(AsnConvert.parse(value, ExtendedKeyUsage), String);
      if (usages.length === 0) throw new Error('extendedKeyUsage is empty');
      return ok(usages);
    }
    case OID.authorityKeyIdentifier: {
      readWhole(value, TAG.SEQUENCE, 'authorityKeyIdentifier');
      const id = AsnConvert.parse(value, AuthorityKeyIdentifier).keyIdentifier;
      return ok(id ? { keyId: new Uint8Array(id.buffer.slice(0)) } : {});
    }
    case OID.subjectKeyIdentifier: {
      readWhole(value, TAG.OCTET_STRING, 'subjectKeyIdentifier');
      const ski = AsnConvert.parse(value, SubjectKeyIdentifier);
      if (ski.byteLength === 0) throw new Error('subjectKeyIdentifier is empty');
      return ok(new Uint8Array(ski.buffer.slice(0)));
    }
    case OID.subjectAltName: {
      const names = readGeneralNames(value, readWhole(value, TAG.SEQUENCE, 'subjectAltName'), false);
      if (names.length === 0) throw new Error('subjectAltName is empty (RFC 5280 section 4.2.1.6)');
      return ok(names);
    }
    case OID.nameConstraints:
      return readNameConstraints(value);
    default:
      return ok(undefined);
  }
}
