/**
 * Trust anchors indexed for path building: by subject (the bytes an issuer
 * name must equal) and by identity (SHA-256 of the DER). Built once per set
 * of anchors, so a lookup never scans the ~160 system roots.
 */
import { createHash } from 'node:crypto';
import { CertificateParseError, parseCertificate, peekSubjectKey, type ParsedCertificate } from './certificate.js';

/** An immutable index of parsed trust anchors. */
export interface AnchorIndex {
  /** Anchors whose subject is exactly these bytes (as `ParsedCertificate.subjectKey`), in load order. */
  bySubject(subjectKey: string): readonly ParsedCertificate[];
  /** The anchor with this fingerprint, if the certificate is one. */
  byFingerprint(fingerprint: string): ParsedCertificate | undefined;
  /** How many anchors were indexed (distinct by fingerprint). */
  readonly size: number;
  /** Anchors that could not be parsed (left out), with why: those looked up so far, and any whose subject could not be read. */
  readonly skipped: readonly { index: number; why: string }[];
}

/**
 * Indexes anchors (DER) by subject and fingerprint. Each anchor is parsed in
 * full only when a lookup first returns it: a chain needs one or two of the
 * ~300 system anchors, and parsing them all cost about 40 ms of every
 * issuance. An anchor that does not parse is left out when first looked up,
 * and listed in `skipped` from then on: it could never be matched anyway.
 * Extension bodies are decoded only when an anchor is first used.
 */
export function indexAnchors(ders: readonly Uint8Array[]): AnchorIndex {
  const subjects = new Map<string, number[]>();
  const fingerprints = new Map<string, number>();
  const parsed = new Map<number, ParsedCertificate | null>();
  const skipped: { index: number; why: string }[] = [];
  const parse = (index: number): ParsedCertificate | undefined => {
    let cert = parsed.get(index);
    if (cert === undefined) {
      try {
        cert = parseCertificate(ders[index]!);
      } catch (err) {
        skipped.push({ index, why: err instanceof CertificateParseError ? err.message : String(err) });
        cert = null;
      }
      parsed.set(index, cert);
    }
    return cert ?? undefined;
  };
  ders.forEach((der, index) => {
    let subjectKey: string;
    try {
      subjectKey = peekSubjectKey(der);
    } catch {
      parse(index); // records why
      return;
    }
    const fingerprint = createHash('sha256').update(der).digest('hex');
    if (fingerprints.has(fingerprint)) return;
    fingerprints.set(fingerprint, index);
    const list = subjects.get(subjectKey);
    if (list) list.push(index);
    else subjects.set(subjectKey, [index]);
  });
  return {
    bySubject: (key) => (subjects.get(key) ?? []).flatMap((i) => parse(i) ?? []),
    byFingerprint: (fp) => {
      const i = fingerprints.get(fp);
      return i === undefined ? undefined : parse(i);
    },
    size: fingerprints.size,
    skipped,
  };
}
