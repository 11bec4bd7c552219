/**
 * The WebPKI checks, each a small pure function with its own reason code
 * (reasons.ts says which clause each enforces).
 *
 * A certificate is checked in its role: the leaf (the TLS server
 * certificate), an intermediate (held to the Baseline Requirements' CA
 * profile), or the trust anchor (whose constraints apply when present, as
 * Chromium and Mozilla apply them, but whose profile is the user's choice:
 * three roots in Debian's bundle have a non-critical basicConstraints and one
 * has no subjectKeyIdentifier). A path adds the checks that need more than
 * one certificate: path length and name constraints.
 */
import { KU, OID, type ParsedCertificate } from './certificate.js';
import { keyProblem, keyLabel } from './algorithms.js';
import { constraintViolation } from './name-constraints.js';
import { presentedDnsNameProblem } from './names.js';
import type { ReasonCode } from './reasons.js';

/** One failed check. */
export interface Problem {
  reason: ReasonCode;
  /** Position in the path: 0 is the leaf. */
  depth: number;
  /**
   * What is wrong, for a one-line message. It reads after the name of the
   * certificate at fault ("expired on ..."), or holds `{who}` where that
   * name goes.
   */
  detail: string;
  /** Structured facts for `--json`. */
  facts?: Record<string, unknown>;
  /** For a problem between a certificate and a would-be issuer: that issuer (`{issuer}` in `detail`). */
  issuer?: ParsedCertificate;
}

export type Role = 'leaf' | 'intermediate' | 'anchor';

/** Extensions padlock processes; any other marked critical rejects the certificate (RFC 5280 section 4.2). */
export const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.authorityKeyIdentifier,
  OID.subjectKeyIdentifier,
  // Recognised and not processed, as Mozilla's verifier: the WebPKI asks for no policy.
  OID.certificatePolicies,
]);

/** The extensions that constrain an anchor: their defects reject it; its other extensions are not its users' concern. */
const ANCHOR_CONSTRAINTS: ReadonlySet<string> = new Set([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.nameConstraints]);

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The verification time in whole seconds: certificate times have no fractions (RFC 5280 section 4.1.2.5.1). */
export function wholeSeconds(at: Date): number {
  return Math.floor(at.getTime() / 1000) * 1000;
}

/** Validity, bounds included: valid when notBefore <= at <= notAfter (RFC 5280 section 4.1.2.5). */
export function validityProblem(cert: ParsedCertificate, depth: number, at: number): Problem | undefined {
  if (at > cert.notAfter) return { reason: 'expired', depth, detail: `expired on ${iso(cert.notAfter)}`, facts: { notAfter: iso(cert.notAfter) } };
  if (at < cert.notBefore) return { reason: 'not-yet-valid', depth, detail: `is not valid before ${iso(cert.notBefore)}`, facts: { notBefore: iso(cert.notBefore) } };
  return undefined;
}

/** Extensions that do not decode, appear twice, or are critical and unknown. Anchors answer only for their constraints. */
export function extensionProblems(cert: ParsedCertificate, role: Role, depth: number): Problem[] {
  const out: Problem[] = [];
  for (const d of cert.defects) {
    if (role === 'anchor' && !ANCHOR_CONSTRAINTS.has(d.oid)) continue;
    out.push({ reason: d.reason, depth, detail: `has a broken extension: ${d.detail}` });
  }
  if (role !== 'anchor') {
    for (const [oid, ext] of cert.extensions) {
      if (ext.critical && !PROCESSED_EXTENSIONS.has(oid)) {
        out.push({ reason: 'extension-unknown-critical', depth, detail: `has a critical extension padlock does not process (${oid})`, facts: { extension: oid } });
      }
    }
  }
  return out;
}

/** The public key itself: readable, and of an allowed type and size. */
export function keyProblems(cert: ParsedCertificate, depth: number): Problem[] {
  const key = cert.keyInfo();
  if (key === undefined) return [{ reason: 'key-malformed', depth, detail: 'has a public key that cannot be read' }];
  const p = keyProblem(key);
  return p ? [{ reason: p.reason, depth, detail: `has ${p.detail}`, facts: { key: keyLabel(key) } }] : [];
}

function ekuText(eku: string[]): string {
  return eku.map((u) => EKU_NAMES[u] ?? u).join(', ');
}

function allowsServerAuth(eku: string[] | undefined): boolean {
  return eku === undefined || eku.includes(OID.serverAuth) || eku.includes(OID.anyExtendedKeyUsage);
}

