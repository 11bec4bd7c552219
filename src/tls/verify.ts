/**
 * Certificate chain verification: padlock's own WebPKI path validator.
 *
 * The core (src/tls/webpki/) is pure: it parses certificates defensively,
 * builds paths with backtracking from the leaf to a trust anchor, and checks
 * each path against RFC 5280 as the CA/Browser Forum Baseline Requirements
 * and the browsers profile it (webpki/reasons.ts lists every check). This
 * file is the edge: it reads PEM, checks the private key and the requested
 * names, indexes the anchors once per `TrustAnchors`, and turns the outcome
 * into a `VerifyResult` or a `PadlockError` with a one-line message.
 *
 * It replaced `openssl verify` (see README, Design notes): OpenSSL's
 * verifier is not a WebPKI verifier (it accepts a CN-only leaf, SHA-1 and a
 * leaf that can sign certificates, tries only the first path it builds, and
 * calls a certificate expired at the second of its notAfter), and a process
 * per check cost about 10 ms.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import { PadlockError } from '../errors.js';
import { splitPem, type CertSummary } from './inspect.js';
import { canonicalIp } from '../ip.js';
import type { TrustAnchors } from './roots.js';
import { MAX_REPORTED_PATHS, failureDetails, pathReport, problemMessage, type Namer, type PathReport } from './verify-messages.js';
import { indexAnchors, type AnchorIndex } from './webpki/anchor-index.js';
import { colonHex, parseCertificate, type ParsedCertificate } from './webpki/certificate.js';
import { keyLabel } from './webpki/algorithms.js';
import { wholeSeconds } from './webpki/checks.js';
import { dnsNameMatches, ipText, presentedDnsNameProblem, referenceName, sameBytes } from './webpki/names.js';
import { buildPath, type Limits } from './webpki/path-builder.js';
import { REASONS, type ReasonCode, type VerifyErrorCode } from './webpki/reasons.js';

export type { VerifyErrorCode } from './webpki/reasons.js';
export type { PathReport } from './verify-messages.js';

export interface VerifyInput {
  /** PEM, leaf first; any further certificates join the intermediate pool. */
  cert: string;
  /** An unordered pool of intermediates (PEM, may be empty); extra unrelated certificates are harmless. */
  chain?: string;
  /** The private key (PEM); when given it must match the leaf. */
  key?: string;
  /** Host names (or IP literals) the leaf must cover, wildcards per RFC 9525 section 6.3. */
  names?: string[];
  roots: TrustAnchors;
  /** Verify as of this time; defaults to `clock.now()`. */
  at?: Date;
  clock?: Clock;
  /** Path-building limits (tests and benchmarks); defaults to webpki/path-builder.ts DEFAULT_LIMITS. */
  limits?: Partial<Limits>;
}

export interface VerifyResult {
  leaf: CertSummary;
  /** Leaf first, trust anchor last. */
  path: CertSummary[];
  /** Every path tried before and including the valid one (at most 20 listed), each failed one with its reason. */
  tried: PathReport[];
}

/** The most certificates padlock examines in the pool (`--chain` plus the certificates after the leaf). */
export const MAX_POOL_CERTIFICATES = 256;

/**
 * Verifies a certificate as a TLS server certificate against `roots` at one
 * instant. Resolves with the leaf and the path built when valid; otherwise
 * throws a `PadlockError` with a {@link VerifyErrorCode}, a one-line message
 * naming the certificate at fault, and in `details` the fine-grained
 * `reasonCode` (webpki/reasons.ts), the clause, every problem of the best
 * path, and each path tried with its failure.
 *
 * Never throws anything but a `PadlockError` for any input, however
 * malformed. Pure computation apart from the clock; safe to call
 * concurrently. Anchors are parsed once per `TrustAnchors` object.
 */
export async function verifyCertificate(input: VerifyInput): Promise<VerifyResult> {
  return verifyNow(input);
}

/**
 * A short human explanation for a verification error code, for help texts and
 * JSON consumers that only kept the code.
 */
export function verifyErrorReason(code: VerifyErrorCode): string {
  return CODE_REASONS[code];
}

const CODE_REASONS: Record<VerifyErrorCode, string> = {
  CERT_UNPARSEABLE: 'the certificate could not be parsed',
  CERT_EXPIRED: 'a certificate in the chain has expired',
  CERT_NOT_YET_VALID: 'a certificate in the chain is not valid yet',
  CERT_NAME_MISMATCH: 'the certificate does not cover the requested name',
  CERT_KEY_MISMATCH: 'the private key does not belong to the certificate',
  CHAIN_UNTRUSTED: 'the chain ends in a root that is not trusted',
  CHAIN_MISSING_INTERMEDIATE: 'an intermediate certificate is missing',
  CHAIN_BAD_SIGNATURE: 'a signature in the chain does not verify',
  CHAIN_INVALID_PURPOSE: 'a certificate in the chain does not allow TLS server authentication',
  CHAIN_INVALID_CA: 'a certificate acting as a CA is not allowed to',
  CHAIN_PATH_LENGTH: 'the chain is longer than a CA certificate allows',
  CHAIN_INVALID: 'the chain is invalid',
};

