/**
 * How one lineage answers DNS-01: the provider, where its credentials are,
 * and the propagation check. Stored in the lineage's settings (no secret,
 * only the credentials file's path), so `padlock renew` renews the way
 * `padlock issue` or the daemon issued.
 */
import { PadlockError } from '../errors.js';
import type { Clock } from '../clock.js';
import { credentialsFromEnv, readCredentialsFile, type Credentials } from './credentials.js';
import { DNS_PROVIDER_KINDS, type DnsProvider, type DnsProviderKind } from './providers/provider.js';
import { Rfc2136Provider, rfc2136Options } from './providers/rfc2136.js';
import { CloudflareProvider } from './providers/cloudflare.js';
import { AcmeDnsProvider } from './providers/acme-dns.js';
import { ExecProvider } from './providers/exec.js';
import { Route53Provider } from './providers/route53.js';
import { parseServers } from './transport.js';

export interface DnsChallengeSettings {
  type: 'dns-01';
  provider: DnsProviderKind;
  /** Path of the credentials file (mode 0600); absent: the provider's environment variables. */
  credentials?: string;
  /** The program of the `exec` provider. */
  exec?: string;
  /** `HOST[:PORT]` servers for the zone, NS and CNAME lookups; absent: the system's resolvers. */
  resolvers?: string[];
  /** Seconds to wait for every authoritative server to answer the record (default 120). */
  propagationTimeout?: number;
  /** Seconds between two rounds of the check (default 2). */
  propagationInterval?: number;
}

/** Limits on the propagation settings, so a typo cannot hold an order for a day. */
export const MAX_PROPAGATION_TIMEOUT_S = 3600;

/** Every problem with DNS-01 settings, each a sentence naming `where` (a flag or config path). Pure. */
export function dnsSettingsProblems(s: Partial<DnsChallengeSettings>, where: { provider: string; credentials: string; exec: string; resolvers: string; timeout: string; interval: string }): string[] {
  const problems: string[] = [];
  if (!s.provider || !(DNS_PROVIDER_KINDS as readonly string[]).includes(s.provider)) {
    problems.push(`${where.provider} "${s.provider ?? ''}" is not a DNS provider padlock has (${DNS_PROVIDER_KINDS.join(', ')})`);
  }
  if (s.provider === 'exec' && !s.exec) problems.push(`the exec DNS provider needs ${where.exec} PROGRAM (called as PROGRAM present|cleanup FQDN VALUE)`);
  if (s.provider !== 'exec' && s.exec) problems.push(`${where.exec} goes with the exec DNS provider only`);
  if (s.provider === 'exec' && s.credentials) problems.push(`the exec DNS provider takes no ${where.credentials}; the program has its own`);
  if (s.resolvers) {
    try {
      parseServers(s.resolvers, where.resolvers);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const t = s.propagationTimeout;
  if (t !== undefined && !(Number.isFinite(t) && t >= 0 && t <= MAX_PROPAGATION_TIMEOUT_S)) problems.push(`${where.timeout} ${t} must be between 0 and ${MAX_PROPAGATION_TIMEOUT_S} seconds`);
  const i = s.propagationInterval;
  if (i !== undefined && !(Number.isFinite(i) && i >= 0.1 && i <= 600)) problems.push(`${where.interval} ${i} must be between 0.1 and 600 seconds`);
  return problems;
}

/** Builds the provider: reads and checks its credentials (file or environment). Throws CONFIG_INVALID. */
export async function createDnsProvider(s: DnsChallengeSettings, options: { clock: Clock; env?: NodeJS.ProcessEnv }): Promise<DnsProvider> {
  const env = options.env ?? process.env;
  const creds: Credentials = s.credentials ? await readCredentialsFile(s.credentials, s.provider) : credentialsFromEnv(s.provider, env);
  switch (s.provider) {
    case 'rfc2136':
      return new Rfc2136Provider(rfc2136Options(creds, options.clock));
    case 'cloudflare':
      return new CloudflareProvider(creds);
    case 'acme-dns':
      return new AcmeDnsProvider(creds);
    case 'route53':
      return new Route53Provider(creds, options.clock, env);
    case 'exec':
      if (!s.exec) throw new PadlockError('CONFIG_INVALID', 'the exec DNS provider needs --dns-exec PROGRAM');
      return new ExecProvider(s.exec);
  }
}
