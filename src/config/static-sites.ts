/**
 * Static routes from the config file's `sites:` list, turned into SiteSpecs.
 * Pure. Any problem is a CONFIG_INVALID error listing every bad entry, since
 * config is validated once, at start.
 */
import { DEFAULT_HEALTHCHECK_INTERVAL_MS, type SiteSpec } from '../state/desired-state.js';
import type { StaticSite } from './schema.js';
import { isIpHost, normaliseName, normaliseSiteHost } from './names.js';
import { shownUrl } from './shown.js';
import { parseUpstreamUrl, upstreamProto, type UpstreamProto } from './upstream.js';
import { PadlockError } from '../errors.js';
import type { UpstreamGuard } from '../proxy/upstream-guard.js';


export const HSTS_DEFAULT_MAX_AGE = 31_536_000;

/** A wildcard host: one whole first label (RFC 8555 section 7.1.3), public, and covered by a DNS provider. */
function wildcardHost(raw: string, dnsCovers: ((name: string) => boolean) | undefined): { name: string; issuer: 'acme' } | { reason: string } {
  const r = normaliseName(raw, { allowWildcard: true });
  if ('reason' in r) return r;
  if (!r.name.startsWith('*.')) return { reason: 'only a whole first label may be a wildcard (*.example.com)' };
  if (!dnsCovers?.(r.name.slice(2))) return { reason: `a wildcard needs the DNS-01 challenge, and no provider in dns.providers covers ${r.name.slice(2)}; add one with zones: [${r.name.slice(2)}]` };
  return { name: r.name, issuer: 'acme' };
}

/**
 * Parses an upstream URL; `host:port` alone means `proto` (default http). A
 * URL whose scheme disagrees with an explicit `proto` is refused: which one was meant?
 */
export function parseUpstream(input: string, proto?: UpstreamProto): string | { reason: string } {
  const r = parseUpstreamUrl(input.includes('://') ? input : `${proto ?? 'http'}://${input}`);
  if (typeof r !== 'string') return { reason: `"${shownUrl(input)}" is not an upstream URL (${r.reason}); use http://HOST:PORT, https://HOST:PORT or h2c://HOST:PORT` };
  if (proto !== undefined && upstreamProto(r) !== proto) return { reason: `"${shownUrl(input)}" is ${upstreamProto(r)}, but proto is ${proto}; write HOST:PORT alone, or drop proto` };
  return r;
}

/**
 * The config file's sites as SiteSpecs, or one CONFIG_INVALID error listing
 * every bad entry. With `guard`, an upstream padlock refuses (its own
 * listeners, link-local and metadata addresses without `--allow-upstream`)
 * is one of those errors: the operator hears it at start, not per request.
 */
export function staticSites(entries: readonly StaticSite[], localSuffixes: readonly string[], fileName = 'config file', guard?: UpstreamGuard, dnsCovers?: (name: string) => boolean): SiteSpec[] {
  const problems: string[] = [];
  const sites = new Map<string, SiteSpec>();
  entries.forEach((e, i) => {
    const where = `${fileName}: sites.${i}`;
    const host = e.host.trim().startsWith('*') ? wildcardHost(e.host, dnsCovers) : normaliseSiteHost(e.host, localSuffixes);
    if ('reason' in host) return void problems.push(`${where}.host "${e.host}": ${host.reason}`);
    // RFC 8738 section 7: an IP identifier is validated over HTTP-01 or TLS-ALPN-01, never DNS-01 (and no zone holds an address).
    if (isIpHost(host.name) && e.challenge === 'dns-01') return void problems.push(`${where}.challenge: ${host.name} is an IP address, which can only be validated over http-01 or tls-alpn-01 (RFC 8738), never dns-01; remove challenge: dns-01`);
    const dns = host.name.startsWith('*.') || e.challenge === 'dns-01';
    if (dns && e.challenge !== 'http-01' && host.issuer === 'acme' && !dnsCovers?.(host.name.replace(/^\*\./, ''))) {
      return void problems.push(`${where}: ${host.name} needs DNS-01, and no provider in dns.providers covers it; add one with zones: [${host.name.replace(/^\*\./, '')}]`);
    }
    if (host.name.startsWith('*.') && e.challenge === 'http-01') return void problems.push(`${where}.challenge: a wildcard can only be validated over dns-01`);
    if (sites.has(host.name)) return void problems.push(`${where}.host "${e.host}": listed twice`);
    const upstreams: string[] = [];
    for (const raw of Array.isArray(e.upstream) ? e.upstream : [e.upstream]) {
      const u = parseUpstream(raw, e.proto);
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
      ...(dns && host.issuer === 'acme' && e.https ? { challenge: 'dns-01' as const } : {}),
      issuer: host.issuer,
      ...(e.upstreamWait !== undefined ? { upstreamWait: e.upstreamWait } : {}),
    });
  });
  if (problems.length) throw new PadlockError('CONFIG_INVALID', `${problems.length} problem(s) in sites:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return [...sites.values()].sort((a, b) => a.host.localeCompare(b.host));
}