/** A PadlockError for reason `reason`, with its top-level code and clause. */
function reject(reason: ReasonCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): PadlockError {
  return new PadlockError(REASONS[reason].code, message, {
    details: { reasonCode: reason, clause: REASONS[reason].clause, ...details },
    ...(cause !== undefined ? { cause } : {}),
  });
}

interface InputCertificate {
  parsed: ParsedCertificate;
  /** Parsed by node:crypto on first use (names in messages, summaries). */
  node: () => X509Certificate | undefined;
}

function pemToDer(pem: string): Uint8Array {
  return Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, ''), 'base64');
}

/** Parses one PEM block. @throws CertificateParseError when it is not a certificate. */
function readCertificate(pem: string): InputCertificate {
  const parsed = parseCertificate(pemToDer(pem));
  return { parsed, node: lazyNode(parsed) };
}

/** node:crypto's view of `cert`, made on first use; undefined when it cannot read it. */
function lazyNode(cert: ParsedCertificate): () => X509Certificate | undefined {
  let node: X509Certificate | null | undefined;
  return () => {
    if (node === undefined) {
      try {
        node = new X509Certificate(Buffer.from(cert.der));
      } catch {
        node = null;
      }
    }
    return node ?? undefined;
  };
}

function verifyNow(input: VerifyInput): VerifyResult {
  const at = input.at ?? (input.clock ?? systemClock).now();
  const blocks = splitPem(input.cert);
  if (blocks.length === 0) throw reject('pem-no-certificate', 'the certificate input holds no PEM CERTIFICATE block');
  let leaf: InputCertificate;
  try {
    leaf = readCertificate(blocks[0]!);
  } catch (err) {
    throw reject('der-malformed', `the leaf certificate is not a readable X.509 certificate: ${(err as Error).message}`, {}, err);
  }

  const poolBlocks = [...blocks.slice(1), ...splitPem(input.chain ?? '')];
  if (poolBlocks.length > MAX_POOL_CERTIFICATES) {
    throw reject('pool-too-large', `the chain holds ${poolBlocks.length} certificates; padlock examines at most ${MAX_POOL_CERTIFICATES}`);
  }
  const pool: InputCertificate[] = [];
  const ignored: string[] = [];
  poolBlocks.forEach((pem, i) => {
    const what = i < blocks.length - 1 ? `certificate ${i + 2} of the certificate input` : `certificate ${i - blocks.length + 2} of the chain pool`;
    try {
      pool.push(readCertificate(pem));
    } catch (err) {
      // As browsers do: an unreadable extra certificate is left out, not fatal.
      ignored.push(`${what}: ${(err as Error).message}`);
    }
  });

  const namer = makeNamer([leaf, ...pool]);
  const leafName = namer.name(leaf.parsed);
  if (input.key !== undefined) checkKey(leaf.parsed, leafName, input.key);
  if (input.names && input.names.length > 0) checkNames(leaf, leafName, input.names);

  const outcome = buildPath({
    leaf: leaf.parsed,
    pool: pool.map((p) => p.parsed),
    anchors: anchorIndex(input.roots),
    at: wholeSeconds(at),
    ...(input.limits ? { limits: input.limits } : {}),
  });
  const tried = outcome.attempts.slice(0, MAX_REPORTED_PATHS).map((a) => pathReport(a, leafName, namer));
  if (outcome.valid) {
    const path = outcome.valid.path.map((c) => namer.summary(c));
    return { leaf: path[0]!, path, tried };
  }
  const best = outcome.best!;
  const first = best.problems[0]!;
  const note = ignored.length > 0 ? `; left out as unreadable: ${ignored.join('; ')}` : '';
  const more = best.problems.length > 1 ? ` (and ${best.problems.length - 1} more problem${best.problems.length > 2 ? 's' : ''})` : '';
  throw new PadlockError(REASONS[first.reason].code, problemMessage(first, best.path, leafName, namer) + more + note, {
    details: { ...failureDetails(best, outcome.attempts, outcome.exhausted, leafName, namer), ...(ignored.length ? { ignored } : {}) },
  });
}

interface SummaryNamer extends Namer {
  summary(cert: ParsedCertificate): CertSummary;
}

