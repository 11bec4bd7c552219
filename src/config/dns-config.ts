/**
 * The daemon's `dns:` config section: DNS providers, each covering zones
 * (name suffixes), and the propagation check. Pure: from the validated
 * config to "which provider, if any, answers DNS-01 for this name".
 */
import { z } from 'zod';
import { DNS_PROVIDER_KINDS } from '../dns/providers/provider.js';
import { MAX_PROPAGATION_TIMEOUT_S, dnsSettingsProblems, type DnsChallengeSettings } from '../dns/settings.js';
import { normaliseLocalSuffix } from './names.js';

export const dnsConfigSchema = z.object({
  resolvers: z.array(z.string().min(1)).optional(),
  propagationTimeout: z.number().min(0).max(MAX_PROPAGATION_TIMEOUT_S).default(120),
  propagationInterval: z.number().min(0.1).max(600).default(2),
  providers: z.array(z.object({
    provider: z.enum(DNS_PROVIDER_KINDS),
    credentials: z.string().min(1).optional(),
    exec: z.string().min(1).optional(),
    zones: z.array(z.string().min(1)).min(1, 'name at least one zone this provider covers'),
  }).strict()).default([]),
}).strict();

export type DnsConfig = z.infer<typeof dnsConfigSchema>;

/** Every problem across keys (a provider without its program, a bad resolver, a zone listed twice), each with its path. */
export function dnsConfigProblems(dns: DnsConfig | undefined): string[] {
  if (!dns) return [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  dns.providers.forEach((p, i) => {
    const at = `dns.providers.${i}`;
    problems.push(...dnsSettingsProblems({ type: 'dns-01', ...p, ...(dns.resolvers ? { resolvers: dns.resolvers } : {}) }, {
      provider: `${at}.provider`, credentials: `${at}.credentials`, exec: `${at}.exec`, resolvers: 'dns.resolvers', timeout: 'dns.propagationTimeout', interval: 'dns.propagationInterval',
    }));
    for (const raw of p.zones) {
      const zone = normaliseLocalSuffix(raw);
      const before = seen.get(zone);
      if (before !== undefined) problems.push(`${at}.zones: ${zone} is already covered by dns.providers.${before}`);
      else seen.set(zone, i);
    }
  });
  return problems;
}

/** The DNS-01 settings for a name: the provider whose zone is the longest suffix of it, or undefined. A wildcard counts as its base. */
export function dnsSettingsFor(dns: DnsConfig | undefined, name: string): DnsChallengeSettings | undefined {
  if (!dns) return undefined;
  const bare = name.replace(/^\*\./, '').toLowerCase();
  let best: { len: number; p: DnsConfig['providers'][number] } | undefined;
  for (const p of dns.providers) {
    for (const raw of p.zones) {
      const zone = normaliseLocalSuffix(raw);
      if (zone && (bare === zone || bare.endsWith(`.${zone}`)) && zone.length > (best?.len ?? -1)) best = { len: zone.length, p };
    }
  }
  return best ? providerSettings(dns, best.p) : undefined;
}

/** The DNS-01 settings of one configured provider (its credentials, the section's resolvers and propagation check). Pure. */
export function providerSettings(dns: DnsConfig, p: DnsConfig['providers'][number]): DnsChallengeSettings {
  return {
    type: 'dns-01', provider: p.provider,
    ...(p.credentials ? { credentials: p.credentials } : {}),
    ...(p.exec ? { exec: p.exec } : {}),
    ...(dns.resolvers ? { resolvers: dns.resolvers } : {}),
    propagationTimeout: dns.propagationTimeout,
    propagationInterval: dns.propagationInterval,
  };
}
