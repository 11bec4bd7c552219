/**
 * The status document of the admin API (`GET /api/status`), built from plain
 * values. Pure: the caller passes `now` and every part's current view, so a
 * table of inputs can test it.
 *
 * The document keeps the original shape (ready, time, listeners, docker,
 * routes with their certificate, problems, certificates, proxy) and adds:
 * - per route, each upstream's passive health;
 * - per certificate, the names, the next renewal with why, the rate limit
 *   and backoff ends, days left and a health verdict;
 * - `attention`: everything a person must act on, worst first (failed
 *   certificates, rejected containers, upstreams down, Docker unreachable),
 *   each with the message that carries the fix hint;
 * - `summary` counts.
 */
import type { CertificateStatus } from '../events.js';
import { servingLineage, wantedWildcards } from '../state/reconcile.js';
import type { RouteProblem, SiteSpec, Upstream } from '../state/desired-state.js';
import type { ProxyStats, RouteUpstreams } from '../proxy/server.js';

const DAY_MS = 86_400_000;

/**
 * A certificate's status as the manager reports it, plus optional facts the
 * manager may add (`notBefore` for the timeline, `renewReason` for the "why").
 */
export type CertificateInput = CertificateStatus & {
  /** ISO time the certificate became valid (the timeline's "issued"). */
  notBefore?: string;
  /** Why the renewal time is what it is: a policy RenewalReason (`lifetime-share`, `ari-window`, ...). */
  renewReason?: string;
  /** True when the current wait comes from the CA's rate limit. Inferred from lastError when absent. */
  rateLimited?: boolean;
};

/** The Docker discovery state: connected or not, or discovery switched off. */
export type DockerStatusInput = { connected: boolean; error?: string; since: string | null } | 'disabled';

export interface StatusInput {
  now: Date;
  ready: boolean;
  listeners: { http: number; https: number; admin: number };
  docker: DockerStatusInput;
  sites: readonly SiteSpec[];
  problems: readonly RouteProblem[];
  certificates: readonly CertificateInput[];
  proxy?: ProxyStats | undefined;
  /** `proxy.upstreamStatus()`: passive health per upstream. Without it every upstream reads as healthy. */
  upstreams?: readonly RouteUpstreams[] | undefined;
  /** More top-level sections, passed through as they are (e.g. `{ companion: companion.status() }`). */
  sections?: Record<string, unknown>;
}

export type Health = 'ok' | 'pending' | 'warning' | 'error' | 'retired';

export interface CertificateView extends CertificateInput {
  /** The names the certificate covers (one lineage per host). */
  names: string[];
  /** Whole days until notAfter (negative once expired). */
  daysLeft?: number;
  /** The next time padlock will act on this certificate, and why then. */
  nextRenewal?: { at: string; why: string };
  /** The CA's rate limit ends (only while it holds). */
  rateLimitedUntil?: string;
  /** A failure backoff ends (only while it holds). */
  backoffUntil?: string;
  health: Health;
}

export interface UpstreamView extends Upstream {
  healthy: boolean;
  downUntil?: string;
  /** The active health check's last result, for upstreams with `padlock.healthcheck`. */
  check?: 'passing' | 'failing';
}

export interface RouteView extends Omit<SiteSpec, 'upstreams'> {
  upstreams: UpstreamView[];
  certificate: CertificateView | null;
  health: Health;
  /** Only for a route in its grace period: when it ends, and the whole seconds left. */
  grace?: { until: string; remainingSeconds: number };
}

/** One thing a person should act on. `message` is the full text, fix hint included. */
export interface AttentionItem {
  severity: 'error' | 'warning';
  kind: 'certificate' | 'container' | 'upstream' | 'grace' | 'docker';
  /** The host name, or the container name for a rejected container. */
  subject: string;
  title: string;
  message: string;
  code?: string;
  acmeType?: string;
  /** When something changes next (the next attempt, the upstream's retry). */
  until?: string;
}

export interface StatusDocument {
  [section: string]: unknown;
  ready: boolean;
  time: string;
  listeners: { http: number; https: number; admin: number };
  docker: DockerStatusInput;
  summary: { routes: number; certificates: number; ok: number; errors: number; warnings: number };
  attention: AttentionItem[];
  routes: RouteView[];
  problems: RouteProblem[];
  certificates: CertificateView[];
  proxy: ProxyStats | null;
}

const RENEW_WHY: Record<string, string> = {
  'lifetime-share': 'a third of the lifetime left (half for certificates shorter than 10 days)',
  'ari-window': "inside the CA's suggested renewal window (ARI)",
  'ari-past-window': "the CA's renewal window (ARI) has passed",
  expired: 'the certificate has expired',
  revoked: 'the certificate was revoked',
  forced: 'a forced renewal',
};