/** Names and summaries from node:crypto's view of the certificates (anchors are parsed by it only when named). */
function makeNamer(inputs: InputCertificate[]): SummaryNamer {
  const byFingerprint = new Map(inputs.map((c) => [c.parsed.fingerprint, c.node] as const));
  const nodeOf = (cert: ParsedCertificate): X509Certificate | undefined => {
    let get = byFingerprint.get(cert.fingerprint);
    if (get === undefined) {
      get = lazyNode(cert);
      byFingerprint.set(cert.fingerprint, get);
    }
    return get();
  };
  const pick = (dn: string, prefer: string[]): string => {
    const parts = dn.split('\n').map((l) => l.trim()).filter(Boolean);
    for (const attr of prefer) {
      const hit = parts.find((p) => p.startsWith(`${attr}=`));
      if (hit !== undefined) return hit.slice(attr.length + 1);
    }
    return parts.join(', ');
  };
  return {
    name: (cert) => cert.commonNames[0] ?? (nodeOf(cert) ? pick(nodeOf(cert)!.subject, ['CN']) : 'a certificate without a readable subject'),
    issuerName: (cert) => (nodeOf(cert) ? pick(nodeOf(cert)!.issuer, ['CN', 'O']) : 'an unreadable issuer'),
    summary: (cert) => {
      const node = (): X509Certificate | undefined => nodeOf(cert);
      const info = cert.keyInfo();
      return {
        subject: cert.commonNames[0] ?? (node() ? pick(node()!.subject, ['CN']) : ''),
        names: (cert.subjectAltName ?? []).flatMap((n) => (n.kind === 'dns' ? [n.value.toLowerCase()] : n.kind === 'ip' ? [canonicalIp(ipText(n.bytes)) ?? ipText(n.bytes)] : [])),
        issuer: cert.issuerCommonNames[0] ?? cert.issuerOrganizations[0] ?? (node() ? pick(node()!.issuer, ['CN', 'O']) : ''),
        notBefore: new Date(cert.notBefore),
        notAfter: new Date(cert.notAfter),
        serialNumber: serialHex(cert.serial),
        keyType: info ? keyLabel(info) : 'unknown',
        fingerprint256: colonHex(cert.fingerprint),
      };
    },
  };
}

/** A serial number as OpenSSL prints it: uppercase hex, without the zero octet that only keeps it positive. */
function serialHex(serial: Uint8Array): string {
  const bytes = serial.length > 1 && serial[0] === 0 && (serial[1]! & 0x80) !== 0 ? serial.subarray(1) : serial;
  return Buffer.from(bytes).toString('hex').toUpperCase();
}

function checkKey(leaf: ParsedCertificate, leafName: string, keyPem: string): void {
  let key: KeyObject;
  try {
    key = createPublicKey(createPrivateKey(keyPem));
  } catch (err) {
    throw reject('private-key-unreadable', `the private key for ${leafName} could not be read (${(err as Error).message})`, {}, err);
  }
  let matches = false;
  try {
    matches = leaf.keyInfo()?.key.equals(key) ?? false;
  } catch {
    matches = false; // a key of another type cannot match
  }
  if (!matches) {
    throw reject('private-key-mismatch', `the private key does not match the certificate for ${leafName} (it belongs to another certificate)`);
  }
}

/**
 * Every requested name must be among the leaf's subjectAltNames: DNS names
 * against valid dNSName entries (a wildcard is one whole left-most label),
 * IP addresses against iPAddress entries, as bytes. The common name never
 * counts.
 */
function checkNames(leaf: InputCertificate, leafName: string, names: string[]): void {
  const san = leaf.parsed.subjectAltName ?? [];
  const dns = san.flatMap((n) => (n.kind === 'dns' && presentedDnsNameProblem(n.value) === undefined ? [n.value.toLowerCase()] : []));
  const ips = san.flatMap((n) => (n.kind === 'ip' ? [n.bytes] : []));
  const missing = names.filter((raw) => {
    const ref = referenceName(raw);
    return ref.kind === 'ip' ? !ips.some((b) => sameBytes(b, ref.bytes)) : !dns.some((p) => dnsNameMatches(p, ref.name));
  });
  if (missing.length === 0) return;
  const has = [...dns, ...ips.map(ipText)];
  if (!leaf.parsed.extensions.has('2.5.29.17')) {
    const cn = leaf.parsed.commonNames[0];
    throw reject('san-missing', `certificate for ${leafName} does not cover ${missing.join(', ')}: it has no subjectAltName${cn ? ` (its common name "${cn}" does not count)` : ''}`, {
      missingNames: missing,
      names: [],
    });
  }
  throw reject('name-not-covered', `certificate for ${leafName} does not cover ${missing.join(', ')} (it covers ${has.length ? has.join(', ') : 'no valid names'})`, {
    missingNames: missing,
    names: has,
  });
}

// One index per TrustAnchors object: a WeakMap keyed by the (immutable)
// anchors, so a new set gets a new index and nothing outlives its set.
const anchorIndexes = new WeakMap<TrustAnchors, AnchorIndex>();

function anchorIndex(roots: TrustAnchors): AnchorIndex {
  let index = anchorIndexes.get(roots);
  if (index === undefined) {
    index = indexAnchors(splitPem(roots.pem).map(pemToDer));
    anchorIndexes.set(roots, index);
  }
  return index;
}