/** The leaf as a TLS server certificate: names, CA-ness, key usage, EKU. `isAnchor` when it is itself trusted. */
export function leafProblems(cert: ParsedCertificate, isAnchor: boolean): Problem[] {
  const out: Problem[] = [];
  const san = cert.subjectAltName;
  if (!cert.extensions.has(OID.subjectAltName)) {
    const cn = cert.commonNames[0];
    out.push({ reason: 'san-missing', depth: 0, detail: `has no subjectAltName, so it covers no name${cn ? ` (its common name "${cn}" does not count)` : ''}` });
  }
  for (const name of san ?? []) {
    if (name.kind !== 'dns') continue;
    const why = presentedDnsNameProblem(name.value);
    if (why) out.push({ reason: 'san-dns-invalid', depth: 0, detail: `has the subjectAltName "${name.value}", which is not a valid host name: ${why}`, facts: { name: name.value } });
  }
  if (cert.basicConstraints?.ca) out.push({ reason: 'leaf-is-ca', depth: 0, detail: 'is a CA certificate (basicConstraints CA:TRUE), not a server certificate' });
  const ku = cert.keyUsage;
  if (ku !== undefined && (ku & KU.keyCertSign) !== 0) out.push({ reason: 'leaf-key-usage-cert-sign', depth: 0, detail: 'may sign certificates (keyUsage keyCertSign), which a server certificate must not' });
  if (ku !== undefined && (ku & KU.digitalSignature) === 0) out.push({ reason: 'leaf-key-usage-no-digital-signature', depth: 0, detail: 'does not allow digital signatures (keyUsage lacks digitalSignature), which TLS needs' });
  const eku = cert.extKeyUsage;
  if (!allowsServerAuth(eku)) out.push({ reason: 'leaf-eku-no-server-auth', depth: 0, detail: `does not allow TLS server authentication (extendedKeyUsage: ${ekuText(eku!)})`, facts: { extendedKeyUsage: eku } });
  if (cert.extensions.has(OID.nameConstraints)) out.push({ reason: 'name-constraints-in-leaf', depth: 0, detail: 'carries nameConstraints, which only a CA certificate may' });
  if (!isAnchor && cert.authorityKeyId?.keyId === undefined) out.push({ reason: 'aki-missing', depth: 0, detail: 'has no authorityKeyIdentifier key ID' });
  return out;
}

/** A certificate that issues the one below it: CA-ness, key usage, EKU, and for intermediates the Baseline Requirements' profile. */
export function issuerProblems(cert: ParsedCertificate, role: 'intermediate' | 'anchor', depth: number): Problem[] {
  const out: Problem[] = [];
  const bc = cert.basicConstraints;
  if (bc === undefined) {
    if (!cert.extensions.has(OID.basicConstraints)) out.push({ reason: 'ca-basic-constraints-missing', depth, detail: 'is not allowed to issue certificates (it has no basicConstraints)' });
  } else if (!bc.ca) {
    out.push({ reason: 'ca-not-ca', depth, detail: 'is not allowed to issue certificates (basicConstraints is not CA:TRUE)' });
  } else if (role === 'intermediate' && !bc.critical) {
    out.push({ reason: 'ca-basic-constraints-not-critical', depth, detail: 'has a basicConstraints extension that is not marked critical' });
  }
  const ku = cert.keyUsage;
  if (ku !== undefined && (ku & KU.keyCertSign) === 0) out.push({ reason: 'ca-key-usage-no-cert-sign', depth, detail: 'is not allowed to issue certificates (keyUsage lacks keyCertSign)' });
  const eku = cert.extKeyUsage;
  if (!allowsServerAuth(eku)) out.push({ reason: 'ca-eku-no-server-auth', depth, detail: `does not allow TLS server authentication (extendedKeyUsage: ${ekuText(eku!)})`, facts: { extendedKeyUsage: eku } });
  if (role === 'intermediate') {
    if (cert.subjectKeyId === undefined && !cert.extensions.has(OID.subjectKeyIdentifier)) out.push({ reason: 'ski-missing', depth, detail: 'has no subjectKeyIdentifier' });
    if (!cert.selfIssued && cert.authorityKeyId?.keyId === undefined) out.push({ reason: 'aki-missing', depth, detail: 'has no authorityKeyIdentifier key ID' });
  }
  return out;
}

/**
 * pathLenConstraint (RFC 5280 section 6.1.4 (l)(m)): the number of
 * intermediates below a CA, not counting self-issued ones, must not exceed it.
 * `path[0]` is the leaf.
 */
