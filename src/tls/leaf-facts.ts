/**
 * Facts about a stored certificate that a reader would otherwise parse it
 * for (validity dates, serial, the trust anchor it was verified to), recorded
 * in its lineage meta when it is stored (`LineageMeta.leaf`).
 *
 * Why: the daemon loads every stored certificate at start. Parsing 10,000
 * leaves (and checking each one's signature against the local root) was most
 * of a 10,000-certificate start. A SHA-256 of the fullchain text is about a
 * hundred times cheaper than parsing it.
 *
 * The facts are trusted only for the exact `fullchain` text they were
 * recorded for: the meta can be rewritten apart from the certificate
 * (`writeMeta`, an import, a hand edit, a store copied from an older
 * padlock), so a hash mismatch means "parse it", never "believe it".
 */
import { createHash } from 'node:crypto';
import type { LeafFacts, LineageMeta } from '../store/store.js';
import { certificateValidity } from './inspect.js';

/** What a reader of a stored certificate gets: from the recorded facts, or parsed. */
export interface ServedLeaf {
  notBefore: Date;
  notAfter: Date;
  /** Uppercase hex. */
  serialNumber: string;
  /** The trust anchor the chain was verified to when stored (colon hex SHA-256); absent when not recorded. */
  anchorFingerprint256?: string;
}

/** Hex SHA-256 of the fullchain text. */
function digest(fullchain: string): string {
  return createHash('sha256').update(fullchain).digest('hex');
}

/**
 * The facts to record for `fullchain`, whose leaf says `leaf` (as parsed by
 * verification or describeCertificate) and whose chain was verified to the
 * anchor with `anchorFingerprint256` (omit it when it was not verified).
 */
export function leafFacts(fullchain: string, leaf: { notBefore: Date; notAfter: Date; serialNumber: string }, anchorFingerprint256?: string): LeafFacts {
  return {
    fullchainSha256: digest(fullchain),
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    serialNumber: leaf.serialNumber.toUpperCase(),
    ...(anchorFingerprint256 ? { anchorFingerprint256 } : {}),
  };
}

/**
 * The facts `meta` records for exactly this `fullchain`, or undefined when it
 * records none, records them for other bytes, or holds values that are not
 * dates. Never parses the certificate.
 */
export function recordedLeaf(meta: Pick<LineageMeta, 'leaf'>, fullchain: string): ServedLeaf | undefined {
  const f = meta.leaf;
  if (!f || typeof f !== 'object' || typeof f.fullchainSha256 !== 'string' || typeof f.serialNumber !== 'string') return undefined;
  const notBefore = new Date(f.notBefore);
  const notAfter = new Date(f.notAfter);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) return undefined;
  if (f.fullchainSha256 !== digest(fullchain)) return undefined;
  return { notBefore, notAfter, serialNumber: f.serialNumber, ...(typeof f.anchorFingerprint256 === 'string' ? { anchorFingerprint256: f.anchorFingerprint256 } : {}) };
}

/**
 * The leaf's dates and serial: the recorded facts when they match the
 * fullchain, else parsed from its first certificate (stores written before
 * facts were recorded). Throws CERT_UNPARSEABLE only when it has to parse
 * and cannot.
 */
export function servedLeaf(meta: Pick<LineageMeta, 'leaf'>, fullchain: string): ServedLeaf {
  return recordedLeaf(meta, fullchain) ?? certificateValidity(fullchain);
}
