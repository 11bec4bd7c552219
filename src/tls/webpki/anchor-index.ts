/**
 * Trust anchors indexed for path building: by subject (the bytes an issuer
 * name must equal) and by identity (SHA-256 of the DER). Built once per set
 * of anchors, so a lookup never scans the ~160 system roots.
 */
import { CertificateParseError, parseCertificate, type ParsedCertificate } from './certificate.js';

/** An immutable index of parsed trust anchors. */
export interface AnchorIndex {
  /** Anchors whose subject is exactly these bytes (as `ParsedCertificate.subjectKey`), in load order. */
  bySubject(subjectKey: string): readonly ParsedCertificate[];
  /** The anchor with this fingerprint, if the certificate is one. */
  byFingerprint(fingerprint: string): ParsedCertificate | undefined;
  /** How many anchors were indexed. */
  readonly size: number;
  /** Anchors that could not be parsed (left out), with why. */
  readonly skipped: readonly { index: number; why: string }[];
}

/**
 * Parses and indexes anchors (DER). An anchor that does not parse is left out
 * and listed in `skipped`: it could never be matched anyway. Extension bodies
 * are decoded only when an anchor is first used.
 */
export function indexAnchors(ders: readonly Uint8Array[]): AnchorIndex {
  const subjects = new Map<string, ParsedCertificate[]>();
  const fingerprints = new Map<string, ParsedCertificate>();
  const skipped: { index: number; why: string }[] = [];
  ders.forEach((der, index) => {
    let cert: ParsedCertificate;
    try {
      cert = parseCertificate(der);
    } catch (err) {
      skipped.push({ index, why: err instanceof CertificateParseError ? err.message : String(err) });
      return;
    }
    if (fingerprints.has(cert.fingerprint)) return;
    fingerprints.set(cert.fingerprint, cert);
    const list = subjects.get(cert.subjectKey);
    if (list) list.push(cert);
    else subjects.set(cert.subjectKey, [cert]);
  });
  return {
    bySubject: (key) => subjects.get(key) ?? [],
    byFingerprint: (fp) => fingerprints.get(fp),
    size: fingerprints.size,
    skipped,
  };
}
