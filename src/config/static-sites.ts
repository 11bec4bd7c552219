/**
 * Static routes from the config file's `sites:` list, turned into SiteSpecs.
 * Pure. Any problem is a CONFIG_INVALID error listing every bad entry, since
 * config is validated once, at start.
 */
import { DEFAULT_HEALTHCHECK_INTERVAL_MS, type SiteSpec } from '../state/desired-state.js';
import type { StaticSite } from './schema.js';
import { normaliseSiteHost } from './names.js';
import { shownUrl } from './shown.js';
import { parseUpstreamUrl } from './upstream.js';
import { PadlockError } from '../errors.js';
import type { UpstreamGuard } from '../proxy/upstream-guard.js';


export const HSTS_DEFAULT_MAX_AGE = 31_536_000;

/** Parses an upstream URL; `host:port` alone means http. */
export function parseUpstream(input: string): string | { reason: string } {
  const r = parseUpstreamUrl(input.includes('://') ? input : `http://${input}`);
  return typeof r === 'string' ? r : { reason: `"${shownUrl(input)}" is not an upstream URL (${r.reason}); use http://HOST:PORT or https://HOST:PORT` };
}

/**
 * The config file's sites as SiteSpecs, or one CONFIG_INVALID error listing
 * every bad entry. With `guard`, an upstream padlock refuses (its own
 * listeners, link-local and metadata addresses without `--allow-upstream`)
 * is one of those errors: the operator hears it at start, not per request.
 */
export function staticSites(entries: readonly StaticSite[], localSuffixes: readonly string[], fileName = 'config file', guard?: UpstreamGuard): SiteSpec[] {
  const problems: string[] = [];
  const sites = new Map<string, SiteSpec>();
  entries.forEach((e, i) => {
    const where = `${fileName}: sites.${i}`;
    const host = normaliseSiteHost(e.host, localSuffixes);
    if ('reason' in host) return void problems.push(`${where}.host "${e.host}": ${host.reason}`);
    if (sites.has(host.name)) return void problems.push(`${where}.host "${e.host}": listed twice`);
    const upstreams: string[] = [];
    for (const raw of Array.isArray(e.upstream) ? e.upstream : [e.upstream]) {
      const u = parseUpstream(raw);
      const refusal = typeof u === 'string' ? guard?.checkUrl(u) : undefined;
      if (typeof u !== 'string') problems.push(`${where}.upstream: ${u.reason}`);
      else if (refusal) problems.push(`${where}.upstream: ${u} ${refusal.reason}`);
      else upstreams.push(u);
    }
    const hsts = e.hsts === true ? HSTS_DEFAULT_MAX_AGE : e.hsts === false || e.hsts === 0 ? undefined : e.hsts;
    const healthcheck = e.healthcheck ? { path: e.healthcheck, intervalMs: Math.round((e.healthcheckInterval ?? DEFAULT_HEALTHCHECK_INTERVAL_MS / 1000) * 1000) } : undefined;
    sites.set(host.name, {
      host: host.name,
      upstreams: upstreams.map((url) => ({ url, ...(healthcheck ? { healthcheck } : {}) })),
      https: e.https,
      redirect: e.redirect,
      ...(hsts ? { hstsMaxAge: hsts } : {}),
      ...(e.email ? { email: e.email } : {}),
      ...(e.profile ? { profile: e.profile } : {}),
      issuer: host.issuer,
      ...(e.upstreamWait !== undefined ? { upstreamWait: e.upstreamWait } : {}),
    });
  });
  if (problems.length) throw new PadlockError('CONFIG_INVALID', `${problems.length} problem(s) in sites:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return [...sites.values()].sort((a, b) => a.host.localeCompare(b.host));
}