/** True when a certificate's last error is the CA's rate limit. */
export function isRateLimitedStatus(c: CertificateInput): boolean {
  return c.rateLimited ?? (c.lastError?.acmeType === 'rateLimited' || c.lastError?.code === 'ACME_RATE_LIMITED');
}

/** Adds names, days left, the next renewal and why, limits and a health verdict to one certificate status. */
export function certificateView(c: CertificateInput, now: Date): CertificateView {
  const t = now.getTime();
  const notAfter = c.notAfter ? Date.parse(c.notAfter) : undefined;
  const next = c.nextAttemptAt ? Date.parse(c.nextAttemptAt) : undefined;
  const waiting = next !== undefined && next > t;
  const rateLimited = waiting && isRateLimitedStatus(c);
  let nextRenewal: CertificateView['nextRenewal'];
  if (c.state === 'obtaining' || c.state === 'renewing') nextRenewal = { at: now.toISOString(), why: c.state === 'obtaining' ? 'obtaining now' : 'renewing now' };
  else if (waiting && c.lastError) nextRenewal = { at: c.nextAttemptAt!, why: rateLimited ? "retry after the CA's rate limit" : 'retry after a failed attempt (backoff)' };
  else if (c.state === 'missing') nextRenewal = { at: now.toISOString(), why: 'no certificate yet; obtaining it' };
  else if (c.renewAt) nextRenewal = { at: c.renewAt, why: (c.renewReason !== 'lifetime-share' && RENEW_WHY[c.renewReason ?? '']) || lifetimeWhy(c) };

  const expired = notAfter !== undefined && notAfter <= t;
  let health: Health;
  if (c.state === 'retired') health = 'retired';
  else if (c.lastError || expired || c.state === 'waiting' || (c.state === 'missing' && !notAfter)) health = 'error';
  else if (c.state === 'obtaining' || c.state === 'renewing') health = 'pending';
  else if ((notAfter !== undefined && notAfter - t < 7 * DAY_MS) || (c.renewAt && Date.parse(c.renewAt) < t - DAY_MS)) health = 'warning';
  else health = 'ok';

  return {
    ...c,
    names: [c.name],
    ...(notAfter !== undefined ? { daysLeft: Math.floor((notAfter - t) / DAY_MS) } : {}),
    ...(nextRenewal ? { nextRenewal } : {}),
    ...(rateLimited ? { rateLimitedUntil: c.nextAttemptAt! } : {}),
    ...(waiting && !rateLimited ? { backoffUntil: c.nextAttemptAt! } : {}),
    health,
  };
}

function lifetimeWhy(c: CertificateInput): string {
  if (c.notBefore && c.notAfter) {
    const lifetime = Date.parse(c.notAfter) - Date.parse(c.notBefore);
    return lifetime < 10 * DAY_MS ? 'half of the lifetime left' : 'a third of the lifetime left';
  }
  return 'the renewal policy (a third of the lifetime left, or the CA\'s ARI window)';
}

const RANK: Record<Health, number> = { error: 0, warning: 1, pending: 2, ok: 3, retired: 4 };

