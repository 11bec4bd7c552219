/**
 * From what is wanted and what is stored to what to do. Pure.
 *
 * One lineage per served HTTPS host, named after the host (a wildcard
 * `*.example.com` in `wildcard_.example.com`). A host one label under a
 * wanted wildcard (`app.example.com` under `*.example.com`) gets no lineage
 * of its own: the wildcard's certificate serves it. A stored lineage that no
 * site uses any more is retired: it is never renewed, and its files stay on
 * disk.
 */
import type { SiteSpec } from './desired-state.js';
import { ipLineageName } from '../config/names.js';
import { decideWithAri, blockedUntil, type FailureRecord, type RenewalReason } from '../certificates/policy.js';

export type Issuer = 'acme' | 'local';

/** What the reconciler needs to know about one stored name: its certificate, if any, and its failure record. */
export interface StoredCertificate {
  name: string;
  /** Absent when padlock has tried but never obtained one. */
  cert?: {
    domains: string[];
    issuer: Issuer;
    notBefore: Date;
    notAfter: Date;
    obtainedAt?: Date;
    /** The CA's renewal window decision (RFC 9773), when the CA offers ARI; it replaces the lifetime rule. */
    ari?: { due: boolean; at: Date; reason: 'ari-window' | 'ari-past-window' | 'lifetime-share' | 'expired' | 'replaced'; pollAt?: Date };
  };
  failure?: FailureRecord;
  revoked?: boolean;
  /** The issuer says this certificate must be replaced whatever its dates (its local root was replaced). */
  superseded?: string;
}

export type Action =
  | { kind: 'obtain'; name: string; domains: string[]; issuer: Issuer; email?: string; profile?: string; challenge?: 'dns-01'; reason: 'new' | 'names-changed' | 'issuer-changed' }
  | { kind: 'renew'; name: string; domains: string[]; issuer: Issuer; email?: string; profile?: string; challenge?: 'dns-01'; reason: RenewalReason }
  | { kind: 'wait'; name: string; until: Date; lastError?: string }
  | { kind: 'keep'; name: string; dueAt: Date; basis: 'lifetime-share' | 'ari-window' | 'ari-past-window' }
  | { kind: 'retire'; name: string };

export interface Plan {
  /** One action per name: every HTTPS host, and every stored lineage. Sorted by name. */
  actions: Action[];
  /** The earliest time something may change (a renewal falls due, a backoff ends), if any. */
  nextCheck?: Date;
}

const WILDCARD_LINEAGE_PREFIX = 'wildcard_.';

/**
 * The lineage a host's certificate lives in: the host itself, or
 * `wildcard_.BASE` for `*.BASE` (a lineage name cannot hold "*", and no host
 * name holds "_", so it never collides with a host's own), or for an IPv6
 * address its text with `-` for `:` (config/names.ts `ipLineageName`).
 */
export function lineageNameFor(host: string): string {
  if (host.startsWith('*.')) return WILDCARD_LINEAGE_PREFIX + host.slice(2);
  return host.includes(':') ? ipLineageName(host) : host;
}

/** The wanted wildcard host whose certificate serves `host` (`*.b.c` for `a.b.c`), if any. */
export function coveringWildcard(host: string, wildcards: ReadonlySet<string>): string | undefined {
  const dot = host.indexOf('.');
  if (host.startsWith('*.') || dot <= 0) return undefined;
  const w = `*${host.slice(dot)}`;
  return wildcards.has(w) ? w : undefined;
}

/** The wanted public wildcard hosts (`*.BASE`) among the HTTPS sites: the ones whose certificate serves the names one label under them. */
export function wantedWildcards(sites: readonly SiteSpec[]): Set<string> {
  return new Set(sites.filter((s) => s.https && s.host.startsWith('*.') && s.issuer === 'acme').map((s) => s.host));
}

/**
 * The lineage whose certificate serves an HTTPS site: the covering
 * wildcard's for a public site under a wanted wildcard (`wildcards`, from
 * {@link wantedWildcards}), else the site's own.
 */
export function servingLineage(site: Pick<SiteSpec, 'host' | 'issuer'>, wildcards: ReadonlySet<string>): string {
  const w = site.issuer === 'acme' ? coveringWildcard(site.host, wildcards) : undefined;
  return lineageNameFor(w ?? site.host);
}

/**
 * The certificates the HTTPS sites need, by lineage name: one per site,
 * except public sites under a wanted public wildcard, which share it.
 */
export function wantedCertificates(sites: readonly SiteSpec[]): Map<string, SiteSpec> {
  const wildcards = wantedWildcards(sites);
  const out = new Map<string, SiteSpec>();
  for (const s of sites) {
    if (!s.https || (s.issuer === 'acme' && coveringWildcard(s.host, wildcards))) continue;
    out.set(lineageNameFor(s.host), s);
  }
  return out;
}

/** Decides, for each name, whether to obtain, renew, wait, keep or retire. */
export function planCertificates(sites: readonly SiteSpec[], stored: readonly StoredCertificate[], now: Date): Plan {
  const byName = new Map(stored.map((s) => [s.name, s]));
  const wanted = wantedCertificates(sites);
  const actions: Action[] = [];
  let nextCheck: Date | undefined;
  const consider = (d: Date) => {
    if (!nextCheck || d < nextCheck) nextCheck = d;
  };

  for (const [name, site] of wanted) {
    const have = byName.get(name);
    const domains = [site.host];
    const email = { ...(site.email ? { email: site.email } : {}), ...(site.profile ? { profile: site.profile } : {}), ...(site.challenge ? { challenge: site.challenge } : {}) };
    const blocked = blockedUntil(have?.failure, now);
    if (blocked) {
      actions.push({ kind: 'wait', name, until: blocked, ...(have?.failure?.lastError ? { lastError: have.failure.lastError.message } : {}) });
      consider(blocked);
      continue;
    }
    const cert = have?.cert;
    if (!cert) {
      actions.push({ kind: 'obtain', name, domains, issuer: site.issuer, reason: 'new', ...email });
      continue;
    }
    if (!cert.domains.includes(site.host)) {
      actions.push({ kind: 'obtain', name, domains, issuer: site.issuer, reason: 'names-changed', ...email });
      continue;
    }
    if (cert.issuer !== site.issuer || have?.superseded) {
      actions.push({ kind: 'obtain', name, domains, issuer: site.issuer, reason: 'issuer-changed', ...email });
      continue;
    }
    const ari = cert.ari;
    // A poll already due is the poller's to run (it re-plans when it learns something); waking for it would spin.
    if (ari?.pollAt && ari.pollAt.getTime() > now.getTime()) consider(ari.pollAt);
    const decision = decideWithAri(cert, now, ari, { revoked: have?.revoked ?? false, ...(cert.obtainedAt ? { obtainedAt: cert.obtainedAt } : {}) });
    if (decision.due) {
      // A lineage that also covers other names (made by padlock issue, e.g. with www.) keeps them all.
      actions.push({ kind: 'renew', name, domains: cert.domains, issuer: site.issuer, reason: decision.reason, ...email });
    } else {
      actions.push({ kind: 'keep', name, dueAt: decision.dueAt, basis: decision.basis });
      consider(decision.dueAt);
    }
  }
  for (const s of stored) if (s.cert && !wanted.has(s.name)) actions.push({ kind: 'retire', name: s.name });
  actions.sort((a, b) => a.name.localeCompare(b.name));
  return nextCheck ? { actions, nextCheck } : { actions };
}