export function pathLengthProblems(path: readonly ParsedCertificate[]): Problem[] {
  const out: Problem[] = [];
  let below = 0;
  for (let i = 1; i < path.length; i++) {
    const limit = path[i]!.basicConstraints?.pathLen;
    if (limit !== undefined && below > limit) {
      out.push({
        reason: 'path-length-exceeded',
        depth: i,
        detail: `has a path length limit (pathLenConstraint ${limit}) that the chain below it exceeds (${below} intermediate${below === 1 ? '' : 's'} below it)`,
        facts: { pathLenConstraint: limit, intermediatesBelow: below },
      });
    }
    if (!path[i]!.selfIssued) below++;
  }
  return out;
}

/**
 * Every CA's nameConstraints against every certificate below it; self-issued
 * intermediates are exempt (RFC 5280 section 6.1.3 (b)).
 */
export function nameConstraintProblems(path: readonly ParsedCertificate[]): Problem[] {
  const out: Problem[] = [];
  for (let i = 1; i < path.length; i++) {
    const nc = path[i]!.nameConstraints;
    if (nc === undefined) continue;
    for (let j = i - 1; j >= 0; j--) {
      const cert = path[j]!;
      if (j > 0 && cert.selfIssued) continue;
      const v = constraintViolation(nc, cert, j === 0);
      if (v === undefined) continue;
      const where = j === 0 ? 'the leaf' : 'an intermediate';
      const range = v.why === 'excluded' ? `excludes ${v.subtrees[0]}` : `permits only ${v.subtrees.join(', ')}`;
      out.push({
        reason: 'name-constraints-violated',
        depth: i,
        detail: `may not certify ${v.source === 'subject CN' ? 'the host-like common name' : `the ${v.source}`} "${v.name}" of ${where} (its nameConstraints ${range})`,
        facts: { constrainedDepth: j, form: v.form, name: v.name, source: v.source, why: v.why, subtrees: v.subtrees },
      });
    }
  }
  return out;
}

/** Which problem a message leads with: the most basic and most actionable first. */
const PRIORITY: Partial<Record<ReasonCode, number>> = {
  expired: 0,
  'not-yet-valid': 0,
  'extension-malformed': 1,
  'extension-duplicate': 1,
  'key-malformed': 1,
  'extension-unknown-critical': 2,
  'key-rsa-too-small': 3,
  'key-rsa-too-large': 3,
  'key-curve-not-allowed': 3,
  'key-type-not-allowed': 3,
  'ca-basic-constraints-missing': 4,
  'ca-not-ca': 4,
  'ca-key-usage-no-cert-sign': 4,
  'ca-basic-constraints-not-critical': 4,
  'path-length-exceeded': 5,
  'ca-eku-no-server-auth': 6,
  'leaf-eku-no-server-auth': 6,
  'leaf-is-ca': 6,
  'leaf-key-usage-cert-sign': 6,
  'leaf-key-usage-no-digital-signature': 6,
  'san-missing': 7,
  'san-dns-invalid': 7,
  'name-constraints-in-leaf': 8,
  'name-constraints-malformed': 8,
  'name-constraints-unsupported': 8,
  'name-constraints-violated': 8,
  'aki-missing': 9,
  'ski-missing': 9,
};

/** Orders problems so the first is the one to report: by {@link PRIORITY}, then leaf first. */
export function sortProblems(problems: Problem[]): Problem[] {
  return problems.sort((a, b) => (PRIORITY[a.reason] ?? 10) - (PRIORITY[b.reason] ?? 10) || a.depth - b.depth);
}

/**
 * Every problem of a path that ends at a trust anchor (leaf first, anchor
 * last; a path of one certificate is a leaf that is itself trusted), at
 * `at` (whole seconds). Signatures and the issuers' keys were checked when
 * the path was built. Empty when the path is valid.
 */
export function pathProblems(path: readonly ParsedCertificate[], at: number): Problem[] {
  const out: Problem[] = [];
  const last = path.length - 1;
  path.forEach((cert, depth) => {
    const role: Role = depth === 0 ? 'leaf' : depth === last ? 'anchor' : 'intermediate';
    const v = validityProblem(cert, depth, at);
    if (v) out.push(v);
    out.push(...extensionProblems(cert, role, depth));
    if (role === 'leaf') out.push(...keyProblems(cert, 0), ...leafProblems(cert, last === 0));
    else out.push(...issuerProblems(cert, role, depth));
  });
  out.push(...pathLengthProblems(path), ...nameConstraintProblems(path));
  return sortProblems(out);
}