/** Builds the whole status document. Routes come worst first, then by host. */
export function buildStatusDocument(input: StatusInput): StatusDocument {
  const { now } = input;
  const certificates = [...input.certificates].sort((a, b) => a.name.localeCompare(b.name)).map((c) => certificateView(c, now));
  const certByName = new Map(certificates.map((c) => [c.name, c]));
  const health = new Map<string, { healthy: boolean; downUntil?: string; check?: 'passing' | 'failing' }>();
  for (const r of input.upstreams ?? []) {
    for (const u of r.upstreams) health.set(`${r.host} ${origin(u.url)}`, { healthy: u.healthy, ...(u.downUntil ? { downUntil: u.downUntil } : {}), ...(u.check ? { check: u.check } : {}) });
  }

  const attention: AttentionItem[] = [];
  const wildcards = wantedWildcards(input.sites);
  const routes: RouteView[] = input.sites.map((site) => {
    const upstreams: UpstreamView[] = site.upstreams.map((u) => {
      const h = health.get(`${site.host} ${origin(u.url)}`);
      return { ...u, healthy: h?.healthy ?? true, ...(h?.downUntil ? { downUntil: h.downUntil } : {}), ...(h?.check ? { check: h.check } : {}) };
    });
    // By lineage name: an IPv6 host's is `2001-db8--10`, a wildcard's `wildcard_.BASE`, and a name under a wanted
    // wildcard shows the wildcard's certificate, which serves it (state/reconcile.ts).
    const certificate = site.https ? certByName.get(servingLineage(site, wildcards)) ?? null : null;
    const down = upstreams.filter((u) => !u.healthy);
    let routeHealth: Health = certificate ? (certificate.health === 'retired' ? 'ok' : certificate.health) : site.https ? 'pending' : 'ok';
    if (down.length) {
      const h: Health = down.length === upstreams.length ? 'error' : 'warning';
      if (RANK[h] < RANK[routeHealth]) routeHealth = h;
    }
    if (down.length) {
      attention.push({
        severity: down.length === upstreams.length ? 'error' : 'warning',
        kind: 'upstream',
        subject: site.host,
        title: down.length === upstreams.length ? 'every upstream is down' : `${down.length} of ${upstreams.length} upstreams down`,
        message: `${down.map((u) => u.containerName ?? u.url).join(', ')} ${down.some((u) => u.check === 'failing') ? 'refused, timed out or failed its health check' : 'refused or timed out'}; padlock retries ${down.length === upstreams.length ? 'it' : 'the others'} meanwhile. Check that the container is running and listens on the port in its labels.`,
        ...(down[0]?.downUntil ? { until: down[0].downUntil } : {}),
      });
    }
    let grace: RouteView['grace'];
    if (site.graceUntil !== undefined) {
      grace = { until: site.graceUntil, remainingSeconds: Math.max(0, Math.ceil((Date.parse(site.graceUntil) - now.getTime()) / 1000)) };
      if (RANK.warning < RANK[routeHealth]) routeHealth = 'warning';
      attention.push({
        severity: 'warning',
        kind: 'grace',
        subject: site.host,
        title: 'no container running: in its grace period',
        message: `The last container serving ${site.host} stopped. padlock keeps its certificate and answers 503 (after holding each request for a moment) until ${site.graceUntil}; then the name is no longer served. Start the container again to serve it.`,
        until: site.graceUntil,
      });
    }
    const { upstreams: _u, ...rest } = site;
    return { ...rest, upstreams, certificate, health: routeHealth, ...(grace ? { grace } : {}) };
  });

  for (const c of certificates) {
    if (c.health !== 'error' && c.health !== 'warning') continue;
    const title = c.lastError
      ? c.notAfter && (c.daysLeft ?? -1) >= 0 ? 'renewal failed; the current certificate keeps serving' : 'no certificate: obtaining failed'
      : c.daysLeft !== undefined && c.daysLeft < 0 ? 'certificate expired' : c.health === 'warning' ? 'certificate expires soon' : 'no certificate yet';
    attention.push({
      severity: c.health,
      kind: 'certificate',
      subject: c.name,
      title,
      message: c.lastError?.message ?? (c.notAfter ? `expires ${c.notAfter}` : 'padlock has not obtained a certificate for this name yet.'),
      ...(c.lastError ? { code: c.lastError.code } : {}),
      ...(c.lastError?.acmeType ? { acmeType: c.lastError.acmeType } : {}),
      ...(c.nextAttemptAt ? { until: c.nextAttemptAt } : {}),
    });
  }
  for (const p of input.problems) {
    attention.push({
      severity: 'error',
      kind: 'container',
      subject: p.containerName ?? p.host ?? p.containerId ?? 'config',
      title: `route refused (${p.code})`,
      message: p.message,
      code: p.code,
    });
  }
  if (input.docker !== 'disabled' && !input.docker.connected) {
    attention.push({
      severity: 'warning',
      kind: 'docker',
      subject: 'docker',
      title: 'Docker is unreachable; the last good routes keep serving',
      message: input.docker.error ?? 'no connection to the Docker engine yet',
    });
  }
  const kindRank = { certificate: 0, container: 1, upstream: 2, grace: 3, docker: 4 } as const;
  attention.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) || kindRank[a.kind] - kindRank[b.kind] || a.subject.localeCompare(b.subject));
  routes.sort((a, b) => RANK[a.health] - RANK[b.health] || a.host.localeCompare(b.host));

  return {
    ...input.sections,
    ready: input.ready,
    time: now.toISOString(),
    listeners: input.listeners,
    docker: input.docker,
    summary: {
      routes: routes.length,
      certificates: certificates.length,
      ok: routes.filter((r) => r.health === 'ok').length,
      errors: attention.filter((a) => a.severity === 'error').length,
      warnings: attention.filter((a) => a.severity === 'warning').length,
    },
    attention,
    routes,
    problems: [...input.problems],
    certificates,
    proxy: input.proxy ?? null,
  };
}

/** An upstream URL's origin; an `h2c://` URL (no origin to the URL parser) is already one. */
function origin(url: string): string {
  if (url.startsWith('h2c://')) return url;
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
