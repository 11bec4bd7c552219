/**
 * Static routes from the config file's `sites:` list, turned into SiteSpecs.
 * Pure. Any problem is a CONFIG_INVALID error listing every bad entry, since
 * config is validated once, at start.
 */
import type { SiteSpec } from '../state/desired-state.js';
import type { StaticSite } from './schema.js';
import { normaliseSiteHost } from './names.js';
import { PadlockError } from '../errors.js';

export const HSTS_DEFAULT_MAX_AGE = 31_536_000;

/** Parses an upstream URL: http(s)://host:port with no path. */
export function parseUpstream(input: string): string | { reason: string } {
  let u: URL;
  try {
    u = new URL(input.includes('://') ? input : `http://${input}`);
  } catch {
    return { reason: `"${input}" is not a URL like http://127.0.0.1:8080` };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { reason: `"${input}" must be http:// or https://` };
  if (u.pathname !== '/' || u.search || u.username) return { reason: `"${input}" must be scheme://host:port only (no path, query or credentials)` };
  return `${u.protocol}//${u.host}`;
}

export function staticSites(entries: readonly StaticSite[], localSuffixes: readonly string[], fileName = 'config file'): SiteSpec[] {
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
      if (typeof u === 'string') upstreams.push(u);
      else problems.push(`${where}.upstream: ${u.reason}`);
    }
    const hsts = e.hsts === true ? HSTS_DEFAULT_MAX_AGE : e.hsts === false || e.hsts === 0 ? undefined : e.hsts;
    sites.set(host.name, {
      host: host.name,
      upstreams: upstreams.map((url) => ({ url })),
      https: e.https,
      redirect: e.redirect,
      ...(hsts ? { hstsMaxAge: hsts } : {}),
      ...(e.email ? { email: e.email } : {}),
      ...(e.profile ? { profile: e.profile } : {}),
      issuer: host.issuer,
    });
  });
  if (problems.length) throw new PadlockError('CONFIG_INVALID', `${problems.length} problem(s) in sites:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return [...sites.values()].sort((a, b) => a.host.localeCompare(b.host));
}
