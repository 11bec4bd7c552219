/**
 * Reading certificates: what a PEM says, in plain values.
 *
 * Pure functions over strings; no files, no network. Everything that cannot be
 * read as an X.509 certificate becomes a `PadlockError('CERT_UNPARSEABLE')`.
 */
import { X509Certificate } from 'node:crypto';
import { canonicalIp } from '../ip.js';
import { PadlockError } from '../errors.js';

/** The facts about one certificate that padlock prints, logs and decides on. */
export interface CertSummary {
  /** The subject common name, or the whole subject when it has no CN. */
  subject: string;
  /**
   * The DNS names (lowercase) and IP addresses (canonical text: dotted IPv4,
   * RFC 5952 IPv6) of the subjectAltName, in certificate order.
   */
  names: string[];
  /** The issuer common name, else its organization, else the whole issuer. */
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** Hex, uppercase, as OpenSSL prints it. */
  serialNumber: string;
  /** `ecdsa P-256`, `rsa 2048`, `ed25519`, ... */
  keyType: string;
  /** SHA-256 over the DER, colon-separated uppercase hex. */
  fingerprint256: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/**
 * Every CERTIFICATE block in `bundle`, in order, each normalised to end with a
 * newline. Other blocks (keys, parameters) and text between blocks are ignored;
 * an input without any certificate block gives `[]`.
 */
export function splitPem(bundle: string): string[] {
  return (bundle.match(PEM_CERT) ?? []).map((block) => block.replace(/\r\n/g, '\n') + '\n');
}

/**
 * Parses one PEM certificate (the first block when given several).
 * @throws PadlockError CERT_UNPARSEABLE when there is no block or it does not parse;
 *   `what` names the input in the message.
 */
export function parseCertificate(pem: string, what = 'the certificate input'): X509Certificate {
  const first = splitPem(pem)[0];
  if (first === undefined) {
    throw new PadlockError('CERT_UNPARSEABLE', `${what} holds no PEM CERTIFICATE block`);
  }
  try {
    return new X509Certificate(first);
  } catch (err) {
    throw new PadlockError('CERT_UNPARSEABLE', `${what} is not a readable X.509 certificate (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/** Summarises the first certificate in `pem`. @throws PadlockError CERT_UNPARSEABLE on garbage. */
export function describeCertificate(pem: string | X509Certificate): CertSummary {
  const cert = typeof pem === 'string' ? parseCertificate(pem) : pem;
  return {
    subject: displayName(cert.subject, ['CN']),
    names: sanNames(cert),
    issuer: displayName(cert.issuer, ['CN', 'O']),
    notBefore: certDate(cert, 'from'),
    notAfter: certDate(cert, 'to'),
    serialNumber: cert.serialNumber.toUpperCase(),
    keyType: keyType(cert),
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * The certificate's validity period (and serial) alone: what a caller deciding on dates
 * needs, without describeCertificate's names, key details and fingerprint
 * (the daemon reads it for every stored certificate at start).
 * @throws PadlockError CERT_UNPARSEABLE on garbage.
 */
export function certificateValidity(pem: string | X509Certificate): { notBefore: Date; notAfter: Date; serialNumber: string } {
  const cert = typeof pem === 'string' ? parseCertificate(pem) : pem;
  return { notBefore: certDate(cert, 'from'), notAfter: certDate(cert, 'to'), serialNumber: cert.serialNumber.toUpperCase() };
}

/** Whole days from `now` until `notAfter`, rounded down; negative once expired. */
export function daysLeft(notAfter: Date, now: Date): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}

/** A short, readable name for a certificate: its subject CN, else the whole subject. */
export function certificateName(cert: X509Certificate): string {
  return displayName(cert.subject, ['CN']);
}

/**
 * Node prints distinguished names one attribute per line (`CN=x\nO=y`). Picks the
 * first attribute in `prefer` that is present, else joins all of them.
 */
function displayName(dn: string, prefer: string[]): string {
  const parts = dn.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const attr of prefer) {
    const hit = parts.find((p) => p.startsWith(`${attr}=`));
    if (hit !== undefined) return hit.slice(attr.length + 1);
  }
  return parts.join(', ');
}

function sanNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  // Node quotes entries that contain separators (`DNS:"a, b"`), so split on the
  // entry boundaries only outside quotes.
  const entries = san.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  const names: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry.startsWith('IP Address:')) {
      const ip = canonicalIp(entry.slice(11));
      if (ip) names.push(ip);
      continue;
    }
    if (!entry.startsWith('DNS:')) continue;
    let value = entry.slice(4);
    if (value.startsWith('"')) value = JSON.parse(value) as string;
    names.push(value.toLowerCase());
  }
  return names;
}

function certDate(cert: X509Certificate, which: 'from' | 'to'): Date {
  // validFromDate/validToDate arrived in Node 22.10; the string form parses everywhere.
  const asDate = which === 'from' ? cert.validFromDate : cert.validToDate;
  if (asDate instanceof Date) return asDate;
  return new Date(which === 'from' ? cert.validFrom : cert.validTo);
}

const CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  'P-256': 'P-256',
  secp384r1: 'P-384',
  'P-384': 'P-384',
  secp521r1: 'P-521',
  'P-521': 'P-521',
};

function keyType(cert: X509Certificate): string {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `ecdsa ${CURVES[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve'}`;
    case 'rsa':
    case 'rsa-pss':
      return `${key.asymmetricKeyType} ${details.modulusLength ?? '?'}`;
    default:
      return key.asymmetricKeyType ?? 'unknown';
  }
}

/**
 * Whether `parent` issued `child`: the names and key identifiers line up
 * (OpenSSL's X509_check_issued) and the signature verifies with the parent's
 * key. False, never a throw, for a pair that cannot be compared.
 */
export function isIssuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}
