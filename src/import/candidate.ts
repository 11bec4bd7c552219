/**
 * What every import source yields: candidates, one per certificate, before
 * any check (engine.ts checks and stores them).
 *
 * Lineage names: one lineage per certificate, named after its first name
 * (Traefik's `domain.main`, certbot's lineage name); a wildcard
 * `*.example.com` becomes `wildcard_.example.com`, the lineage `padlock run`
 * serves a `*.example.com` site from (state/reconcile.ts).
 */
import type { LineageMeta } from '../store/store.js';
import { lineageNameFor as siteLineage } from '../state/reconcile.js';

/** One certificate found in a source, as the source describes it. */
export interface ImportCandidate {
  /** Where it came from, for messages (`acme.json resolver le: example.com`, `live/example.com`). */
  source: string;
  /** The lineage name to store it under. */
  name: string;
  /** The names the source says it covers (checked against the certificate). */
  domains: string[];
  /** PEM: the leaf, then the intermediates. */
  fullchainPem: string;
  keyPem: string;
  /** Metadata the source gives (challenge, server, hook...); the rest is filled in. */
  meta: Partial<Omit<LineageMeta, 'name' | 'domains' | 'updatedAt'>>;
  /** Notes from reading the source (an authenticator padlock lacks, ...). */
  warnings: string[];
  /** A problem that already rules it out (unreadable file, bad base64...). */
  problem?: { code: string; message: string };
}

/** `*.example.com` → `wildcard_.example.com`; lowercase, no trailing dot. */
export function lineageNameFor(domain: string): string {
  return siteLineage(domain.trim().toLowerCase().replace(/\.$/, ''));
}
